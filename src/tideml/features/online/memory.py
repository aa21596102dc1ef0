"""In-memory online store (`memory://`): a dict behind a lock, for tests and single-process use."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from tideml.features.online.base import OnlineStore, StoredRecord, WriteBatch

__all__ = ["MemoryOnlineStore"]


class MemoryOnlineStore(OnlineStore):
    """Latest record per (group, id) in a process-local dict."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._data: dict[tuple[str, str], StoredRecord] = {}
        self._lock = threading.Lock()

    def write(self, group: str, batch: WriteBatch) -> int:
        applied = 0
        with self._lock:
            for rid, ev, exp, payload in zip(
                batch.ids, batch.event_us, batch.expires_us, batch.payloads, strict=True
            ):
                key = (group, rid)
                old = self._data.get(key)
                if old is None or ev >= old.event_us:
                    self._data[key] = StoredRecord(ev, exp, payload is None, payload)
                    applied += 1
        return applied

    def read(self, group: str, record_id: str) -> StoredRecord | None:
        return self._data.get((group, record_id))

    def read_many(self, keys: Sequence[tuple[str, str]]) -> list[StoredRecord | None]:
        data = self._data
        return [data.get(k) for k in keys]

    def hard_delete(self, group: str, record_id: str, event_us: int) -> bool:
        with self._lock:
            old = self._data.get((group, record_id))
            if old is None:
                return False
            if old.event_us > event_us:
                raise self._refuse_hard_delete(group, record_id, old.event_us, event_us)
            del self._data[(group, record_id)]
            return True

    def drop_group(self, group: str) -> int:
        with self._lock:
            keys = [k for k in self._data if k[0] == group]
            for k in keys:
                del self._data[k]
            return len(keys)

    def count(self, group: str) -> int:
        return sum(1 for k in self._data if k[0] == group)

    def purge_expired(self, group: str, now_us: int) -> int:
        with self._lock:
            keys = [
                k
                for k, r in self._data.items()
                if k[0] == group and r.expires_us is not None and r.expires_us <= now_us
            ]
            for k in keys:
                del self._data[k]
            return len(keys)
