"""Benchmark `tideml.wrangle` on the article's claims flow: batch throughput and single-record latency.

Batch: the claims flow, fitted once on the article's 5,000 rows, is applied to generated claims
(`tideml.datasets.autoclaims`, Parquet), 1M rows by default and 10M with `--big` (streaming only).
Each run is a fresh subprocess that reports its own peak RSS (`getrusage`), so runs never hide each
other's memory:

* `stream`  — `FittedFlow.sink`: scan Parquet, stream through the plan, write Parquet (bounded memory);
* `collect` — `FittedFlow.transform`: the whole output as an in-memory DataFrame;
* peer      — the same transformation with pandas + scikit-learn (`ColumnTransformer` with
  `OneHotEncoder` / `OrdinalEncoder` on the fitted categories), in memory, checked for equal output.

Record: `FittedFlow.transform_record` on real rows (p50 / p99 over `--records` calls) against the same
record pushed through the frame path (`transform` of a one-row DataFrame) and through the peer pipeline.

    python benchmarks/wrangle.py                     # 1M rows, 3 repeats
    python benchmarks/wrangle.py --big --repeats 1   # also 10M rows (streaming sink only)
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
FLOW = ROOT / "examples" / "autoclaims" / "flows" / "claims.flow.json"
ARTICLE = ROOT.parent / "shared" / "data" / "aws-autoclaims" / "claims.csv"
RUN_TIME = 1_700_000_000.0
SYMBOLS = "[!@#$%^&*()_+=\\-/\\\\`~{}|<>?]"


# -- the peer: pandas + scikit-learn -----------------------------------------------------------------
def peer_pipeline(fitted: Any) -> Any:
    """A scikit-learn ColumnTransformer equivalent to the fitted claims flow (same categories, same order)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    states = {s.op.params.column: s.state for s in fitted.steps if s.op.op in ("one_hot", "ordinal")}
    onehots = ["driver_relationship", "incident_type", "collision_type", "authorities_contacted"]
    ordinals = ["incident_severity", "police_report_available"]
    numeric = [
        "policy_id", "num_vehicles_involved", "num_injuries", "num_witnesses", "injury_claim",
        "vehicle_claim", "total_claim_amount", "incident_month", "incident_day", "incident_dow",
        "incident_hour", "fraud",
    ]  # fmt: skip
    transformers = [
        ("policy_id", "passthrough", ["policy_id"]),
        (
            "incident_severity",
            OrdinalEncoder(categories=[list(states["incident_severity"].mapping)], dtype=float),
            ["incident_severity"],
        ),
        ("counts", "passthrough", numeric[1:4]),
        (
            "police_report_available",
            OrdinalEncoder(categories=[list(states["police_report_available"].mapping)], dtype=float),
            ["police_report_available"],
        ),
        ("rest", "passthrough", numeric[4:]),
    ]
    for column in onehots:
        encoder = OneHotEncoder(
            categories=[states[column].categories], handle_unknown="ignore", sparse_output=False
        )
        transformers.append((column, encoder, [column]))
    ct = ColumnTransformer(transformers, verbose_feature_names_out=False)
    return ct, ordinals, onehots


STRINGS = (
    "driver_relationship", "incident_type", "collision_type", "incident_severity", "authorities_contacted",
    "police_report_available",
)  # fmt: skip


def peer_clean(frame: Any) -> Any:
    """Lower-case the strings and remove symbols, with pandas string methods."""
    frame = frame.copy()
    for column in STRINGS:
        frame[column] = frame[column].str.lower()
    for column in ("driver_relationship", "collision_type", "incident_type"):
        frame[column] = frame[column].str.replace(SYMBOLS, "", regex=True)
    return frame


def peer_fitted(fitted: Any, sample: Any) -> Any:
    """The peer pipeline, fitted (its categories are the flow's, so the sample only validates)."""
    ct, _, _ = peer_pipeline(fitted)
    return ct.fit(peer_clean(sample))


