"""The end-to-end demo behind `make demo`, on embedded defaults (SQLite, Parquet, local folders).

Runs the auto-claims lifecycle pipeline on the article's files (or on generated data when they are
absent), shows the model's evidence, the cached re-run and the lineage of the registered version, then
serves the approved model and asks it about a few claims.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import polars as pl
from rich.console import Console
from rich.table import Table

from tideml import Workspace
from tideml.datasets import generate_autoclaims
from tideml.lineage.export import to_tree
from tideml.pipelines import run_pipeline
from tideml.serving.client import EndpointClient

console = Console()
HERE = Path(__file__).resolve().parent
ARTICLE = HERE.parent.parent / "shared" / "data" / "aws-autoclaims"


def load_pipeline() -> ModuleType:
    spec = importlib.util.spec_from_file_location("autoclaims_pipeline", HERE / "autoclaims" / "pipeline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_and_query(workspace: Path, claims: Path) -> None:
    """Start `autoclaims` (deployed by the pipeline) with 2 workers, query it, print reasons and latency."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tideml.serving",
            "autoclaims",
            "-w",
            str(workspace),
            "--port",
            str(port),
            "--workers",
            "2",
        ],
    )
    try:
        t0 = time.perf_counter()
        client = EndpointClient(f"http://127.0.0.1:{port}")
        client.wait_ready(timeout=30)
        console.print(f"  endpoint ready in {time.perf_counter() - t0:.1f} s on port {port}")
        frauds = pl.read_csv(claims).filter(pl.col("fraud") == 1)["policy_id"].head(2).to_list()
        table = Table("policy_id", "actual", "P(fraud)", "decision", "top reasons (SHAP, log-odds)")
        for policy in [*frauds, 1, 2, 3]:
            answer = client.predict(policy, explain=True)
            reasons = ", ".join(f"{r['feature']} {r['contribution']:+.2f}" for r in answer["reasons"])
            table.add_row(
                str(policy),
                "fraud" if policy in frauds else "—",
                f"{answer['probability']:.3f}",
                "investigate" if answer["decision"] else "pay",
                reasons,
            )
        console.print(table)
        latencies = []
        for policy in range(1, 301):
            start = time.perf_counter()
            client.predict(policy)
            latencies.append((time.perf_counter() - start) * 1000)
        latencies.sort()
        console.print(
            f"  300 sequential {{policy_id}} requests: p50 {latencies[149]:.2f} ms, "
            f"p99 {latencies[296]:.2f} ms (features from the online store; client and server on this machine)"
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        console.print("  endpoint stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--policies", type=int, default=5_000, help="generated policies if no article data")
    parser.add_argument("--trials", type=int, default=20, help="tuning trials")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()

    console.rule("1. workspace")
    ws = Workspace.init(out / "workspace")
    for section, values in ws.info()["settings"].items():
        for key, value in values.items():
            console.print(f"  {section}.{key} = {value}")

    console.rule("2. data")
    if (ARTICLE / "claims.csv").exists():
        claims, customers = ARTICLE / "claims.csv", ARTICLE / "customers.csv"
        console.print(f"  the article's raw files: {ARTICLE}")
    else:
        data = generate_autoclaims(out / "data", policies=args.policies, seed=7)
        claims, customers = data.claims_path, data.customers_path
        console.print(f"  generated {data.policies:,} policies, fraud rate {data.fraud_rate:.2%}")

    console.rule("3. the lifecycle pipeline")
    example = load_pipeline()
    params = {"claims": str(claims), "customers": str(customers), "trials": args.trials}
    t0 = time.perf_counter()
    result = run_pipeline(ws, example.autoclaims, params, executor="inline")
    console.print(
        f"  {result.status}: {len(result.executed)} steps executed in {time.perf_counter() - t0:.1f} s"
    )
    t0 = time.perf_counter()
    again = run_pipeline(ws, example.autoclaims, params, executor="inline", progress=False)
    console.print(
        f"  unchanged re-run: {len(again.executed)} steps executed, {time.perf_counter() - t0:.2f} s"
    )

    console.rule("4. evidence")
    tuned = result.output(ws, "tune")
    mitigated = result.output(ws, "mitigate")
    pre = result.output(ws, "pre_training_bias")["metrics"]
    console.print(
        f"  tuning: {tuned['trials']} trials, CV AUC {tuned['best_value']:.3f} "
        f"vs the article's parameters {tuned['baseline_value']:.3f}"
    )
    console.print(f"  pre-training bias on customer_gender_female: CI {pre['CI']:.3f}, DPL {pre['DPL']:.3f}")
    table = Table("model (test split)", "ROC-AUC [95% CI]", "PR-AUC", "F1", "precision", "recall", "DPPL")
    for row in mitigated["methods"]:
        low, high = row["test_auc_ci95"]
        table.add_row(
            "baseline (tuned)" if row["method"] == "none" else f"mitigated: {row['method']}",
            f"{row['test_auc']:.3f} [{low:.3f}, {high:.3f}]",
            f"{row['test_pr_auc']:.3f}",
            f"{row['f1']:.3f}",
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['dppl']:+.3f}",
        )
    console.print(table)

    console.rule("5. registry and lineage")
    version = ws.registry.get_version("autoclaims-fraud")
    console.print(f"  {version.ref}: {version.status} (approvals: {', '.join(version.approvals) or 'none'})")
    node = ws.lineage.resolve(f"model:{version.ref}")
    graph = ws.lineage.graph(
        node, "upstream", types={"File", "Flow", "FittedFlow", "FeatureGroup", "Dataset"}
    )
    console.print(to_tree(graph))
    ws.close()

    console.rule("6. the endpoint")
    serve_and_query(out / "workspace", claims)
    console.print(
        f"[green]demo finished in {time.perf_counter() - started:.0f} s[/]; everything is under {out}"
    )


if __name__ == "__main__":
    main()
