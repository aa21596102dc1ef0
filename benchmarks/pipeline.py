"""Wall time of the auto-claims lifecycle pipeline (examples/autoclaims/pipeline.py).

Prints, for each data size: the full run (20-trial tuning by default), an unchanged re-run (zero steps
executed) and the step timings. Targets on 2 cores: the article's 5k policies <= 60 s, re-run <= 3 s,
1M generated policies <= 15 min (`--policies 1000000`; the article's reference pipeline took ~23 min
on 5k).

    python benchmarks/pipeline.py [--policies 0] [--trials 20] [--executor inline]

`--policies 0` (default) uses the article's files; any other number generates that many policies.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path
from types import ModuleType

from rich.console import Console
from rich.table import Table

from tideml import Workspace
from tideml.datasets import generate_autoclaims
from tideml.pipelines import run_pipeline

REPO = Path(__file__).resolve().parents[1]
ARTICLE = REPO.parent / "shared" / "data" / "aws-autoclaims"


def load_pipeline() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "autoclaims_pipeline", REPO / "examples/autoclaims/pipeline.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policies", type=int, default=0)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--executor", default="inline")
    args = parser.parse_args()
    example = load_pipeline()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        if args.policies:
            data = generate_autoclaims(Path(tmp) / "data", policies=args.policies, seed=7)
            claims, customers, label = data.claims_path, data.customers_path, f"generated {args.policies:,}"
        else:
            claims, customers, label = ARTICLE / "claims.csv", ARTICLE / "customers.csv", "article 5,000"
        params = {"claims": str(claims), "customers": str(customers), "trials": args.trials}
        with Workspace.init(Path(tmp) / "ws") as ws:
            t0 = time.perf_counter()
            first = run_pipeline(ws, example.autoclaims, params, executor=args.executor, progress=False)
            full = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = run_pipeline(ws, example.autoclaims, params, executor=args.executor, progress=False)
            rerun = time.perf_counter() - t0
            steps = ws.pipelines.show(first.run_id).steps
            metrics = first.output(ws, "evaluation")["metrics"]
            tuned = first.output(ws, "tune")
    table = Table(title=f"auto-claims pipeline, {label} policies, {args.trials} trials, {args.executor}")
    for col in ("run", "status", "steps executed", "wall time (s)", "target"):
        table.add_column(col)
    table.add_row("full", first.status, str(len(first.executed)), f"{full:.1f}", "<= 60 s (5k)")
    table.add_row(
        "unchanged re-run", again.status, str(len(again.executed)), f"{rerun:.2f}", "<= 3 s, 0 steps"
    )
    console.print(table)
    timings = Table("step", "status", "seconds")
    for step in steps:
        timings.add_row(step.step, step.status, f"{step.duration_s or 0:.2f}")
    console.print(timings)
    quality = Table("candidate (SMOTE model, tuned parameters)", "value", title="what the run produced")
    quality.add_row(
        "tuning objective", f"{tuned['objective']} ({tuned['complete']} complete, {tuned['pruned']} pruned)"
    )
    for key in ("test_auc", "test_pr_auc", "test_f1", "dppl", "baseline_test_auc", "baseline_dppl"):
        quality.add_row(key, f"{metrics[key]:.4f}")
    console.print(quality)


if __name__ == "__main__":
    main()
