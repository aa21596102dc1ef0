"""tideml's monitor against Evidently's data-drift report, on the same reference and window, in one run.

The data: `--rows` generated auto-claims policies as the reference (customers and claims joined: 28
features, strings included, plus the model's probability) and `--rows` policies of a drifted population
as the window (more insurers per customer, 5% in a new state), scored by a small XGBoost model.

Each tool runs in its own subprocess (tideml in this venv, Evidently in .venv-peers) that loads the same
Parquet files, then times, per repeat:
- tideml: the baseline (statistics and constraints of the reference), then every check of the window —
  data quality, drift of every feature with all five measures, prediction drift, model quality with
  the labels joined on inference id, bias drift, feature-attribution drift (TreeSHAP on 2,000 rows) —
  and writing constraint_violations.json, statistics.json, monitoring_results.json and report.html;
- Evidently: `Report([DataDriftPreset()]).run(current, reference)` and `save_html`.
Peak memory is the subprocess's maximum resident set (data loading included, for both).

    python benchmarks/monitor.py [--rows 1000000] [--repeats 3] [--peer-repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PEER_PYTHON = REPO / ".venv-peers" / "bin" / "python"
MODEL_FEATURES = [
    "customer_age",
    "months_as_customer",
    "num_claims_past_year",
    "num_insurers_past_5_years",
    "num_injuries",
    "num_witnesses",
    "num_vehicles_involved",
    "vehicle_claim",
    "injury_claim",
    "policy_deductable",
]
THRESHOLD = 0.05


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- data (parent process, tideml venv) ------------------------------------------------------------------
def prepare(folder: Path, rows: int, seed: int) -> None:
    import numpy as np
    import polars as pl
    import xgboost as xgb

    from tideml.datasets.drift import AutoclaimsDrift, drifted_autoclaims_frames

    def claims(n: int, s: int, drift: AutoclaimsDrift | None = None) -> pl.DataFrame:
        customers, c = drifted_autoclaims_frames(policies=n, seed=s, drift=drift)
        return customers.join(c, on="policy_id").drop("policy_id")

    train = claims(50_000, seed + 1)
    dm = xgb.DMatrix(
        train.select(MODEL_FEATURES).to_numpy(), label=train["fraud"].to_numpy(), feature_names=MODEL_FEATURES
    )
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 4, "eta": 0.2, "seed": 0}, dm, 100)
    booster.save_model(folder / "model.ubj")

    def score(frame: pl.DataFrame) -> np.ndarray:
        return np.asarray(booster.inplace_predict(frame.select(MODEL_FEATURES).to_numpy()), dtype=np.float64)

    reference = claims(rows, seed + 2)
    reference.with_columns(pl.Series("probability", score(reference))).write_parquet(
        folder / "reference.parquet"
    )
    window = claims(
        rows, seed + 3, AutoclaimsDrift(extra_insurers=0.3, new_state="UT", new_state_share=0.05, seed=seed)
    )
    ids = pl.Series("inference_id", [f"inf-{i}" for i in range(window.height)])
    window.drop("fraud").with_columns(ids, pl.Series("probability", score(window))).write_parquet(
        folder / "window.parquet"
    )
    pl.DataFrame({"inference_id": ids, "label": window["fraud"]}).write_parquet(folder / "labels.parquet")


# -- workers (subprocesses) ------------------------------------------------------------------------------
def worker_tideml(folder: Path, repeats: int) -> dict[str, Any]:
    import polars as pl
    import xgboost as xgb

    from tideml.monitor import (
        BiasDriftConfig,
        BiasFacet,
        MonitorConfig,
        run_checks,
        run_files,
        suggest_baseline,
    )

    reference = pl.read_parquet(folder / "reference.parquet")
    window = pl.read_parquet(folder / "window.parquet")
    labels = pl.read_parquet(folder / "labels.parquet")
    booster = xgb.Booster()
    booster.load_model(folder / "model.ubj")
    bias = BiasDriftConfig(facets=[BiasFacet(name="customer_gender", value_or_threshold=["Female"])])
    config = MonitorConfig(attribution_sample=2000)
    out = folder / "tideml-out"
    out.mkdir(exist_ok=True)
    runs: list[dict[str, Any]] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        baseline = suggest_baseline(
            reference,
            label_column="fraud",
            prediction_column="probability",
            threshold=THRESHOLD,
            bias=bias,
            model=booster,
            attribution_features=MODEL_FEATURES,
            attribution_sample=2000,
        )
        t1 = time.perf_counter()
        result = run_checks(baseline, window, labels=labels, model=booster, config=config)
        files = run_files(result, baseline.statistics, title="tideml monitor benchmark")
        for name, data in files.items():
            (out / name).write_bytes(data)
        t2 = time.perf_counter()
        runs.append(
            {
                "baseline_s": t1 - t0,
                "checks_s": t2 - t1,
                "total_s": t2 - t0,
                "stages": result.timings,
                "violations": len(result.violations),
                "drifted": sorted(d.name for d in result.drift if d.drifted),
            }
        )
    sizes = {p.name: p.stat().st_size for p in out.iterdir()}
    return {
        "tool": "tideml",
        "runs": runs,
        "peak_rss_mb": _peak_mb(),
        "report_bytes": sizes["report.html"],
        "json_bytes": sizes["constraint_violations.json"] + sizes["monitoring_results.json"],
        "sizes": sizes,
    }


def worker_evidently(folder: Path, repeats: int) -> dict[str, Any]:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference = pd.read_parquet(folder / "reference.parquet").drop(columns=["fraud"])
    current = pd.read_parquet(folder / "window.parquet").drop(columns=["inference_id"])
    current = current[list(reference.columns)]
    runs: list[dict[str, Any]] = []
    path = folder / "evidently.html"
    drifted: list[str] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
        snapshot.save_html(str(path))
        t1 = time.perf_counter()
        doc = snapshot.dict()
        drifted = sorted(
            m["config"]["column"]
            for m in doc["metrics"]
            if m["config"].get("type", "").endswith("ValueDrift")
            and float(m["value"]) > float(m["config"]["threshold"])
        )
        runs.append({"total_s": t1 - t0, "drifted": drifted})
    return {"tool": "evidently", "runs": runs, "peak_rss_mb": _peak_mb(), "report_bytes": path.stat().st_size}


def _run_worker(python: Path | str, tool: str, folder: Path, repeats: int) -> dict[str, Any]:
    env = {**os.environ, "DO_NOT_TRACK": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [str(python), __file__, "--worker", tool, "--workdir", str(folder), "--repeats", str(repeats)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{tool} worker failed:\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the reference and of the window")
    parser.add_argument("--repeats", type=int, default=3, help="tideml repeats (median reported)")
    parser.add_argument("--peer-repeats", type=int, default=1, help="Evidently repeats (it is slow)")
    parser.add_argument(
        "--peer-python", default=str(PEER_PYTHON), help="interpreter with evidently installed"
    )
    parser.add_argument("--skip-peer", action="store_true", help="run tideml only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--worker", choices=["tideml", "evidently"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        fn = worker_tideml if args.worker == "tideml" else worker_evidently
        print(json.dumps(fn(args.workdir, args.repeats)))
        return

    from rich.console import Console
    from rich.table import Table

    console = Console()
    with tempfile.TemporaryDirectory(prefix="tide-monitor-bench-") as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        prepare(folder, args.rows, args.seed)
        console.print(
            f"data: {args.rows:,} reference + {args.rows:,} window rows "
            f"prepared in {time.perf_counter() - t:.1f}s"
        )
        tide = _run_worker(sys.executable, "tideml", folder, args.repeats)
        peer = None
        if not args.skip_peer:
            if not Path(args.peer_python).exists():
                raise SystemExit(
                    f"no peer interpreter at {args.peer_python}: run `make bench` or pass --skip-peer"
                )
            peer = _run_worker(args.peer_python, "evidently", folder, args.peer_repeats)

    med = {k: statistics.median(r[k] for r in tide["runs"]) for k in ("baseline_s", "checks_s", "total_s")}
    table = Table(title=f"monitor: {args.rows:,}-row window vs {args.rows:,}-row reference (medians)")
    for col in ("tool", "what", "time (s)", "peak RSS (MB)", "HTML report (MB)"):
        table.add_column(col, justify="left" if col in ("tool", "what") else "right")
    mb = 1024 * 1024
    table.add_row(
        "tideml",
        "all checks (baseline stored)",
        f"{med['checks_s']:.2f}",
        f"{tide['peak_rss_mb']:.0f}",
        f"{tide['report_bytes'] / mb:.3f}",
    )
    table.add_row("tideml", "baseline + all checks", f"{med['total_s']:.2f}", "", "")
    if peer is not None:
        peer_s = statistics.median(r["total_s"] for r in peer["runs"])
        table.add_row(
            "Evidently",
            "DataDriftPreset report",
            f"{peer_s:.2f}",
            f"{peer['peak_rss_mb']:.0f}",
            f"{peer['report_bytes'] / mb:.3f}",
        )
    console.print(table)
    stages = {
        k: statistics.median(r["stages"].get(k, 0.0) for r in tide["runs"]) for k in tide["runs"][0]["stages"]
    }
    console.print("tideml stages (median s): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    console.print(f"tideml baseline (profile + suggest, bias, SHAP baseline): {med['baseline_s']:.2f}s")
    console.print(f"tideml drifted features: {tide['runs'][0]['drifted']}")
    if peer is not None:
        console.print(f"Evidently drifted columns: {peer['runs'][0]['drifted']}")
        console.print(
            f"ratio Evidently / tideml: {peer_s / med['checks_s']:.1f}x (checks, baseline stored), "
            f"{peer_s / med['total_s']:.1f}x (baseline + checks); "
            f"memory {peer['peak_rss_mb'] / tide['peak_rss_mb']:.1f}x; "
            f"report size {peer['report_bytes'] / max(tide['report_bytes'], 1):.0f}x"
        )
    checks_ok = "met" if med["checks_s"] <= 10 else "MISSED"
    size_ok = "met" if tide["report_bytes"] <= 5 * mb else "MISSED"
    console.print(f"targets: checks <= 10 s ({checks_ok}); report <= 5 MB ({size_ok})")


if __name__ == "__main__":
    main()
