"""Benchmark `tide data generate`: policies per second and peak memory for 1M and 10M policies.

Each run is a fresh subprocess that generates the data and reports its own peak RSS
(`getrusage(RUSAGE_SELF).ru_maxrss`), so one run's memory never hides in another's. The table shows the
median time over the repeats and the largest peak RSS. There is no peer to compare against: the article's
generator was never published.

    python benchmarks/generate.py                          # 1M x 3 and 10M x 1, CSV
    python benchmarks/generate.py --sizes 1000000 --repeats 5 --format parquet
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def child(arguments: str) -> None:
    """Generate once and print a JSON line with the elapsed time and this process's peak RSS."""
    sys.path.insert(0, str(SRC))
    from tideml.datasets import generate_autoclaims

    spec = json.loads(arguments)
    started = time.perf_counter()
    result = generate_autoclaims(
        spec["out"], policies=spec["policies"], seed=spec["seed"], file_format=spec["format"]
    )
    elapsed = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    size = result.customers_path.stat().st_size + result.claims_path.stat().st_size
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "peak_rss_mib": peak_kib / 1024,
                "bytes": size,
                "fraud_rate": result.fraud_rate,
            }
        )
    )


def run_once(policies: int, file_format: str, seed: int, cpus: int | None) -> dict[str, float]:
    """One generation in a fresh interpreter; returns the child's measurements."""
    out = tempfile.mkdtemp(prefix="tide-bench-generate-")
    spec = json.dumps({"out": out, "policies": policies, "seed": seed, "format": file_format})
    env = dict(os.environ)
    preexec = None
    if cpus is not None:
        env["POLARS_MAX_THREADS"] = str(cpus)
        allowed = sorted(os.sched_getaffinity(0))[:cpus]
        preexec = lambda: os.sched_setaffinity(0, allowed)  # noqa: E731
    try:
        completed = subprocess.run(
            [sys.executable, __file__, "--child", spec],
            check=True,
            capture_output=True,
            text=True,
            env=env,
            preexec_fn=preexec,
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000], help="policies per run"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="runs per size (default: 3 up to 1M, else 1)"
    )
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cpus", type=int, default=None, help="pin each run to this many cores")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    cores = len(os.sched_getaffinity(0)) if args.cpus is None else args.cpus
    print(f"tide data generate ({args.format}), {cores} core(s), Python {sys.version.split()[0]}")
    columns = (
        ("policies", 12),
        ("runs", 5),
        ("median s", 9),
        ("policies/s", 12),
        ("peak RSS MiB", 13),
        ("output MB", 10),
    )
    header = " ".join(f"{name:>{width}}" for name, width in columns)
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        repeats = args.repeats or (3 if size <= 1_000_000 else 1)
        runs = [run_once(size, args.format, args.seed, args.cpus) for _ in range(repeats)]
        seconds = statistics.median(run["seconds"] for run in runs)
        peak = max(run["peak_rss_mib"] for run in runs)
        print(
            f"{size:>12,} {repeats:>5} {seconds:>9.2f} {size / seconds:>12,.0f} {peak:>13,.0f}"
            f" {runs[0]['bytes'] / 1e6:>10,.1f}"
        )


if __name__ == "__main__":
    main()
