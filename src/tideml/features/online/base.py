"""The online-store interface: the latest record per (group, id), newer event time wins.

A backend stores opaque payloads (the record's feature values as JSON bytes) with three pieces of
metadata: the event time, an optional expiry and a deleted flag. Every rule that must hold on every
backend lives here or in the conformance suite (`tests/features/test_features_online_conformance.py`):

* a write replaces the stored record only if its event time is >= the stored one (ties: the later call
  wins), atomically, so concurrent writers cannot let an older record win;
* a soft delete is a write of a tombstone (no payload) under the same rule;
* a hard delete removes the record, and is refused if the stored record is newer than the delete;
* expiry is enforced on read (`StoredRecord.visible`, `OnlineStore.read_payload`), whatever the
  backend does to purge.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from tideml.errors import ValidationError
from tideml.features._time import format_iso

__all__ = ["OnlineStore", "StoredRecord", "WriteBatch", "decode_payload", "encode_payload"]


class StoredRecord(NamedTuple):
    """What a backend returns for one id (a named tuple: a batch read builds hundreds of them, and a
    frozen dataclass costs twice as much to create)."""

    event_us: int
    expires_us: int | None
    deleted: bool
    payload: bytes | None

    def visible(self, now_us: int) -> bool:
        """A record is served unless it is a tombstone or has expired (TTL enforced on read)."""
        return not self.deleted and (self.expires_us is None or now_us < self.expires_us)


@dataclass(slots=True)
class WriteBatch:
    """Column-wise writes for one group; `payloads[i] is None` marks a soft-delete tombstone."""

    ids: list[str] = field(default_factory=list)
    event_us: list[int] = field(default_factory=list)
    expires_us: list[int | None] = field(default_factory=list)
    payloads: list[bytes | None] = field(default_factory=list)

    def add(self, record_id: str, event_us: int, expires_us: int | None, payload: bytes | None) -> None:
        self.ids.append(record_id)
        self.event_us.append(event_us)
        self.expires_us.append(expires_us)
        self.payloads.append(payload)

    def __len__(self) -> int:
        return len(self.ids)

    def check(self, group: str) -> None:
        """Raise unless every column has one entry per record (a store that sends a batch in parts
        checks before the first part goes out)."""
        sizes = {len(self.ids), len(self.event_us), len(self.expires_us), len(self.payloads)}
        if len(sizes) != 1:
            raise ValidationError(
                f"the batch's columns have different lengths {sorted(sizes)}",
                obj=f"online write to group {group}",
                field="batch",
                fix="give every record an id, an event time, an expiry (or None) and a payload (or None)",
            )

    def slice(self, start: int, stop: int) -> WriteBatch:
        return WriteBatch(
            self.ids[start:stop],
            self.event_us[start:stop],
            self.expires_us[start:stop],
            self.payloads[start:stop],
        )


def encode_payload(values: dict[str, Any]) -> bytes:
    """Feature values as the JSON bytes every backend stores."""
    return orjson.dumps(values)


# the inverse of `encode_payload`: orjson's own function, so a get has no Python call around it
decode_payload: Callable[[bytes], dict[str, Any]] = orjson.loads


class OnlineStore(abc.ABC):
    """A backend of the online store (SQLite, Redis, in-memory)."""

    url: str
    parallel_writes: bool = False  # True if concurrent `write` calls from several threads help
    key_ordered_writes: bool = True  # True if writes sorted by id help (B-tree appends, not jumps)

    @abc.abstractmethod
    def write(self, group: str, batch: WriteBatch) -> int:
        """Apply each write whose event time is >= the stored one; return how many were applied."""

    @abc.abstractmethod
    def read(self, group: str, record_id: str) -> StoredRecord | None:
        """The stored record (tombstones and expired records included), or None."""

    def read_payload(self, group: str, record_id: str, now_us: int | None = None) -> bytes | None:
        """The payload of the record if it is served at `now_us` (default: now): stored, not a
        tombstone, not expired; else None. The single-id read path (`get_record`): a backend may
        answer it without building a StoredRecord."""
        stored = self.read(group, record_id)
        if stored is None or stored.payload is None:
            return None
        now = time.time_ns() // 1000 if now_us is None else now_us
        return stored.payload if stored.visible(now) else None

    @abc.abstractmethod
    def read_many(self, keys: Sequence[tuple[str, str]]) -> list[StoredRecord | None]:
        """Several (group, id) records in one round trip, in the order asked."""

    @abc.abstractmethod
    def hard_delete(self, group: str, record_id: str, event_us: int) -> bool:
        """Remove the record; True if one existed. Refused if the stored event time is later."""

    @abc.abstractmethod
    def drop_group(self, group: str) -> int:
        """Remove every record of a group; return how many were removed."""

    @abc.abstractmethod
    def count(self, group: str) -> int:
        """Number of stored records (tombstones included, expired ones possibly included)."""

    def purge_expired(self, group: str, now_us: int) -> int:
        """Remove expired records; backends with native expiry (Redis) return 0."""
        return 0

    def ping(self) -> None:  # noqa: B027  -- in-process backends are always reachable
        """Raise StoreUnavailable if the backend cannot be reached."""

    def close(self) -> None:  # noqa: B027  -- nothing to release for in-process backends
        """Release connections."""

    @staticmethod
    def _refuse_hard_delete(group: str, record_id: str, stored_us: int, event_us: int) -> ValidationError:
        return ValidationError(
            f"the stored record has a later event time ({format_iso(stored_us)}) than the delete "
            f"({format_iso(event_us)})",
            obj=f"feature group {group}",
            field=f"record {record_id}.event_time",
            fix="give the hard delete an event time at or after the stored record's event time",
        )

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
