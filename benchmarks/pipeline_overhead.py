"""Benchmark: the pipeline engine's own overhead (tiny steps, so only the engine is measured).

A pipeline of N steps (default 20: four independent chains of five steps, each step a few
microseconds of polars work) runs once cold, then again unchanged: the re-run must execute zero steps,
and its wall time is the engine's cost of proving that (definition hashing, cache keys, cache lookups,
run history and lineage writes). It also measures raw cache lookups per second and the per-step
overhead of executed steps on the inline executor and on the spawned local process pool.
No orchestrator publishes a comparable figure (see shared/reference/platforms.md §3.4), so no peer runs.

    .venv/bin/python benchmarks/pipeline_overhead.py                     # 20 steps, 5 repeats
    .venv/bin/python benchmarks/pipeline_overhead.py --chains 10 --depth 10 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl

from tideml.pipelines import StepCache, pipeline, run_pipeline, step
from tideml.pipelines.history import RunHistory
from tideml.workspace import Workspace

CHAINS = 4
DEPTH = 5


@step
def start(chain: int, rows: int) -> pl.DataFrame:
    return pl.DataFrame({"chain": [chain] * rows, "x": list(range(rows))})


@step
def stage(data: pl.DataFrame, level: int) -> pl.DataFrame:
    return data.with_columns(x=pl.col("x") + level)


@pipeline
def overhead(rows: int = 100) -> None:
    """CHAINS independent chains of DEPTH steps (defined by the command-line options)."""
    for c in range(CHAINS):
        data = start.with_options(name=f"start_{c}")(chain=c, rows=rows)
        for level in range(1, DEPTH):
            data = stage.with_options(name=f"stage_{c}_{level}")(data=data, level=level)


def _timed(ws: Workspace, executor: str, rows: int) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = run_pipeline(ws, overhead, {"rows": rows}, executor=executor, progress=False)
    elapsed = time.perf_counter() - t0
    if result.status != "Succeeded":
        raise SystemExit(f"run failed: {result.error}")
    return elapsed, result


def main(argv: list[str] | None = None) -> None:
    global CHAINS, DEPTH
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chains", type=int, default=CHAINS, help="independent chains (default 4)")
    parser.add_argument("--depth", type=int, default=DEPTH, help="steps per chain (default 5)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="repeats of each measurement (median reported)"
    )
    parser.add_argument("--lookups", type=int, default=2000, help="cache lookups timed")
    parser.add_argument("--pool", default="local:2", help="process-pool executor for the cold-run row")
    args = parser.parse_args(argv)
    CHAINS, DEPTH = args.chains, args.depth
    n_steps = CHAINS * DEPTH

    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp, Workspace.init(Path(tmp) / "ws") as ws:
        overhead.__dict__.pop("graph", None)  # the graph depends on CHAINS/DEPTH
        # cold runs: every step executes (a new `rows` value per repeat so nothing is cached)
        cold_inline, per_step_inline = [], []
        for r in range(args.repeats):
            elapsed, result = _timed(ws, "inline", 1000 + r)
            work = sum(s.duration_s or 0.0 for s in result.steps.values())
            cold_inline.append(elapsed)
            per_step_inline.append((elapsed - work) / n_steps)
            assert len(result.executed) == n_steps
        cold_pool = []
        for r in range(max(1, args.repeats // 2)):
            elapsed, result = _timed(ws, args.pool, 2000 + r)
            cold_pool.append(elapsed)
            assert len(result.executed) == n_steps
        # unchanged re-runs: zero steps executed
        _timed(ws, "inline", 7)
        rerun, executed = [], []
        for _ in range(args.repeats):
            elapsed, result = _timed(ws, args.pool, 7)
            rerun.append(elapsed)
            executed.append(len(result.executed))
        # raw cache lookups of the keys just recorded
        keys = [s.cache_key for s in RunHistory(ws).get_run(result.run_id).steps if s.cache_key]
        cache = StepCache(ws)
        t0 = time.perf_counter()
        hits = sum(cache.lookup(keys[i % len(keys)]) is not None for i in range(args.lookups))
        lookups_s = args.lookups / (time.perf_counter() - t0)
        assert hits == args.lookups

    med = statistics.median
    rows = [
        ("cold run, inline (all steps execute)", f"{med(cold_inline):.3f} s", f"{n_steps} executed"),
        ("  engine overhead per executed step", f"{med(per_step_inline) * 1000:.1f} ms", "inline"),
        (f"cold run, {args.pool} (spawn pool)", f"{med(cold_pool):.3f} s", "incl. worker start-up"),
        ("unchanged re-run", f"{med(rerun):.3f} s", f"{max(executed)} executed (must be 0)"),
        ("  per cached step", f"{med(rerun) / n_steps * 1000:.1f} ms", "key + lookup + history + lineage"),
        ("cache lookups", f"{lookups_s:,.0f} /s", "SQLite metadata, artifacts checked"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"pipeline engine overhead: {n_steps} steps ({CHAINS} chains x {DEPTH}), medians of {args.repeats}")
    print(f"{'measure'.ljust(width)}  {'value':>12}  note")
    for name, value, note in rows:
        print(f"{name.ljust(width)}  {value:>12}  {note}")
    if max(executed) != 0:
        sys.exit("an unchanged re-run executed steps: the cache missed")


if __name__ == "__main__":
    main()