def peer_transform(ct: Any, frame: Any) -> Any:
    """pandas string cleaning, the ColumnTransformer, then the article's column types and event_time."""
    import numpy as np
    import pandas as pd

    out = pd.DataFrame(ct.transform(peer_clean(frame)), columns=ct.get_feature_names_out())
    floats = {"injury_claim", "vehicle_claim", "total_claim_amount"}
    out = out.astype({c: (np.float64 if c in floats else np.int64) for c in out.columns})
    out["event_time"] = RUN_TIME
    return out


# -- children: one measurement each, in a fresh interpreter -------------------------------------------
def child(arguments: str) -> None:
    sys.path.insert(0, str(SRC))
    import polars as pl

    from tideml.wrangle import FittedFlow

    spec = json.loads(arguments)
    fitted = FittedFlow.load(spec["fitted"])
    started = time.perf_counter()
    if spec["mode"] == "stream":
        fitted.sink(spec["input"], {"claims": spec["output"]}, run_time=RUN_TIME)
        rows = pl.scan_parquet(spec["output"]).select(pl.len()).collect().item()
    elif spec["mode"] == "collect":
        rows = fitted.transform(spec["input"], run_time=RUN_TIME).height
    else:
        import pandas as pd

        frame = pd.read_parquet(spec["input"])
        ct = peer_fitted(fitted, frame.head(1000))
        rows = len(peer_transform(ct, frame))
    elapsed = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "rows": rows, "peak_rss_mib": peak_mib}))


