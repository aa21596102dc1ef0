"""The offline store: an append-only Parquet log per feature group, partitioned by event time.

Layout under the store root::

    <group>/_manifest.jsonl                     the committed files (the source of truth)
    <group>/year=YYYY/month=MM/day=DD/hour=HH/<latest-event>_<16 random>.parquet

Each row carries the group's features plus the system columns `write_time`, `api_invocation_time`
(UTC microsecond timestamps) and `is_deleted`. Partitions come from the event time, not the write time.

Writes are atomic at two levels: every file is written under a temporary name, flushed to disk and
renamed, and a batch becomes visible only when the manifest that lists its files is atomically replaced
(under a file lock, so concurrent writers in several processes serialise their commits). Readers use
the manifest, so they never see half a batch. Any Parquet engine can read the folder directly; the
manifest only adds atomicity, pruning statistics and protection from files a crashed writer left
behind.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import itertools
import os
import platform
import re
import resource
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from tideml.errors import IntegrityError, UnsafePath
from tideml.features._time import MonotonicClock, format_iso
from tideml.features.spec import FeatureGroupSpec, FeatureType, validate_group_name

__all__ = [
    "SYSTEM_COLUMNS",
    "TIMESTAMP",
    "AppendTransaction",
    "CompactionReport",
    "DataFile",
    "OfflineStore",
    "arrow_schema",
    "dictionary_columns",
]

SYSTEM_COLUMNS = ("write_time", "api_invocation_time", "is_deleted")
TIMESTAMP = pa.timestamp("us", tz="UTC")
MANIFEST = "_manifest.jsonl"
_LOCK = "_manifest.lock"
_STAGING = "_staging"
_ORPHAN_AGE_S = 3600
_HOUR_US = 3_600_000_000
_BATCH_ROWS = 1 << 17  # rows per record batch handed to Arrow's file writer (its default scan size)
_FSYNC_EACH_MAX = 8  # up to this many files an fsync each; more, one syncfs(2) where it is safe
_SMALL_BATCH_ROWS = 1 << 17  # up to this many rows in up to _FSYNC_EACH_MAX hours: written in place


def arrow_schema(spec: FeatureGroupSpec) -> pa.Schema:
    """The Parquet schema of a group: its features in order, then the three system columns."""
    types = {
        FeatureType.INTEGRAL: pa.int64(),
        FeatureType.FRACTIONAL: pa.float64(),
        FeatureType.STRING: pa.large_string(),
    }
    fields = [
        pa.field(f.name, TIMESTAMP if f.name == spec.event_time else types[f.type], nullable=True)
        for f in spec.features
    ]
    fields += [
        pa.field("write_time", TIMESTAMP, nullable=False),
        pa.field("api_invocation_time", TIMESTAMP, nullable=False),
        pa.field("is_deleted", pa.bool_(), nullable=False),
    ]
    return pa.schema(fields)


@dataclass(frozen=True)
class DataFile:
    """One committed Parquet file and the statistics used to prune it."""

    path: str  # relative to the group folder, POSIX separators
    rows: int
    size: int
    min_event_us: int
    max_event_us: int
    min_write_us: int
    max_write_us: int
    columns: tuple[str, ...]
    # the write call the file came from (its files share one), and whether no two rows of that call
    # share a record id and an event time; manifests written before these existed read as unknown
    batch: str = ""
    unique_keys: bool = False

    @property
    def partition(self) -> str:
        return self.path.rsplit("/", 1)[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "rows": self.rows,
            "size": self.size,
            "min_event_us": self.min_event_us,
            "max_event_us": self.max_event_us,
            "min_write_us": self.min_write_us,
            "max_write_us": self.max_write_us,
            "columns": list(self.columns),
            "batch": self.batch,
            "unique_keys": self.unique_keys,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DataFile:
        return cls(**{**data, "columns": tuple(data["columns"])})


@dataclass(frozen=True)
class CompactionReport:
    """What `compact` did: files before and after, rows rewritten, orphans removed."""

    group: str
    files_before: int
    files_after: int
    partitions_rewritten: int
    rows_rewritten: int
    orphans_removed: int
    verified: bool = True
    removed_paths: list[str] = field(default_factory=list)


def _fsync_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{secrets.token_hex(8)}-{path.name}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _load_syncfs() -> Callable[[int], int] | None:
    """libc's syncfs(2) on Linux >= 5.8 (earlier kernels return 0 even after write-back errors)."""
    if sys.platform != "linux":
        return None
    version = re.match(r"(\d+)\.(\d+)", platform.release())
    if version is None or (int(version[1]), int(version[2])) < (5, 8):
        return None
    fn = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
    if fn is None:
        return None
    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
    return cast("Callable[[int], int]", fn)


