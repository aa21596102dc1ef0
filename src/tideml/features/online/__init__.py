"""Online stores behind one small interface; the backend is chosen by the URL's scheme."""

from __future__ import annotations

from tideml.errors import ConfigError
from tideml.features.online.base import (
    OnlineStore,
    StoredRecord,
    WriteBatch,
    decode_payload,
    encode_payload,
)

__all__ = [
    "OnlineStore",
    "StoredRecord",
    "WriteBatch",
    "decode_payload",
    "encode_payload",
    "open_online_store",
]


def open_online_store(url: str) -> OnlineStore:
    """Open the backend named by `url`: `sqlite:///…` (default), `redis://…` or `memory://`."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        from tideml.features.online.sqlite import SqliteOnlineStore

        return SqliteOnlineStore(url)
    if scheme in ("redis", "rediss", "unix"):
        from tideml.features.online.redis import RedisOnlineStore

        return RedisOnlineStore(url)
    if scheme == "memory":
        from tideml.features.online.memory import MemoryOnlineStore

        return MemoryOnlineStore(url)
    raise ConfigError(
        f"no online store backend for {url!r}",
        obj="online store",
        field="url",
        fix="use sqlite:///path/online.db, redis://host:6379/0 or memory://",
    )
