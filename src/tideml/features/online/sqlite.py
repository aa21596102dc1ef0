"""SQLite online store (`sqlite:///path/online.db`, the default): one WAL database, one row per record.

Each thread gets its own connection (SQLite connections must not be shared across threads); WAL mode lets
readers run while one writer commits, and reads use memory-mapped I/O (`?mmap_mb=0` turns it off: with
a map, an I/O error on the file is a SIGBUS rather than an error). The newer-event-time-wins rule is
a conditional upsert (`ON CONFLICT … DO UPDATE … WHERE excluded.event_us >= stored.event_us`), atomic in
SQLite.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from urllib.parse import parse_qsl

from tideml.errors import ConfigError, StoreUnavailable
from tideml.features.online.base import OnlineStore, StoredRecord, WriteBatch

__all__ = ["SqliteOnlineStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS online_records (
    grp TEXT NOT NULL,
    id TEXT NOT NULL,
    event_us INTEGER NOT NULL,
    expires_us INTEGER,
    deleted INTEGER NOT NULL,
    payload BLOB,
    PRIMARY KEY (grp, id)
) WITHOUT ROWID
"""
_ON_CONFLICT = (
    "ON CONFLICT (grp, id) DO UPDATE SET event_us = excluded.event_us, expires_us = excluded.expires_us, "
    "deleted = excluded.deleted, payload = excluded.payload "
    "WHERE excluded.event_us >= online_records.event_us"
)
_ROWS_PER_UPSERT = 1000  # rows per statement (6 parameters each); fewer if SQLite allows fewer


def _upsert(rows: int) -> str:
    """The newer-wins upsert of `rows` records in one statement."""
    values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * rows)
    return (
        f"INSERT INTO online_records (grp, id, event_us, expires_us, deleted, payload) VALUES {values} "
        + _ON_CONFLICT
    )


_READ = "SELECT event_us, expires_us, deleted, payload FROM online_records WHERE grp = ? AND id = ?"
_IN_CHUNK = 500
_MMAP_MB = 1024


class SqliteOnlineStore(OnlineStore):
    """Latest record per (group, id) in an SQLite database file."""

    def __init__(self, url: str) -> None:
        self.url = url
        target, _, query = url.partition("?")
        path = target.removeprefix("sqlite:///") if target.startswith("sqlite:///") else None
        if path is None or not path:
            raise ConfigError(
                f"{url!r} is not an SQLite URL",
                obj="online store",
                field="url",
                fix="use sqlite:///absolute/path/online.db",
            )
        options = dict(parse_qsl(query))
        mmap_mb = options.pop("mmap_mb", str(_MMAP_MB))
        if not mmap_mb.isdigit() or options:
            raise ConfigError(
                f"{query!r} is not a valid option list for the SQLite online store",
                obj="online store",
                field="url",
                fix="the only option is ?mmap_mb=N (MiB of the file mapped for reads; 0 turns it off)",
            )
        self._mmap_bytes = int(mmap_mb) << 20
        if path == ":memory:":
            self._target, self._uri = f"file:tideml-online-{uuid.uuid4().hex}?mode=memory&cache=shared", True
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._target, self._uri = path, False
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._keepalive = self._conn()  # an in-memory shared DB lives while one connection is open
        with self._write_txn() as con:
            con.execute(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is not None:
            return con
        try:
            con = sqlite3.connect(
                self._target, uri=self._uri, isolation_level=None, check_same_thread=False, timeout=30
            )
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA busy_timeout=30000")
            # reads map the file instead of copying pages through read(2): a 100-id batch read of a
            # 100k-record store, 0.55 -> 0.40 ms p50 (address space only; pages stay in the OS cache)
            con.execute(f"PRAGMA mmap_size={self._mmap_bytes}")
        except sqlite3.Error as exc:
            raise StoreUnavailable(
                f"cannot open the SQLite online store ({exc})",
                obj="online store",
                field="url",
                fix=f"check that the folder of {self._target} exists and is writable",
            ) from exc
        self._local.con = con
        with self._all_lock:
            self._all.append(con)
        return con

    @contextmanager
    def _write_txn(self) -> Iterator[sqlite3.Connection]:
        con = self._conn()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def write(self, group: str, batch: WriteBatch) -> int:
        rows = [
            (group, rid, ev, exp, 1 if payload is None else 0, payload)
            for rid, ev, exp, payload in zip(
                batch.ids, batch.event_us, batch.expires_us, batch.payloads, strict=True
            )
        ]
        # in key order the upserts walk the B-tree instead of jumping around it: 2x faster for 100k rows
        rows.sort(key=itemgetter(1))
        # many rows per statement: a thousandth of the statement steps, each of which drops and takes
        # back the GIL (100k rows alone: 0.41 -> 0.34 s; repeated ids still apply in batch order)
        with self._write_txn() as con:
            per = min(_ROWS_PER_UPSERT, con.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 6)
            before = con.total_changes
            for start in range(0, len(rows), per):
                part = rows[start : start + per]
                con.execute(_upsert(len(part)), [value for row in part for value in row])
            return con.total_changes - before

    def read(self, group: str, record_id: str) -> StoredRecord | None:
        row = self._conn().execute(_READ, (group, record_id)).fetchone()
        if row is None:
            return None
        return StoredRecord(row[0], row[1], bool(row[2]), row[3])

    def read_many(self, keys: Sequence[tuple[str, str]]) -> list[StoredRecord | None]:
        con = self._conn()
        by_group: dict[str, list[str]] = {}
        for group, rid in keys:
            by_group.setdefault(group, []).append(rid)
        found: dict[tuple[str, str], StoredRecord] = {}
        for group, ids in by_group.items():
            unique = list(dict.fromkeys(ids))
            for start in range(0, len(unique), _IN_CHUNK):
                part = unique[start : start + _IN_CHUNK]
                marks = ",".join("?" * len(part))
                sql = (
                    "SELECT id, event_us, expires_us, deleted, payload FROM online_records "
                    f"WHERE grp = ? AND id IN ({marks})"
                )
                for rid, ev, exp, deleted, payload in con.execute(sql, (group, *part)):
                    found[(group, rid)] = StoredRecord(ev, exp, bool(deleted), payload)
        return [found.get(k) for k in keys]

    def hard_delete(self, group: str, record_id: str, event_us: int) -> bool:
        with self._write_txn() as con:
            row = con.execute(_READ, (group, record_id)).fetchone()
            if row is None:
                return False
            if row[0] > event_us:
                raise self._refuse_hard_delete(group, record_id, row[0], event_us)
            con.execute("DELETE FROM online_records WHERE grp = ? AND id = ?", (group, record_id))
            return True

    def drop_group(self, group: str) -> int:
        with self._write_txn() as con:
            return con.execute("DELETE FROM online_records WHERE grp = ?", (group,)).rowcount

    def count(self, group: str) -> int:
        row = self._conn().execute("SELECT count(*) FROM online_records WHERE grp = ?", (group,)).fetchone()
        return int(row[0])

    def purge_expired(self, group: str, now_us: int) -> int:
        with self._write_txn() as con:
            sql = "DELETE FROM online_records WHERE grp = ? AND expires_us IS NOT NULL AND expires_us <= ?"
            return con.execute(sql, (group, now_us)).rowcount

    def close(self) -> None:
        with self._all_lock:
            for con in self._all:
                con.close()
            self._all.clear()
        self._local = threading.local()