_SYNCFS = _load_syncfs()
# local filesystems whose sync_fs writes back data and metadata (a FUSE daemon, say, never sees syncfs)
_SYNCFS_FILESYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "tmpfs"})


def _filesystem_type(folder: Path) -> str | None:
    """The type of the filesystem holding `folder`, from /proc/self/mountinfo (None if not found)."""
    dev = os.stat(folder).st_dev
    wanted = f"{os.major(dev)}:{os.minor(dev)}"
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                fields = left.split()
                if len(fields) > 2 and fields[2] == wanted and right:
                    return right.split()[0]
    except OSError:
        return None
    return None


def _syncfs_fd(folder: Path) -> int | None:
    """A descriptor for syncfs(2) on `folder`'s filesystem, or None where one syncfs is not as safe
    as an fsync per file (not Linux >= 5.8, or not a known local filesystem). Open it before writing
    the files it must cover: syncfs reports the write-back errors seen since the descriptor was opened."""
    if _SYNCFS is None or _filesystem_type(folder) not in _SYNCFS_FILESYSTEMS:
        return None
    return os.open(folder, os.O_RDONLY)


def _syncfs(fd: int) -> bool:
    """Write back the whole filesystem of `fd`: one journal commit instead of one per file. False if
    the kernel refuses the call (ENOSYS, or EPERM in a seccomp sandbox): then fsync each file."""
    assert _SYNCFS is not None
    if _SYNCFS(fd) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM):
        return False
    raise OSError(err, f"syncfs failed: {os.strerror(err)}")


def _fsync_each(paths: Sequence[Path]) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _partition_of(hour_index: int) -> str:
    t = time.gmtime(hour_index * 3600)
    return f"year={t.tm_year:04d}/month={t.tm_mon:02d}/day={t.tm_mday:02d}/hour={t.tm_hour:02d}"


def _open_file_budget() -> int:
    """How many files a batch write may hold open: half the process' soft limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else max(16, soft // 2)


def _file_path(partition: str, max_event_us: int) -> str:
    """A new data file's path in its partition: its latest event time, then 64 random bits."""
    stamp = format_iso(max_event_us)[:19].replace("-", "").replace(":", "")
    return f"{partition}/{stamp}Z_{secrets.token_hex(8)}.parquet"


def dictionary_columns(schema: pa.Schema) -> list[str] | bool:
    """The columns worth dictionary encoding: text. Numeric features rarely repeat enough to gain from
    it; trying costs time and often size (a 100k-row float dataset: 69 ms and 9.9 MB with dictionaries
    tried, 25 ms and 8.3 MB without, zstd)."""
    text = [f.name for f in schema if pa.types.is_large_string(f.type) or pa.types.is_string(f.type)]
    return text or False


def _parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """Snappy, dictionaries for text only (half the encoding time of small partition files)."""
    return {"compression": "snappy", "use_dictionary": dictionary_columns(schema)}


def _partition_scanner(table: pa.Table, partition_rows: Sequence[int]) -> Any:
    """A scanner over `table` (rows sorted by partition, `partition_rows` rows each) whose record
    batches each hold whole partitions, about _BATCH_ROWS rows where partitions allow. Arrow's dataset
    writer encodes batches in parallel, so a partition spread over two batches may reach its file in
    either order; whole, its rows keep their order (event time), which datasets use. The scan batch
    size is at least the largest batch, so Arrow does not cut one. Nothing is copied for a table of one
    chunk (a sorted frame's)."""
    import pyarrow.dataset as pads

    cuts, end = [0], 0
    for rows in partition_rows:
        if end + rows - cuts[-1] > _BATCH_ROWS and end > cuts[-1]:
            cuts.append(end)
        end += rows
    spans = list(itertools.pairwise([*cuts, end]))
    batches = [b for a, z in spans for b in table.slice(a, z - a).combine_chunks().to_batches()]
    largest = max(z - a for a, z in spans)
    source = pads.InMemoryDataset(pa.Table.from_batches(batches, schema=table.schema))
    return source.scanner(batch_size=max(_BATCH_ROWS, largest), use_threads=True)


