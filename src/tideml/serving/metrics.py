"""Prometheus metrics in the text exposition format, summed over the server's worker processes.

Each worker counts in memory (no lock: the request path runs on one event-loop thread; the background
threads only read or add to their own counters). With several workers, each writes a snapshot of its
counters to a shared folder once a second, and `/metrics` on any worker adds the other workers' latest
snapshots to its own live numbers, so a scrape sees the whole server whichever worker answers it.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

__all__ = ["BUCKETS", "Metrics", "MetricsExporter", "render_prometheus"]

BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
Labels = tuple[tuple[str, str], ...]

HELP: dict[str, tuple[str, str]] = {
    "tide_requests_total": ("counter", "Invocation requests by variant and HTTP status."),
    "tide_records_total": ("counter", "Records scored by variant (shadow variants included)."),
    "tide_request_duration_seconds": ("histogram", "Time to answer an invocation, in the server."),
    "tide_stage_duration_seconds": (
        "histogram",
        "Time per request stage: lookup, transform, model, explain.",
    ),
    "tide_errors_total": ("counter", "Refused or failed invocations by error code."),
    "tide_rate_limited_total": ("counter", "Requests refused with 429 by API key id."),
    "tide_capture_events_total": ("counter", "Data-capture events by outcome (written, dropped, failed)."),
    "tide_shadow_failures_total": ("counter", "Shadow predictions that could not be made, by variant."),
    "tide_model_switches_total": ("counter", "Zero-downtime model switches after an alias moved."),
    "tide_model_info": ("gauge", "The model version each variant serves (value 1)."),
}


class Metrics:
    """Counters, gauges and histograms of one process."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, Labels], float] = {}
        self.gauges: dict[tuple[str, Labels], float] = {}
        self.histograms: dict[tuple[str, Labels], list[float]] = {}  # bucket counts..., sum, count

    def inc(self, name: str, labels: Labels = (), value: float = 1.0) -> None:
        key = (name, labels)
        self.counters[key] = self.counters.get(key, 0.0) + value

    def set_gauge(self, name: str, labels: Labels, value: float) -> None:
        self.gauges[(name, labels)] = value

    def clear_gauge(self, name: str) -> None:
        for key in [k for k in self.gauges if k[0] == name]:
            del self.gauges[key]

    def observe(self, name: str, labels: Labels, seconds: float) -> None:
        key = (name, labels)
        h = self.histograms.get(key)
        if h is None:
            h = self.histograms[key] = [0.0] * (len(BUCKETS) + 2)
        h[bisect.bisect_left(BUCKETS, seconds)] += 1  # index len(BUCKETS) is the +Inf-only bucket
        h[-2] += seconds
        h[-1] += 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy of every value."""

        def pack(d: dict[tuple[str, Labels], Any]) -> list[Any]:
            return [[name, [list(p) for p in labels], value] for (name, labels), value in list(d.items())]

        return {
            "counters": pack(self.counters),
            "gauges": pack(self.gauges),
            "histograms": pack(self.histograms),
            "at": time.time(),
        }


def _unpack(items: Iterable[Any]) -> Iterable[tuple[tuple[str, Labels], Any]]:
    for name, labels, value in items:
        yield (str(name), tuple((str(k), str(v)) for k, v in labels)), value


def _merge(
    snapshots: Iterable[dict[str, Any]],
) -> tuple[dict[Any, float], dict[Any, float], dict[Any, list[float]]]:
    counters: dict[Any, float] = {}
    gauges: dict[Any, float] = {}
    hists: dict[Any, list[float]] = {}
    for snap in snapshots:
        for key, value in _unpack(snap.get("counters", [])):
            counters[key] = counters.get(key, 0.0) + float(value)
        for key, value in _unpack(snap.get("gauges", [])):
            gauges[key] = float(value)  # gauges describe the server's state: the same in each worker
        for key, value in _unpack(snap.get("histograms", [])):
            have = hists.get(key)
            hists[key] = list(value) if have is None else [a + b for a, b in zip(have, value, strict=True)]
    return counters, gauges, hists


def _labels(labels: Labels, extra: tuple[tuple[str, str], ...] = ()) -> str:
    items = [*labels, *extra]
    if not items:
        return ""
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in items
    )
    return "{" + inner + "}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def render_prometheus(snapshots: Iterable[dict[str, Any]], base: Labels = ()) -> str:
    """The text exposition of the sum of several snapshots."""
    counters, gauges, hists = _merge(snapshots)
    names = sorted({k[0] for k in counters} | {k[0] for k in gauges} | {k[0] for k in hists})
    lines: list[str] = []
    for name in names:
        kind, text = HELP.get(name, ("untyped", name))
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        for (n, labels), value in sorted(counters.items()):
            if n == name:
                lines.append(f"{name}{_labels(base + labels)} {_num(value)}")
        for (n, labels), value in sorted(gauges.items()):
            if n == name:
                lines.append(f"{name}{_labels(base + labels)} {_num(value)}")
        for (n, labels), h in sorted(hists.items()):
            if n != name:
                continue
            running = 0.0
            for bound, count in zip(BUCKETS, h[: len(BUCKETS)], strict=True):
                running += count
                lines.append(f"{name}_bucket{_labels(base + labels, (('le', repr(bound)),))} {_num(running)}")
            lines.append(f"{name}_bucket{_labels(base + labels, (('le', '+Inf'),))} {_num(h[-1])}")
            lines.append(f"{name}_sum{_labels(base + labels)} {h[-2]!r}")
            lines.append(f"{name}_count{_labels(base + labels)} {_num(h[-1])}")
    return "\n".join(lines) + "\n"


class MetricsExporter:
    """Shares one worker's snapshot with the other workers through a folder, and reads theirs."""

    def __init__(
        self, metrics: Metrics, folder: str | os.PathLike[str] | None, *, interval: float = 1.0
    ) -> None:
        self.metrics = metrics
        self.folder = Path(folder) if folder else None
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._own = f"{os.getpid()}.json"

    def start(self) -> None:
        if self.folder is None or self._thread is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="tide-metrics", daemon=True)
        self._thread.start()

    def _write(self) -> None:
        assert self.folder is not None
        tmp = self.folder / f".{self._own}.tmp"
        tmp.write_bytes(orjson.dumps(self.metrics.snapshot()))
        os.replace(tmp, self.folder / self._own)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._write()
            except OSError:
                continue  # a full disk must not take the worker down; the next tick retries

    def others(self) -> list[dict[str, Any]]:
        """The latest snapshots of the other live workers."""
        if self.folder is None or not self.folder.is_dir():
            return []
        out: list[dict[str, Any]] = []
        for path in self.folder.glob("*.json"):
            if path.name == self._own:
                continue
            pid = path.stem
            if pid.isdigit() and not _alive(int(pid)):
                continue
            try:
                out.append(orjson.loads(path.read_bytes()))
            except (OSError, orjson.JSONDecodeError):
                continue
        return out

    def render(self, base: Labels = ()) -> str:
        return render_prometheus([self.metrics.snapshot(), *self.others()], base)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self.folder is not None:
            (self.folder / self._own).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
