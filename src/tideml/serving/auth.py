"""API keys (stored only as sha256 hashes) and per-key token-bucket rate limits.

A key is `tide_<key id>_<secret>`: 8 hex digits that identify it in lists and metrics, and 32 random
bytes (256 bits) that make it unguessable. Because the key has that much entropy a plain sha256 is the
right hash (a slow password hash defends low-entropy secrets, which these are not); the database holds
only the hash, so a leaked database reveals no usable key. The key itself is shown once, at creation.

Rate limits are enforced per server process: with N workers each takes 1/N of the key's rate and
burst, as uvicorn spreads connections over the workers.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from tideml.serving.errors import RequestError

__all__ = ["KeyGate", "KeyRecord", "TokenBucket", "hash_api_key", "new_api_key"]

KEY_PREFIX = "tide_"


def hash_api_key(key: str) -> str:
    """The stored form of a key: its sha256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_api_key() -> tuple[str, str, str]:
    """A fresh key: (key, key id, sha256 of the key)."""
    key_id = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return key, key_id, hash_api_key(key)


@dataclass(frozen=True)
class KeyRecord:
    """A stored key as the gate needs it."""

    key_id: str
    key_sha256: str
    endpoint: str | None
    rate_per_second: float
    burst: int
    revoked: bool = False


class TokenBucket:
    """`burst` tokens, refilled at `rate` per second; a request takes one."""

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = time.monotonic()

    def take(self, now: float | None = None) -> float:
        """0.0 if a token was taken, else the seconds until one will be available."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate if self.rate > 0 else math.inf


def _unauthorized(message: str, fix: str) -> RequestError:
    return RequestError(
        401,
        message,
        code="unauthorized",
        field="Authorization",
        fix=fix,
        headers={"WWW-Authenticate": 'Bearer realm="tideml"'},
    )


class KeyGate:
    """Checks a presented key against the stored hashes and applies its rate limit."""

    def __init__(
        self, records: Iterable[KeyRecord], *, endpoint: str, required: bool, share: float = 1.0
    ) -> None:
        self.endpoint = endpoint
        self.required = required
        self.share = max(min(share, 1.0), 1e-6)
        self._by_hash: dict[str, KeyRecord] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self.replace(records)

    def replace(self, records: Iterable[KeyRecord]) -> None:
        """Swap in a fresh set of keys (re-read from the database), keeping live buckets."""
        table = {
            r.key_sha256: r
            for r in records
            if not r.revoked and (r.endpoint is None or r.endpoint == self.endpoint)
        }
        buckets: dict[str, TokenBucket] = {}
        for r in table.values():
            rate, burst = r.rate_per_second * self.share, max(1.0, r.burst * self.share)
            old = self._buckets.get(r.key_id)
            if old is not None and old.rate == rate and old.burst == burst:
                buckets[r.key_id] = old
            else:
                buckets[r.key_id] = TokenBucket(rate, burst)
        self._by_hash, self._buckets = table, buckets

    @property
    def active_keys(self) -> int:
        return len(self._by_hash)

    def check(self, authorization: str | None, api_key: str | None) -> str | None:
        """The key id of an accepted request (None when no key is needed and none was given).

        Raises RequestError 401 for a missing, unknown or revoked key and 429 past the key's rate.
        """
        presented = api_key
        if presented is None and authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise _unauthorized(
                    "the Authorization header must be 'Bearer <key>'", "send 'Authorization: Bearer tide_…'"
                )
            presented = value.strip()
        if not presented:
            if self.required:
                raise _unauthorized(
                    "this endpoint needs an API key",
                    "send 'Authorization: Bearer <key>' (create one with `tide keys create`)",
                )
            return None
        record = self._by_hash.get(hash_api_key(presented))
        if record is None:
            raise _unauthorized(
                "unknown or revoked API key", "check the key, or create a new one with `tide keys create`"
            )
        wait = self._buckets[record.key_id].take()
        if wait > 0.0:
            retry = max(1, math.ceil(wait)) if math.isfinite(wait) else 60
            raise RequestError(
                429,
                f"rate limit of API key {record.key_id} exceeded "
                f"({record.rate_per_second:g}/s, burst {record.burst})",
                code="rate_limited",
                field="Authorization",
                fix=f"retry after {retry} s, or ask for a higher limit",
                headers={"Retry-After": str(retry)},
            )
        return record.key_id