def write_parquet_atomic(table: pa.Table, target: Path) -> None:
    """Write a Parquet file under a temporary name, fsync it, then rename it into place."""
    tmp = target.with_name(f".tmp-{secrets.token_hex(8)}.parquet.part")
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, **_parquet_options(table.schema))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A table with exactly `schema`'s columns in order; columns a file predates are all-null."""
    columns = []
    names = set(table.column_names)
    for f in schema:
        if f.name in names:
            col = table.column(f.name)
            columns.append(col if col.type == f.type else col.cast(f.type))
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema.remove_metadata())


class AppendTransaction:
    """Files written for one batch; invisible to readers until `commit`, deleted by `abort`."""

    def __init__(self, store: OfflineStore, spec: FeatureGroupSpec, clock: Callable[[], int]) -> None:
        self.store = store
        self.spec = spec
        self.schema = arrow_schema(spec)
        self.clock = clock
        self.files: list[DataFile] = []
        self._lock = threading.Lock()
        self._done = False

    def write(
        self,
        frame: pl.DataFrame,
        *,
        api_invocation_us: int,
        write_us: int | None = None,
        unique_keys: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Partition `frame` (features in spec order, event time as a UTC timestamp, `is_deleted`) by
        event hour and write one file per partition (rarely two). Thread-safe; returns the rows written.
        `unique_keys=True` promises that no two rows share a record id and an event time (ingest's
        validated batches); the manifest records it, and datasets use it (see `keys_unique`).

        Arrow's dataset writer encodes every partition's file in C++ threads into a staging folder,
        `_staging/<token>/<hour>_part-<i>.parquet.part` (neither `*.parquet` globs nor pyarrow's
        dataset discovery pick those up). The staged files are made durable (one syncfs, or an fsync
        each), then renamed into their `year=/month=/day=/hour=` folders, so a partition folder never
        holds a torn `*.parquet` file. Per-file Python work and one fsync per file were most of the cost
        of a batch spanning hundreds of hours. A small batch (up to _FSYNC_EACH_MAX hours and
        _SMALL_BATCH_ROWS rows) is written file by file straight into its partition folders instead,
        each under a temporary `.tmp-….parquet.part` name until it is fsynced and renamed.
        """
        if frame.height == 0:
            return 0
        write_us = self.clock() if write_us is None else write_us
        batch = secrets.token_hex(8)
        unique_keys = unique_keys or frame.height == 1
        et = self.spec.event_time
        ev_us = pl.col(et).dt.epoch("us")
        # sorted by event time, each partition reaches the writer as one run (unsorted: 10x slower, tiny
        # row groups), and a batch's files read in hour order are in event-time order, which datasets
        # use (`_match_sorted_keys`); sorting by time costs what sorting by hour did
        ordered = frame.with_columns((ev_us // _HOUR_US).alias("__hour")).sort(et, maintain_order=True)
        per_hour = (
            ordered.group_by("__hour")
            .agg(ev_us.min().alias("lo"), ev_us.max().alias("hi"), pl.len().alias("rows"))
            .sort("__hour")
        )
        bounds = {int(h): (int(lo), int(hi)) for h, lo, hi, _ in per_hour.iter_rows()}
        hour = ordered.get_column("__hour")
        n = ordered.height
        table = ordered.drop("__hour").to_arrow()
        table = table.append_column("write_time", pa.array(np.full(n, write_us, np.int64)).cast(TIMESTAMP))
        table = table.append_column(
            "api_invocation_time", pa.array(np.full(n, api_invocation_us, np.int64)).cast(TIMESTAMP)
        )
        if "is_deleted" not in frame.columns:
            table = table.append_column("is_deleted", pa.array(np.zeros(n, np.bool_)))
        table = conform(table, self.schema)
        group_dir = self.store.group_dir(self.spec.name)
        group_dir.mkdir(parents=True, exist_ok=True)
        root = f"{group_dir}{os.sep}"  # joined as text: pathlib costs ~0.1 ms a file
        columns = tuple(self.schema.names)

        made: set[str] = set()

        def place(hour_index: int) -> str:
            """A new file's path (relative to the group) in its hour's partition folder, made if new."""
            partition = _partition_of(hour_index)
            if partition not in made:
                os.makedirs(root + partition, exist_ok=True)
                made.add(partition)
            return _file_path(partition, bounds[hour_index][1])

        def keep(hour_index: int, rel: str, rows: int, size: int) -> None:
            """A file renamed into its partition: from here on the transaction's (abort removes it)."""
            lo, hi = bounds[hour_index]
            data_file = DataFile(
                path=rel,
                rows=rows,
                size=size,
                min_event_us=lo,
                max_event_us=hi,
                min_write_us=write_us,
                max_write_us=write_us,
                columns=columns,
                batch=batch,
                unique_keys=unique_keys,
            )
            with self._lock:
                self.files.append(data_file)
            if progress is not None:
                progress(rows)

        if len(bounds) <= _FSYNC_EACH_MAX and n <= _SMALL_BATCH_ROWS:
            # a small batch (a put_record, a micro-batch): each partition's rows written straight into
            # its folder (temporary name, fsync, rename), without the dataset writer's threads and a
            # staging folder, whose fixed cost was most of a one-row write (put_record p50 10.5 -> 6.0-7.8 ms)
            start = 0
            for hour_index, rows in zip(bounds, per_hour["rows"].to_list(), strict=True):
                rel = place(hour_index)
                write_parquet_atomic(table.slice(start, rows), Path(root + rel))
                keep(hour_index, rel, rows, os.stat(root + rel).st_size)
                start += rows
            return n
        import pyarrow.dataset as pads  # 0.24 s to import: not on the path of `tide serve` and readers

        staging = group_dir / _STAGING / secrets.token_hex(8)
        staged: list[tuple[str, int, int]] = []
        # many files: one syncfs instead of an fsync each (720 hour files: 0.14 s -> 0.05 s)
        sync_fd = _syncfs_fd(group_dir) if len(bounds) > _FSYNC_EACH_MAX else None
        try:
            pads.write_dataset(
                _partition_scanner(
                    table.append_column("__hour", hour.to_arrow()), per_hour["rows"].to_list()
                ),
                staging,
                format="parquet",
                partitioning=pads.partitioning(pa.schema([("__hour", pa.int64())]), flavor="filename"),
                basename_template="part-{i}.parquet.part",  # no `*.parquet` glob picks a staged file
                file_options=pads.ParquetFileFormat().make_write_options(**_parquet_options(self.schema)),
                file_visitor=lambda f: staged.append((f.path, f.metadata.num_rows, f.size)),
                max_partitions=len(bounds) + 1,
                # a file per hour open at once is fastest; past half the process' open-file limit the
                # writer closes files as it goes (input sorted by time: a partition rarely gets two)
                max_open_files=min(len(bounds) + 1, _open_file_budget()),
                existing_data_behavior="error",
            )
            synced = sync_fd is not None and _syncfs(sync_fd)
            if not synced:
                _fsync_each([Path(path) for path, _, _ in staged])
            for path, rows, size in staged:
                hour_index = int(os.path.basename(path).split("_", 1)[0])  # "<hour>_part-<i>.parquet.part"
                rel = place(hour_index)
                os.replace(path, root + rel)
                keep(hour_index, rel, rows, size)
            if sync_fd is not None and synced:
                _syncfs(sync_fd)  # the renames (otherwise the manifest's fsync commits them)
        finally:
            if sync_fd is not None:
                os.close(sync_fd)
            shutil.rmtree(staging, ignore_errors=True)
        return n

    def commit(self) -> list[DataFile]:
        """Make every written file visible at once."""
        if self._done:
            return self.files
        self._done = True
        if self.files:
            with self.store._locked(self.spec.name):
                self.store._append_manifest(self.spec.name, self.files)
        return self.files

    def abort(self) -> None:
        """Delete the uncommitted files."""
        if self._done:
            return
        self._done = True
        root = self.store.group_dir(self.spec.name)
        for f in self.files:
            (root / f.path).unlink(missing_ok=True)

    def __enter__(self) -> AppendTransaction:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class OfflineStore:
    """Append-only Parquet files per group under one root folder."""

    def __init__(self, root: str | Path, *, clock: Callable[[], int] | None = None) -> None:
        self.root = Path(root).resolve()
        self.clock = clock or MonotonicClock()
        self._manifests: dict[str, tuple[tuple[int, int, int], tuple[DataFile, ...]]] = {}

    # -- paths -------------------------------------------------------------------------------------
    def group_dir(self, group: str) -> Path:
        validate_group_name(group)
        path = (self.root / group).resolve()
        if path.parent != self.root:
            raise UnsafePath(
                f"{group!r} resolves outside the offline store", obj="offline store", field="group"
            )
        return path

    def location(self, group: str) -> str:
        """The folder of a group (SageMaker's `ResolvedOutputS3Uri`)."""
        return str(self.group_dir(group))

    @contextmanager
    def _locked(self, group: str) -> Iterator[None]:
        folder = self.group_dir(group)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / _LOCK, "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # -- manifest ----------------------------------------------------------------------------------
    def files(self, group: str) -> list[DataFile]:
        """The committed files of a group, oldest first.

        The manifest is a JSON-lines log: a header, then one `{"add": [...]}` line per committed batch
        (appended and fsynced under the lock), rewritten whole by compaction. A torn last line (a
        writer that crashed before its fsync returned) was never committed and is ignored.
        """
        path = self.group_dir(group) / MANIFEST
        try:
            stat = path.stat()
        except FileNotFoundError:
            return []
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        cached = self._manifests.get(group)
        if cached is not None and cached[0] == stamp:
            return list(cached[1])
        raw = path.read_bytes()
        lines = raw.split(b"\n")
        out: list[DataFile] = []
        try:
            header = orjson.loads(lines[0])
            if header.get("format") != 1:
                raise KeyError("format")
            for i, line in enumerate(lines[1:], start=1):
                if not line.strip():
                    continue
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    if i == len(lines) - 1:  # torn final line: an uncommitted append
                        break
                    raise
                out.extend(DataFile.from_json(f) for f in entry["add"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise IntegrityError(
                f"the manifest is unreadable ({exc})",
                obj=f"offline store of group {group}",
                field=MANIFEST,
                fix="restore it from a backup; the Parquet files beside it are intact",
            ) from exc
        self._manifests[group] = (stamp, tuple(out))
        return out

    def _header(self, group: str) -> bytes:
        return orjson.dumps({"format": 1, "group": group}) + b"\n"

    def _write_manifest(self, group: str, files: Sequence[DataFile]) -> None:
        """Replace the whole manifest atomically (compaction)."""
        body = self._header(group)
        if files:
            body += orjson.dumps({"add": [f.to_json() for f in files]}) + b"\n"
        _fsync_write(self.group_dir(group) / MANIFEST, body)

    def _append_manifest(self, group: str, files: Sequence[DataFile]) -> None:
        """Commit a batch: append one line and fsync it (the caller holds the lock)."""
        path = self.group_dir(group) / MANIFEST
        if not path.exists():
            _fsync_write(path, self._header(group))
        line = orjson.dumps({"add": [f.to_json() for f in files]}) + b"\n"
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":  # a crashed append left a torn line: drop it
                tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
                os.ftruncate(fd, size - len(tail) + tail.rfind(b"\n") + 1)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def select_files(
        self,
        group: str,
        *,
        min_event_us: int | None = None,
        max_event_us: int | None = None,
        max_write_us: int | None = None,
    ) -> list[DataFile]:
        """The committed files that may hold rows in the given ranges."""
        return [
            f
            for f in self.files(group)
            if (min_event_us is None or f.max_event_us >= min_event_us)
            and (max_event_us is None or f.min_event_us <= max_event_us)
            and (max_write_us is None or f.min_write_us <= max_write_us)
        ]

    def paths(self, group: str, files: Sequence[DataFile] | None = None) -> list[str]:
        """Absolute paths of `files` (default: every committed file of the group)."""
        root = f"{self.group_dir(group)}{os.sep}"  # joined as text: pathlib costs 10 ms for 720 files
        return [root + f.path for f in (self.files(group) if files is None else files)]

    def read_frame(
        self,
        spec: FeatureGroupSpec,
        files: Sequence[DataFile],
        columns: Sequence[str],
        *,
        rows: pl.Series | None = None,
    ) -> pl.DataFrame:
        """`columns` of `files`, in that order, as one frame in the group's current schema (null where
        a file predates a column). With `rows` (ascending row numbers of that frame), only those rows:
        the reader skips the rest without keeping them. Polars reads many small partition files faster
        than DuckDB's `read_parquet` (720 hour files, 1M rows, into memory: 0.13 s against 0.38 s)."""
        timestamp = pl.Datetime("us", "UTC")
        schema = pl.Schema(
            [(f.name, timestamp if f.name == spec.event_time else f.type.polars_dtype) for f in spec.features]
            + [("write_time", timestamp), ("api_invocation_time", timestamp), ("is_deleted", pl.Boolean())]
        )
        if not files:
            return pl.DataFrame(schema=schema).select(columns)
        scan = pl.scan_parquet(
            self.paths(spec.name, files),
            schema=schema,
            missing_columns="insert",
            extra_columns="ignore",
            hive_partitioning=False,
            row_index_name=None if rows is None else "__tide_row",
        )
        if rows is not None:
            scan = scan.filter(pl.col("__tide_row").is_in(rows.implode()))
        return scan.select(columns).collect()

    @staticmethod
    def keys_unique(files: Sequence[DataFile]) -> bool:
        """True if no two rows of `files` can share a record id and an event time, from the manifest
        alone: every file's write call had unique keys, and in each hour partition the event-time
        spans of different write calls do not overlap (different partitions are different hours).
        Datasets then join on the event time alone instead of the (event, api, write) tie-break key.
        """
        spans: dict[tuple[str, str], list[int]] = {}
        for f in files:
            if not (f.unique_keys and f.batch):
                return False
            span = spans.setdefault((f.partition, f.batch), [f.min_event_us, f.max_event_us])
            span[0], span[1] = min(span[0], f.min_event_us), max(span[1], f.max_event_us)
        by_partition: dict[str, list[list[int]]] = {}
        for (partition, _), span in spans.items():
            by_partition.setdefault(partition, []).append(span)
        for partition_spans in by_partition.values():
            partition_spans.sort()
            if any(a[1] >= b[0] for a, b in itertools.pairwise(partition_spans)):
                return False
        return True

    # -- writes ------------------------------------------------------------------------------------
    def begin(self, spec: FeatureGroupSpec) -> AppendTransaction:
        """Start an append; use as a context manager (commit on success, abort on error)."""
        self.group_dir(spec.name).mkdir(parents=True, exist_ok=True)
        return AppendTransaction(self, spec, self.clock)

    def append(
        self,
        spec: FeatureGroupSpec,
        frame: pl.DataFrame,
        *,
        api_invocation_us: int | None = None,
        write_us: int | None = None,
        unique_keys: bool = False,
    ) -> list[DataFile]:
        """Write and commit one batch (see `AppendTransaction.write` for the frame's shape)."""
        with self.begin(spec) as txn:
            api = self.clock() if api_invocation_us is None else api_invocation_us
            txn.write(frame, api_invocation_us=api, write_us=write_us, unique_keys=unique_keys)
        return txn.files

    def read_table(self, spec: FeatureGroupSpec) -> pa.Table:
        """Every committed row of a group (conformed to the current schema), in file order."""
        root = self.group_dir(spec.name)
        schema = arrow_schema(spec)
        tables = [conform(pq.read_table(root / f.path), schema) for f in self.files(spec.name)]
        if not tables:
            return schema.empty_table()
        return pa.concat_tables(tables)

    # -- maintenance -------------------------------------------------------------------------------
    def compact(
        self, spec: FeatureGroupSpec, *, progress: Callable[[int], None] | None = None
    ) -> CompactionReport:
        """Rewrite each partition's files into one, proving the rows are unchanged before committing.

        The merged file is compared with the rows it replaces (same multiset of rows, every column);
        only then is the manifest swapped, and the old files deleted afterwards. Files on disk that no
        manifest lists and that are older than an hour (left by crashed writers) are removed too.
        """
        group = spec.name
        root = self.group_dir(group)
        schema = arrow_schema(spec)
        before = self.files(group)
        by_partition: dict[str, list[DataFile]] = {}
        for f in before:
            by_partition.setdefault(f.partition, []).append(f)
        replacements: dict[str, DataFile] = {}  # old path -> new file (first old path of a partition)
        replaced: list[DataFile] = []
        rows = 0
        for partition, files in by_partition.items():
            if len(files) < 2 and all(f.columns == tuple(schema.names) for f in files):
                continue
            old = pa.concat_tables([conform(pq.read_table(root / f.path), schema) for f in files])
            sort_keys = [(spec.event_time, "ascending"), (spec.record_identifier, "ascending")]
            sort_keys += [("api_invocation_time", "ascending"), ("write_time", "ascending")]
            merged = old.sort_by(sort_keys)
            keys = pl.from_arrow(merged.select([spec.record_identifier, spec.event_time]))
            assert isinstance(keys, pl.DataFrame)
            new = self._write_compacted(root, partition, merged, files, not keys.is_duplicated().any())
            written = conform(pq.read_table(root / new.path), schema)
            if not _same_rows(old, written):
                (root / new.path).unlink(missing_ok=True)
                raise IntegrityError(
                    "the compacted file does not hold the same rows as the files it replaces",
                    obj=f"offline store of group {group}",
                    field=partition,
                    fix="nothing was changed; report this as a bug",
                )
            replacements[files[0].path] = new
            replaced.extend(files)
            rows += old.num_rows
            if progress:
                progress(1)
        if replaced:
            with self._locked(group):
                current = self.files(group)
                present = {f.path for f in current}
                missing = [f.path for f in replaced if f.path not in present]
                if missing:
                    for new in replacements.values():
                        (root / new.path).unlink(missing_ok=True)
                    raise IntegrityError(
                        "the group was compacted concurrently",
                        obj=f"offline store of group {group}",
                        fix="run compact again",
                    )
                gone = {f.path for f in replaced}
                out: list[DataFile] = []
                for f in current:
                    if f.path in replacements:
                        out.append(replacements[f.path])
                    elif f.path not in gone:
                        out.append(f)
                self._write_manifest(group, out)
            for f in replaced:
                (root / f.path).unlink(missing_ok=True)
        orphans = self._remove_orphans(group)
        return CompactionReport(
            group=group,
            files_before=len(before),
            files_after=len(self.files(group)),
            partitions_rewritten=len(replacements),
            rows_rewritten=rows,
            orphans_removed=len(orphans),
            removed_paths=orphans,
        )

    def _write_compacted(
        self, root: Path, partition: str, table: pa.Table, files: list[DataFile], unique_keys: bool
    ) -> DataFile:
        # statistics come from the replaced files, which hold exactly these rows
        max_ev = max(f.max_event_us for f in files)
        rel = _file_path(partition, max_ev)
        target = root / rel
        write_parquet_atomic(table, target)
        return DataFile(
            path=rel,
            rows=table.num_rows,
            size=target.stat().st_size,
            min_event_us=min(f.min_event_us for f in files),
            max_event_us=max_ev,
            min_write_us=min(f.min_write_us for f in files),
            max_write_us=max(f.max_write_us for f in files),
            columns=tuple(table.schema.names),
            batch=secrets.token_hex(8),
            unique_keys=unique_keys,
        )

    def _remove_orphans(self, group: str) -> list[str]:
        root = self.group_dir(group)
        listed = {f.path for f in self.files(group)}
        cutoff = time.time() - _ORPHAN_AGE_S
        removed = []
        for path in root.rglob("*"):
            if not path.is_file() or path.name in (MANIFEST, _LOCK):
                continue
            rel = path.relative_to(root).as_posix()
            if rel in listed or path.stat().st_mtime > cutoff:
                continue
            if path.suffix in (".parquet", ".part") or path.name.startswith(".tmp-"):
                path.unlink(missing_ok=True)
                removed.append(rel)
        return removed

    def drop(self, group: str, *, purge: bool = False) -> str | None:
        """Remove a group's folder: moved to `_deleted/<group>-<epoch>` (returned), or deleted if purge."""
        folder = self.group_dir(group)
        if not folder.exists():
            return None
        if purge:
            shutil.rmtree(folder)
            return None
        target = self.root / "_deleted" / f"{group}-{int(time.time())}-{secrets.token_hex(3)}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(folder, target)
        return str(target)


def _same_rows(a: pa.Table, b: pa.Table) -> bool:
    """True if two tables hold the same multiset of rows (every column compared)."""
    if a.num_rows != b.num_rows or a.schema.names != b.schema.names:
        return False
    keys = [(name, "ascending") for name in a.schema.names]
    return bool(a.sort_by(keys).equals(b.sort_by(keys)))
