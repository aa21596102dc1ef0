#!/usr/bin/env python
"""Feature store benchmark: tideml against Feast, same generated data, same run.

Measured on both sides, medians over `--repeats`:

* online get of one id, p50 / p99 (SQLite and Redis online stores);
* online get of 100 ids in one call, p50 / p99 (SQLite and Redis);
* beside the Redis gets, a bare-socket PING read by blocking: the round trip below which a client that
  waits for its reply cannot go on this machine (on a VM it includes waking idle vCPUs); and a
  bare-socket GET of the same records that spins for its reply: a client with no work of its own.
  Feast's get over that GET is the largest speed-up any client could show against Feast here;
* the same gets with both clients and Redis on one vCPU (`--one-cpu N`, default 0; -1 skips them): a
  private `redis-server` pinned to CPU N holds a second copy of the records, and each side pins itself
  to that CPU for its gets. On a VM most of a loopback round trip is waking the other, halted vCPU
  (tens of microseconds, more in the tail); on one vCPU that wake-up is gone for both sides and the
  rows compare the clients' own work. Needs `redis-server` on PATH;
* ingest rows/s into the offline store + the online store. tideml: `ws.features.ingest(frame)`
  (validation, Parquet partitions, SQLite upserts). Feast: writing the FileSource Parquet file plus
  `materialize()` into its online store (Feast's documented path from offline to online). Setup is
  outside the clock on both sides: Feast's `apply` (registry, SQLite tables) and the import of its
  online store's module when the store is built; tideml's group creation and the opening of its
  online store (the module import and, for Redis, a connection);
* point-in-time dataset: `ws.features.dataset(…)` (DuckDB ASOF join, Parquet artifact, manifest,
  lineage) against Feast's `get_historical_features(…).to_df()` on its file offline store.

Feast runs in `/work/main/.venv-peers` (see benchmarks/requirements-peers.txt) in a subprocess: this
file re-executes itself there with `--peer feast`, so that side imports nothing from tideml; that
process stays up for every repeat, as tideml's does. The sides alternate, one repeat each (tideml,
Feast, tideml, ...), so a noisy minute on a shared host hits both; besides the speed-up of the
medians the table prints the range of the repeats' own speed-ups.

Usage: python benchmarks/features.py [--entities 100000 --feature-rows 1000000] [--repeats 3]
       python benchmarks/features.py --entities 1000000 --feature-rows 10000000 --ids 1000000 --repeats 1
       (the issue's size: 1M entity rows against 10M feature rows)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
PEERS_PYTHON = HERE.parent / ".venv-peers" / "bin" / "python"
RESULT = "RESULT "  # marks the Feast peer's result line (Feast prints progress to stdout too)
BASE = datetime(2024, 1, 1, tzinfo=UTC)
SPAN_DAYS = 30


# -- data --------------------------------------------------------------------------------------------
def generate(
    workdir: Path, n_entities: int, n_rows: int, n_ids: int, n_features: int, seed: int
) -> dict[str, str]:
    """Feature rows (id, event_time, f0..fN) over 30 days and entity rows (id, event_timestamp)."""
    rng = np.random.default_rng(seed)
    base_us = int(BASE.timestamp() * 1_000_000)
    span_us = SPAN_DAYS * 86_400 * 1_000_000
    features = {
        "id": rng.integers(0, n_ids, n_rows, dtype=np.int64),
        "event_time": pa.array(base_us + rng.integers(0, span_us, n_rows), pa.int64()).cast(
            pa.timestamp("us", tz="UTC")
        ),
    }
    for i in range(n_features):
        features[f"f{i}"] = rng.random(n_rows)
    entities = {
        "id": rng.integers(0, n_ids, n_entities, dtype=np.int64),
        "event_timestamp": pa.array(
            base_us + rng.integers(span_us // 10, span_us + span_us // 10, n_entities)
        ).cast(pa.timestamp("us", tz="UTC")),
    }
    paths = {"features": str(workdir / "features.parquet"), "entities": str(workdir / "entities.parquet")}
    pq.write_table(pa.table(features), paths["features"])
    pq.write_table(pa.table(entities), paths["entities"])
    return paths


def percentiles_ms(samples: Sequence[float]) -> tuple[float, float]:
    xs = np.asarray(samples) * 1000
    return float(np.percentile(xs, 50)), float(np.percentile(xs, 99))


def time_calls(fn: Callable[[Any], Any], args: Sequence[Any]) -> tuple[float, float]:
    """p50 and p99 in milliseconds of fn(arg) over args (after a short warm-up)."""
    for a in args[:50]:
        fn(a)
    samples = []
    clock = time.perf_counter
    for a in args:
        t = clock()
        fn(a)
        samples.append(clock() - t)
    return percentiles_ms(samples)


def _bare_socket(url: str) -> tuple[Any, str]:
    """A TCP_NODELAY socket to the Redis of `redis://host:port/db`, and the database number."""
    host, db = url.split("//", 1)[1].split("/", 1)
    name, port = host.split(":")
    sock = socket.create_connection((name, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock, db


def redis_ping_floor(url: str, n: int = 5000, pause_us: int = 20) -> tuple[float, float]:
    """p50/p99 (ms) of a bare-socket PING sent `pause_us` after the previous reply and read by blocking,
    as redis-py (so Feast) reads: the round trip a blocking client cannot beat. On a VM a pause of a
    few microseconds lets Redis' vCPU halt, and a blocked reader's vCPU halts too, so both wake-ups are
    in it, as in any lookup loop (tideml's reads spin for the reply, which saves the reader's)."""
    sock, _ = _bare_socket(url)
    samples = []
    clock = time.perf_counter
    for _ in range(n):
        resume = time.perf_counter_ns() + pause_us * 1000
        while time.perf_counter_ns() < resume:
            pass
        t = clock()
        sock.sendall(b"PING\r\n")
        sock.recv(64)
        samples.append(clock() - t)
    sock.close()
    return percentiles_ms(samples[100:])


def redis_get_floor(url: str, keys: Sequence[bytes]) -> tuple[float, float]:
    """p50/p99 (ms) of a bare-socket GET of each stored key, sent right after the previous reply and
    awaited by spinning: no client work at all, so no client of this Redis on this machine can read a
    record faster. Feast's get over this is the most any client could be faster than Feast here."""
    import select

    import hiredis

    sock, rest = _bare_socket(url)
    reader = hiredis.Reader()
    poller = select.poll()
    poller.register(sock, select.POLLIN)

    def get(command: bytes) -> Any:
        sock.sendall(command)
        while (reply := reader.gets()) is False:
            while not poller.poll(0):
                pass
            reader.feed(sock.recv(65536))
        return reply

    if get(b"*2\r\n$6\r\nSELECT\r\n$%d\r\n%b\r\n" % (len(rest), rest.encode())) != b"OK":
        raise RuntimeError(f"Redis refused SELECT {rest} (the bare GET takes redis://host:port/db)")
    commands = [b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n" % (len(k), k) for k in keys]
    samples = []
    found = 0
    clock = time.perf_counter
    for command in commands:
        t = clock()
        found += get(command) is not None  # an id the data lacks is a miss, as for the gets timed
        samples.append(clock() - t)
    if not found:
        raise RuntimeError(f"the bare GET found none of the records (keys like {keys[0]!r})")
    sock.close()
    return percentiles_ms(samples[100:] if len(samples) > 200 else samples)


@contextlib.contextmanager
def on_cpu(cpu: int) -> Iterator[None]:
    """Run the calling thread on CPU `cpu` only, then as before."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def start_pinned_redis(cpu: int) -> tuple[subprocess.Popen[bytes] | None, str]:
    """A private redis-server (no persistence) on a free port, pinned to CPU `cpu` from its start, and
    its URL; or None and why the one-vCPU rows are skipped."""
    exe = shutil.which("redis-server")
    if exe is None:
        return None, "one-vCPU rows skipped: redis-server is not on PATH"
    if not hasattr(os, "sched_setaffinity"):
        return None, "one-vCPU rows skipped: this OS cannot pin a process to a CPU"
    if cpu not in os.sched_getaffinity(0):
        return None, f"one-vCPU rows skipped: CPU {cpu} is not available to this process"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cmd = [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),  # before exec: every Redis thread inherits it
    )
    try:
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return proc, f"redis://127.0.0.1:{port}/0"
            except OSError:
                time.sleep(0.05)
    except BaseException:
        stop_process(proc)
        raise
    stop_process(proc)
    return None, f"one-vCPU rows skipped: {exe} did not answer on port {port}"


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def median_of(results: list[dict[str, float]]) -> dict[str, float]:
    keys = results[0].keys()
    return {k: float(statistics.median(r[k] for r in results)) for k in keys}


# -- tideml ------------------------------------------------------------------------------------------
def ingest_and_get(
    out: dict[str, float], fs: Any, backend: str, frame: Any, one_ids: list[int], batches: list[list[int]]
) -> None:
    """Ingest rows/s, then single and 100-id get latencies, of one online backend."""
    t = time.perf_counter()
    fs.ingest("bench", frame, progress=False, workers=4)
    out["ingest_rows_s" if backend == "sqlite" else f"ingest_{backend}_rows_s"] = frame.height / (
        time.perf_counter() - t
    )
    time_gets(out, fs, backend, one_ids, batches)


def time_gets(
    out: dict[str, float], fs: Any, backend: str, one_ids: list[int], batches: list[list[int]]
) -> None:
    out[f"get1_{backend}_p50"], out[f"get1_{backend}_p99"] = time_calls(
        lambda i: fs.get_record("bench", i), one_ids
    )
    out[f"get100_{backend}_p50"], out[f"get100_{backend}_p99"] = time_calls(
        lambda ids: fs.batch_get_record({"bench": ids}), batches
    )


def tideml_repeat(
    args: argparse.Namespace, paths: dict[str, str], workdir: Path, r: int, state: dict[str, Any]
) -> dict[str, float]:
    """One repeat on the tideml side, in a new workspace (the frames are read once, in `state`)."""
    import polars as pl

    from tideml.features import FeatureStore
    from tideml.workspace import Workspace

    if not state:
        rng = np.random.default_rng(args.seed + 1)
        state["frame"] = pl.read_parquet(paths["features"])
        state["entities"] = pl.read_parquet(paths["entities"])
        state["one_ids"] = rng.integers(0, args.ids, args.lookups).tolist()
        state["batches"] = [rng.integers(0, args.ids, 100).tolist() for _ in range(args.batch_lookups)]
    frame, entities, one_ids, batches = (state[k] for k in ("frame", "entities", "one_ids", "batches"))
    prefix = f"tidebench:{uuid.uuid4().hex[:10]}:"
    out: dict[str, float] = {}
    ws = Workspace.init(workdir / f"tideml-{r}")
    fs = FeatureStore(ws)
    # set up before the clock starts, as Feast's `apply` registers its view and creates its online
    # tables before its timed materialize
    fs.create_group_from_frame("bench", frame.head(1000), record_identifier="id", event_time="event_time")
    fs.online.ping()
    ingest_and_get(out, fs, "sqlite", frame, one_ids, batches)
    t = time.perf_counter()
    ds = fs.dataset(["bench.*"], entities=entities, entity_time="event_timestamp", name="bench")
    out["dataset_s"] = time.perf_counter() - t
    out["dataset_rows"] = float(ds.rows)
    # Redis: the same group in a second store object pointed at Redis
    rfs = FeatureStore(ws, online_url=f"{args.redis_url}?prefix={prefix}")
    rfs.online.ping()  # imported and connected before the clock starts (Feast imports at build)
    ingest_and_get(out, rfs, "redis", frame, one_ids, batches)
    out["redis_ping_p50"], out["redis_ping_p99"] = redis_ping_floor(args.redis_url)
    out["redis_get_floor_p50"], out["redis_get_floor_p99"] = redis_get_floor(
        args.redis_url, [f"{prefix}bench:{i}".encode() for i in one_ids]
    )
    rfs.online.drop_group("bench")
    rfs.close()
    if args.pinned_redis_url:  # the same gets, this thread and a private Redis on one vCPU
        pfs = FeatureStore(ws, online_url=f"{args.pinned_redis_url}?prefix={prefix}")
        pfs.ingest("bench", frame, progress=False, workers=4)  # offline rows again: nothing reads them
        with on_cpu(args.one_cpu):
            time_gets(out, pfs, "redis1cpu", one_ids, batches)
            out["redis1cpu_get_floor_p50"], out["redis1cpu_get_floor_p99"] = redis_get_floor(
                args.pinned_redis_url, [f"{prefix}bench:{i}".encode() for i in one_ids]
            )
        pfs.online.drop_group("bench")
        pfs.close()
    fs.close()
    ws.close()
    return out


# -- Feast (runs in .venv-peers) ---------------------------------------------------------------------
FEAST_YAML = """project: {project}
registry: {repo}/registry.db
provider: local
online_store:
{online}
offline_store:
    type: file
entity_key_serialization_version: 3
"""


def _feast_store(repo: Path, project: str, online: str, paths: dict[str, str], n_features: int) -> Any:
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(FEAST_YAML.format(project=project, repo=repo, online=online))
    entity = Entity(name="id", join_keys=["id"], value_type=ValueType.INT64)
    source = FileSource(name="bench_source", path=paths["features"], timestamp_field="event_time")
    view = FeatureView(
        name="bench",
        entities=[entity],
        ttl=timedelta(days=3650),  # no look-back limit, as on the tideml side
        schema=[Field(name=f"f{i}", dtype=Float64) for i in range(n_features)],
        source=source,
        online=True,
    )
    store = FeatureStore(repo_path=str(repo))
    store.apply([entity, view])
    return store


def feast_repeat(args: argparse.Namespace, paths: dict[str, str], workdir: Path, r: int) -> dict[str, float]:
    """One repeat on the Feast side (run in .venv-peers, in its own process)."""
    import pandas as pd

    refs = [f"bench:f{i}" for i in range(args.features)]
    rng = np.random.default_rng(args.seed + 1)
    one_ids = rng.integers(0, args.ids, args.lookups).tolist()
    batches = [rng.integers(0, args.ids, 100).tolist() for _ in range(args.batch_lookups)]
    entities = pd.read_parquet(paths["entities"])
    start, end = BASE - timedelta(days=1), BASE + timedelta(days=SPAN_DAYS + 1)
    out: dict[str, float] = {}
    project = f"tidebench{uuid.uuid4().hex[:8]}"
    repo = workdir / f"feast-{r}"
    data = pd.read_parquet(paths["features"])
    source_path = repo / "features.parquet"
    repo.mkdir(parents=True, exist_ok=True)
    local = dict(paths, features=str(source_path))
    data.to_parquet(source_path)  # present before `apply`; written again (timed) below
    store = _feast_store(repo, project, f"    type: sqlite\n    path: {repo}/online.db", local, args.features)
    t = time.perf_counter()
    data.to_parquet(source_path)  # the offline write: Feast's file offline store is this file
    store.materialize(start, end)
    out["ingest_rows_s"] = len(data) / (time.perf_counter() - t)

    def time_gets(s: Any, backend: str) -> None:
        """Feast's online gets of one id and of 100 ids from store `s`."""
        out[f"get1_{backend}_p50"], out[f"get1_{backend}_p99"] = time_calls(
            lambda i: s.get_online_features(features=refs, entity_rows=[{"id": i}]).to_dict(), one_ids
        )
        out[f"get100_{backend}_p50"], out[f"get100_{backend}_p99"] = time_calls(
            lambda ids: s.get_online_features(features=refs, entity_rows=[{"id": i} for i in ids]).to_dict(),
            batches,
        )

    def redis_store(url: str, name: str) -> Any:
        host, db = url.split("//", 1)[1].split("/", 1)
        online = f'    type: redis\n    connection_string: "{host},db={db}"'
        return _feast_store(workdir / f"feast-{name}-{r}", project + name, online, local, args.features)

    time_gets(store, "sqlite")
    t = time.perf_counter()
    df = store.get_historical_features(entity_df=entities, features=refs).to_df()
    out["dataset_s"] = time.perf_counter() - t
    out["dataset_rows"] = float(len(df))
    rstore = redis_store(args.redis_url, "redis")
    t = time.perf_counter()
    data.to_parquet(source_path)
    rstore.materialize(start, end)
    out["ingest_redis_rows_s"] = len(data) / (time.perf_counter() - t)
    time_gets(rstore, "redis")
    out["redis_ping_p50"], out["redis_ping_p99"] = redis_ping_floor(args.redis_url)
    rstore.teardown()  # removes its Redis keys
    if args.pinned_redis_url:  # the same gets, this process and a private Redis on one vCPU
        pstore = redis_store(args.pinned_redis_url, "redis1cpu")
        pstore.materialize(start, end)
        with on_cpu(args.one_cpu):
            time_gets(pstore, "redis1cpu")
        pstore.teardown()
    return out


# -- report ------------------------------------------------------------------------------------------
ROWS = [
    ("online get, 1 id, SQLite   p50 (ms)", "get1_sqlite_p50", "lower"),
    ("online get, 1 id, SQLite   p99 (ms)", "get1_sqlite_p99", "lower"),
    ("online get, 1 id, Redis    p50 (ms)", "get1_redis_p50", "lower"),
    ("online get, 1 id, Redis    p99 (ms)", "get1_redis_p99", "lower"),
    ("  bare-socket PING, blocking p50 (ms)", "redis_ping_p50", "none"),
    ("  bare-socket PING, blocking p99 (ms)", "redis_ping_p99", "none"),
    ("  bare-socket GET, spinning p50 (ms)", "redis_get_floor_p50", "none"),
    ("  bare-socket GET, spinning p99 (ms)", "redis_get_floor_p99", "none"),
    ("online get, 1 id, Redis, 1 vCPU p50 (ms)", "get1_redis1cpu_p50", "lower"),
    ("online get, 1 id, Redis, 1 vCPU p99 (ms)", "get1_redis1cpu_p99", "lower"),
    ("  bare-socket GET, 1 vCPU p50 (ms)", "redis1cpu_get_floor_p50", "none"),
    ("  bare-socket GET, 1 vCPU p99 (ms)", "redis1cpu_get_floor_p99", "none"),
    ("online get, 100 ids, SQLite p50 (ms)", "get100_sqlite_p50", "lower"),
    ("online get, 100 ids, SQLite p99 (ms)", "get100_sqlite_p99", "lower"),
    ("online get, 100 ids, Redis p50 (ms)", "get100_redis_p50", "lower"),
    ("online get, 100 ids, Redis p99 (ms)", "get100_redis_p99", "lower"),
    ("online get, 100 ids, Redis, 1 vCPU p50 (ms)", "get100_redis1cpu_p50", "lower"),
    ("online get, 100 ids, Redis, 1 vCPU p99 (ms)", "get100_redis1cpu_p99", "lower"),
    ("ingest offline+SQLite (rows/s)", "ingest_rows_s", "higher"),
    ("ingest offline+Redis (rows/s)", "ingest_redis_rows_s", "higher"),
    ("point-in-time dataset (s)", "dataset_s", "lower"),
    ("  rows in the dataset", "dataset_rows", "none"),
]


def speedup(tide: float | None, feast: float | None, better: str) -> float | None:
    """How many times faster tideml is: feast / tideml for times, tideml / feast for rates."""
    if tide is None or feast is None or tide <= 0 or feast <= 0 or better == "none":
        return None
    return feast / tide if better == "lower" else tide / feast


def report(
    args: argparse.Namespace,
    tide_runs: list[dict[str, float]],
    feast_runs: list[dict[str, float]],
    note: str,
) -> None:
    """Medians of each side, the speed-up of the medians, and the range of the speed-ups of the
    repeats (repeat r of tideml against repeat r of Feast, which ran right after it)."""
    tide = median_of(tide_runs)
    feast = median_of(feast_runs) if feast_runs else None
    print(
        f"\nfeature store benchmark: {args.entities:,} entity rows x {args.feature_rows:,} feature rows, "
        f"{args.ids:,} ids, {args.features} features, medians of {args.repeats} repeat(s), "
        f"{args.lookups:,} single / {args.batch_lookups:,} batch lookups"
    )
    head = f"{'metric':<46}{'tideml':>14}{'feast':>14}{'speed-up':>12}{'repeats':>16}"
    print(head)
    print("-" * len(head))
    for label, key, better in ROWS:
        if key not in tide:
            continue
        t = tide.get(key)
        f = feast.get(key) if feast else None
        ratio = speedup(t, f, better)
        pairs = zip(tide_runs, feast_runs, strict=False)
        known = [x for a, b in pairs if (x := speedup(a.get(key), b.get(key), better)) is not None]
        spread = f"{min(known):.1f}-{max(known):.1f}x" if len(known) > 1 else ""
        fmt = (lambda v: f"{v:,.0f}") if key.endswith(("rows_s", "rows")) else (lambda v: f"{v:.3f}")
        shown_t = fmt(t) if t is not None else "-"
        shown_f = fmt(f) if f is not None else "-"
        shown_r = f"{ratio:.1f}x" if ratio is not None else ""
        print(f"{label:<46}{shown_t:>14}{shown_f:>14}{shown_r:>12}{spread:>16}")
    for where, floor_key, get_key in (
        ("", "redis_get_floor", "get1_redis"),
        (", 1 vCPU", "redis1cpu_get_floor", "get1_redis1cpu"),
    ):
        floor = {q: tide.get(f"{floor_key}_p{q}") for q in (50, 99)}
        if feast and get_key + "_p50" in feast and all(floor.values()):
            ceiling = " / ".join(f"{feast[f'{get_key}_p{q}'] / v:.1f}x" for q, v in floor.items() if v)
            print(f"Redis get{where}, Feast / bare GET (p50 / p99): {ceiling}: a no-work client's speed-up")
    if args.pinned_redis_url:
        print(
            f"1 vCPU: the gets ran with this process, Feast's and a private redis-server pinned to CPU "
            f"{args.one_cpu}: no cross-vCPU wake-up in the round trip"
        )
    if note.strip():
        print(note.strip())
    print("speed-up = how many times faster tideml is (feast / tideml for times, tideml / feast for rates),")
    print("of the medians; repeats = the lowest and highest speed-up of one repeat against the Feast repeat")
    print("that ran right after it (the sides alternate, so a noisy minute on a shared host hits both)")


class FeastPeer:
    """The Feast side in one long-lived process in .venv-peers (it imports nothing from tideml), which
    runs a repeat whenever it is sent its number: warm after its first repeat, as tideml's process is."""

    def __init__(self, args: argparse.Namespace, paths: dict[str, str], workdir: Path) -> None:
        cmd = [str(PEERS_PYTHON), __file__, "--peer", "feast", "--paths", json.dumps(paths)]
        cmd += ["--workdir", str(workdir), "--ids", str(args.ids), "--features", str(args.features)]
        cmd += ["--lookups", str(args.lookups), "--batch-lookups", str(args.batch_lookups)]
        cmd += ["--seed", str(args.seed), "--redis-url", args.redis_url, "--one-cpu", str(args.one_cpu)]
        if args.pinned_redis_url:
            cmd += ["--pinned-redis-url", args.pinned_redis_url]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        self.timeout = args.feast_timeout
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  -- closed in close(); Feast's output
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env
        )
        self.lines: queue.Queue[str] = queue.Queue()  # stdout, read on a thread: waits can time out
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")  # the process ended

    def run(self, r: int) -> tuple[dict[str, float] | None, str]:
        """Repeat r's numbers, or None and why not."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{r}\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
                if line.startswith(RESULT):
                    return json.loads(line[len(RESULT) :]), ""
                if not line:
                    self.log.seek(0)
                    return None, "Feast side failed:\n" + self.log.read()[-3000:]
        except queue.Empty:
            self.proc.kill()
            return None, f"Feast side stopped after {self.timeout} s"

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def serve_feast(args: argparse.Namespace) -> None:
    """Peer mode: run the Feast repeat named by each line of stdin, print its numbers after RESULT."""
    for line in sys.stdin:
        out = feast_repeat(args, json.loads(args.paths), Path(args.workdir), int(line))
        print(RESULT + json.dumps(out), flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entities", type=int, default=100_000, help="entity rows of the dataset")
    p.add_argument("--feature-rows", type=int, default=1_000_000, help="feature rows ingested")
    p.add_argument("--ids", type=int, default=100_000, help="distinct record ids")
    p.add_argument("--features", type=int, default=10, help="Fractional features per row")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--lookups", type=int, default=5000, help="single-id online gets per repeat")
    p.add_argument("--batch-lookups", type=int, default=2000, help="100-id online gets per repeat")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    p.add_argument(
        "--workdir", type=Path, default=None, help="where data and stores go (default: a temp dir)"
    )
    p.add_argument("--one-cpu", type=int, default=0, help="CPU for the one-vCPU Redis gets (-1: skip them)")
    p.add_argument("--skip-feast", action="store_true")
    p.add_argument("--feast-timeout", type=int, default=3600, help="seconds before a Feast repeat is stopped")
    p.add_argument("--peer", choices=["feast"], help=argparse.SUPPRESS)
    p.add_argument("--paths", help=argparse.SUPPRESS)
    p.add_argument("--pinned-redis-url", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.peer == "feast":
        serve_feast(args)
        return
    pinned, url_or_why = start_pinned_redis(args.one_cpu) if args.one_cpu >= 0 else (None, "")
    args.pinned_redis_url = url_or_why if pinned else None
    try:
        run(args, "" if pinned else url_or_why)
    finally:
        if pinned is not None:
            stop_process(pinned)


def run(args: argparse.Namespace, note: str) -> None:
    """Generate the data, run the repeats (the sides alternating) and print the report."""
    with tempfile.TemporaryDirectory(prefix="tide-bench-features-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"generating data in {workdir}", file=sys.stderr, flush=True)
        paths = generate(workdir, args.entities, args.feature_rows, args.ids, args.features, args.seed)
        run_feast = not args.skip_feast and PEERS_PYTHON.exists()
        if not args.skip_feast and not run_feast:
            note += f"\nFeast not run: {PEERS_PYTHON} is missing"
            note += " (pip install -r benchmarks/requirements-peers.txt)"
        tide_runs: list[dict[str, float]] = []
        feast_runs: list[dict[str, float]] = []
        state: dict[str, Any] = {}
        peer = FeastPeer(args, paths, workdir) if run_feast else None
        try:
            for r in range(args.repeats):  # the sides alternate: a noisy minute hits both
                tide_runs.append(tideml_repeat(args, paths, workdir, r, state))
                print(f"  tideml repeat {r + 1}/{args.repeats} done", file=sys.stderr, flush=True)
                if peer is not None:
                    feast_run, why = peer.run(r)
                    if feast_run is None:
                        note += "\n" + why
                        peer.close()
                        peer, feast_runs = None, []
                    else:
                        feast_runs.append(feast_run)
                        print(f"  feast repeat {r + 1}/{args.repeats} done", file=sys.stderr, flush=True)
        finally:
            if peer is not None:
                peer.close()
        report(args, tide_runs, feast_runs, note)


if __name__ == "__main__":
    main()
