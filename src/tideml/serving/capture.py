"""Data capture: sampled requests and responses written to rotating files by a background thread.

The request path only does `queue.put_nowait(event)`: when the queue is full the event is dropped and
counted, never waited for. The writer thread serialises events and appends them to the current file,
partitioned by hour like SageMaker's capture (`<folder>/YYYY/MM/DD/HH/`). A file is written as
`<name>.part` and renamed when it is rotated (by size, by age, at the turn of the hour, or at shutdown),
so readers such as the monitor only ever see complete files. JSON lines are flushed every
`flush_seconds`; Parquet files are written whole (temp file + rename) at rotation.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

__all__ = ["CaptureWriter"]

_STOP = object()


def _default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"cannot capture a {type(obj).__name__}")


class CaptureWriter:
    """A bounded queue and a thread that writes captured events to rotating JSON-lines/Parquet files."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        fmt: str = "jsonl",
        rotate_bytes: int = 64 << 20,
        rotate_seconds: float = 3600.0,
        flush_seconds: float = 1.0,
        queue_size: int = 10_000,
        prefix: str = "capture",
        on_count: Callable[[str, int], None] | None = None,
    ) -> None:
        if fmt not in ("jsonl", "parquet"):
            raise ValueError(f"unknown capture format {fmt!r}")
        self.folder = Path(folder)
        self.fmt = fmt
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.flush_seconds = flush_seconds
        self.prefix = f"{prefix}-{os.getpid()}"
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self.files: list[Path] = []
        self._on_count = on_count
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._fh: IO[bytes] | None = None
        self._part: Path | None = None
        self._rows: list[dict[str, Any]] = []
        self._size = 0
        self._opened = 0.0
        self._hour = ""
        self._lock = threading.Lock()

    # -- request path --------------------------------------------------------------------------------
    def put(self, event: dict[str, Any]) -> bool:
        """Queue one event; False (and counted) if the queue is full. Never blocks."""
        try:
            self.queue.put_nowait(event)
            return True
        except queue.Full:
            self.dropped += 1
            if self._on_count is not None:
                self._on_count("dropped", 1)
            return False

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tide-capture", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, close the current file (renaming it complete) and stop the thread."""
        if self._thread is None:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.queue.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                if time.monotonic() > deadline:
                    break
        self._thread.join(timeout=max(0.1, deadline - time.monotonic()))
        self._thread = None

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued event is written and the current file is complete (for tests, shutdown)."""
        if self._thread is None:
            while True:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                with self._lock:
                    if item is not _STOP:
                        self._write(item)
                self.queue.task_done()
        deadline = time.monotonic() + timeout
        while self.queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            self._rotate()

    # -- writer thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        last_flush = time.monotonic()
        while True:
            try:
                item = self.queue.get(timeout=self.flush_seconds)
            except queue.Empty:
                item = None
            try:
                if item is _STOP:
                    with self._lock:
                        self._rotate()
                    return
                with self._lock:
                    if item is not None:
                        self._write(item)
                    now = time.monotonic()
                    if self._fh is not None and now - last_flush >= self.flush_seconds:
                        self._fh.flush()
                        last_flush = now
                    if self._part is not None and now - self._opened >= self.rotate_seconds:
                        self._rotate()
            except Exception:
                self.failed += 1
                if self._on_count is not None:
                    self._on_count("failed", 1)
            finally:
                if item is not None:
                    self.queue.task_done()

    def _write(self, event: dict[str, Any]) -> None:
        stamp = datetime.now(UTC)
        hour = stamp.strftime("%Y/%m/%d/%H")
        if self._part is not None and (hour != self._hour or self._size >= self.rotate_bytes):
            self._rotate()
        if self._part is None:
            self._open(stamp, hour)
        if self.fmt == "jsonl":
            line = orjson.dumps(event, default=_default, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"
            assert self._fh is not None
            self._fh.write(line)
            self._size += len(line)
        else:
            self._rows.append(event)
            self._size += 256  # an estimate: Parquet's size is known only when it is written
        self.written += 1
        if self._on_count is not None:
            self._on_count("written", 1)

    def _open(self, stamp: datetime, hour: str) -> None:
        folder = self.folder / hour
        folder.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        name = f"{self.prefix}-{stamp.strftime('%Y%m%dT%H%M%S')}-{self._seq:05d}.{self.fmt}"
        self._part = folder / (name + ".part")
        self._hour = hour
        self._size = 0
        self._opened = time.monotonic()
        if self.fmt == "jsonl":
            self._fh = open(self._part, "ab")  # noqa: SIM115  -- kept open across events, closed on rotation

    def _rotate(self) -> None:
        if self._part is None:
            return
        part, final = self._part, self._part.with_suffix("")
        if self.fmt == "jsonl":
            assert self._fh is not None
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
            os.replace(part, final)
        elif self._rows:
            self._write_parquet(part, final)
        self._part = None
        self._rows = []
        self.files.append(final)

    def _write_parquet(self, part: Path, final: Path) -> None:
        import pyarrow as pa  # only the Parquet format needs it
        import pyarrow.parquet as pq

        rows = [
            {
                k: (orjson.dumps(v, default=_default).decode() if isinstance(v, dict | list) else v)
                for k, v in r.items()
            }
            for r in self._rows
        ]
        pq.write_table(pa.Table.from_pylist(rows), part, compression="zstd")
        os.replace(part, final)