def run_child(spec: dict[str, Any]) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- data ------------------------------------------------------------------------------------------
def claims_parquet(workdir: Path, rows: int) -> Path:
    """Generated claims as Parquet (tideml.datasets.autoclaims if importable, else the article's rows)."""
    target = workdir / f"claims-{rows}.parquet"
    if target.exists():
        return target
    try:
        from tideml.datasets import generate_autoclaims

        folder = workdir / f"gen-{rows}"
        result = generate_autoclaims(folder, policies=rows, seed=0, file_format="parquet")
        shutil.move(str(result.claims_path), target)
        shutil.rmtree(folder, ignore_errors=True)
    except ImportError:
        import polars as pl

        article = pl.read_csv(ARTICLE)
        repeats = -(-rows // article.height)
        pl.concat([article] * repeats).head(rows).with_columns(
            pl.int_range(1, rows + 1, dtype=pl.Int64).alias("policy_id")
        ).write_parquet(target)
    return target


# -- record latency ----------------------------------------------------------------------------------
def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000  # noqa: E731
    return {"p50_us": pick(0.5), "p99_us": pick(0.99), "mean_us": statistics.fmean(ordered) / 1000}


def record_latency(
    fitted: Any, source: Path, records: int, frame_records: int
) -> dict[str, dict[str, float]]:
    import pandas as pd
    import polars as pl

    from tideml.wrangle.types import polars_schema

    rows = pl.read_parquet(source, n_rows=records).to_dicts()
    for row in rows[:500]:  # warm up
        fitted.transform_record(row, run_time=RUN_TIME)
    record_ns = []
    for row in rows:
        t = time.perf_counter_ns()
        fitted.transform_record(row, run_time=RUN_TIME)
        record_ns.append(time.perf_counter_ns() - t)
    schema = polars_schema(next(iter(fitted.input_schemas.values())))
    frame_ns, peer_ns = [], []
    ct = peer_fitted(fitted, pd.DataFrame(rows[:1000]))
    for row in rows[:frame_records]:
        t = time.perf_counter_ns()
        out = fitted.transform(pl.DataFrame([row], schema=schema), run_time=RUN_TIME).row(0, named=True)
        frame_ns.append(time.perf_counter_ns() - t)
        assert out == fitted.transform_record(row, run_time=RUN_TIME)
        t = time.perf_counter_ns()
        peer_transform(ct, pd.DataFrame([row]))
        peer_ns.append(time.perf_counter_ns() - t)
    return {
        "transform_record": percentiles(record_ns),
        "frame path (1-row transform)": percentiles(frame_ns),
        "peer: pandas + sklearn (1 row)": percentiles(peer_ns),
    }


def check_peer_equal(fitted: Any, source: Path) -> None:
    """The peer computes the same table (so the comparison is fair)."""
    import pandas as pd
    import polars as pl

    sample = pl.read_parquet(source, n_rows=20_000)
    ours = fitted.transform(sample, run_time=RUN_TIME).to_pandas()
    frame = sample.to_pandas()
    theirs = peer_transform(peer_fitted(fitted, frame), frame)[list(ours.columns)]
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the main batch run")
    parser.add_argument("--big", action="store_true", help="also run 10M rows (stream and collect)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per batch measurement (median)")
    parser.add_argument("--records", type=int, default=20_000, help="transform_record calls timed")
    parser.add_argument("--frame-records", type=int, default=300, help="1-row frame-path calls timed")
    parser.add_argument("--workdir", type=Path, default=None, help="keep generated data here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    sys.path.insert(0, str(SRC))
    from tideml.wrangle import Flow

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tide-bench-wrangle-"))
    workdir.mkdir(parents=True, exist_ok=True)
    fitted = Flow.load(FLOW).fit(ARTICLE)
    fitted_path = fitted.save(workdir / "claims.fitted.json")
    print(f"machine: {os.cpu_count()} CPUs; data in {workdir}")

    sizes = [args.rows] + ([10_000_000] if args.big and args.rows != 10_000_000 else [])
    results: list[tuple[str, int, dict[str, float]]] = []
    for rows in sizes:
        started = time.perf_counter()
        source = claims_parquet(workdir, rows)
        print(f"data: {rows:,} generated claims rows ({time.perf_counter() - started:.1f} s)")
        if rows == sizes[0]:
            check_peer_equal(fitted, source)
        # At 10M rows only the streaming sink runs: the in-memory modes would hold ~4 GB of frames.
        modes = ["stream", "collect", "peer"] if rows <= 2_000_000 else ["stream"]
        for mode in modes:
            runs = []
            for _ in range(args.repeats if rows <= 2_000_000 else 1):
                out = workdir / f"out-{rows}.parquet"
                runs.append(
                    run_child(
                        {"mode": mode, "fitted": str(fitted_path), "input": str(source), "output": str(out)}
                    )
                )
                out.unlink(missing_ok=True)
            assert all(r["rows"] == rows for r in runs)
            seconds = statistics.median(r["seconds"] for r in runs)
            peak = max(r["peak_rss_mib"] for r in runs)
            results.append(
                (mode, rows, {"seconds": seconds, "rows_per_s": rows / seconds, "peak_rss_mib": peak})
            )

    print()
    print("Batch: claims flow, Parquet in (median of repeats; peak RSS is the largest)")
    print(f"{'mode':<34}{'rows':>12}{'seconds':>10}{'rows/s':>14}{'peak RSS MiB':>14}")
    names = {
        "stream": "tideml sink (streaming)",
        "collect": "tideml transform (in memory)",
        "peer": "peer: pandas + sklearn",
    }
    for mode, rows, r in results:
        line = f"{names[mode]:<34}{rows:>12,}{r['seconds']:>10.2f}{r['rows_per_s']:>14,.0f}"
        print(f"{line}{r['peak_rss_mib']:>14,.0f}")
    by = {(m, n): r for m, n, r in results}
    if ("peer", sizes[0]) in by:
        ratio = by[("peer", sizes[0])]["seconds"] / by[("stream", sizes[0])]["seconds"]
        print(f"streaming tideml vs peer at {sizes[0]:,} rows: {ratio:.1f}x faster")

    latency = record_latency(fitted, claims_parquet(workdir, sizes[0]), args.records, args.frame_records)
    print()
    print(
        f"Record: one claim through the fitted flow ({args.records:,} calls; frame/peer {args.frame_records})"
    )
    print(f"{'path':<34}{'p50 µs':>10}{'p99 µs':>10}{'mean µs':>10}")
    for name, stats in latency.items():
        print(f"{name:<34}{stats['p50_us']:>10.1f}{stats['p99_us']:>10.1f}{stats['mean_us']:>10.1f}")
    record = latency["transform_record"]["p50_us"]
    frame = latency["frame path (1-row transform)"]["p50_us"]
    peer = latency["peer: pandas + sklearn (1 row)"]["p50_us"]
    print(f"transform_record vs frame path: {frame / record:.0f}x at p50; vs peer: {peer / record:.0f}x")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
