"""Benchmark: tideml.clarify against smclarify (bias metrics) and shap.TreeExplainer (TreeSHAP).

Same frame, same run. smclarify runs in its own interpreter (/work/main/.venv-peers, pandas<3) in a
subprocess, reading the same Parquet file; only the metric calls are timed on both sides (not the read).

    .venv/bin/python benchmarks/clarify.py                      # 1M rows, 3 repeats, TreeSHAP on 100k rows
    .venv/bin/python benchmarks/clarify.py --rows 100000 --shap-rows 10000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
PEERS_PYTHON = Path(os.environ.get("TIDE_PEERS_PYTHON", REPO / ".venv-peers" / "bin" / "python"))
PRE = ["CDDL", "CI", "DPL", "JS", "KL", "KS", "LP", "TVD"]
POST_NO_FT = ["AD", "CDDPL", "DAR", "DCA", "DCR", "DI", "DPPL", "DRR", "GE", "RD", "SD", "TE"]

PEER_SCRIPT = r"""
import json, sys, time, statistics
import pandas as pd
from smclarify.bias import report
path, repeats = sys.argv[1], int(sys.argv[2])
df = pd.read_parquet(path)
for c in ("gender", "state"):
    df[c] = df[c].astype("category")
label = report.LabelColumn("label", df["label"], [1])
facet = report.FacetColumn("gender", ["F"])
group = df["state"]
features = df.drop(columns=["prediction"])
pred = report.LabelColumn("prediction", df["prediction"], [1])
post = ["AD", "CDDPL", "DAR", "DCA", "DCR", "DI", "DPPL", "DRR", "GE", "RD", "SD", "TE"]
out = {"pre": [], "post": []}
for _ in range(repeats):
    t = time.perf_counter()
    pre_res = report.bias_report(features, facet, label, report.StageType.PRE_TRAINING, metrics=["all"],
                                 group_variable=group)
    out["pre"].append(time.perf_counter() - t)
    t = time.perf_counter()
    post_res = report.bias_report(features, facet, label, report.StageType.POST_TRAINING, pred, metrics=post,
                                  group_variable=group)
    out["post"].append(time.perf_counter() - t)
out["values"] = {m["name"]: m["value"] for block in (pre_res, post_res) for m in block[0]["metrics"]}
print(json.dumps(out))
"""


def make_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """A claims-like frame: a 3-level facet, a 6-level group variable, a biased label and predictions."""
    rng = np.random.default_rng(seed)
    gender = rng.choice(["M", "F", "U"], size=n, p=[0.46, 0.44, 0.10])
    state = rng.choice(["CA", "WA", "AZ", "OR", "NV", "ID"], size=n, p=[0.6, 0.12, 0.11, 0.08, 0.05, 0.04])
    base = 0.95 + 0.02 * (gender == "F") - 0.01 * (state == "CA")
    label = (rng.random(n) < base).astype(np.int64)
    noise = rng.random(n)
    prediction = np.where(noise < 0.9, label, 1 - label).astype(np.int64)
    return pd.DataFrame(
        {
            "gender": pd.Categorical(gender),
            "state": pd.Categorical(state),
            "label": label,
            "prediction": prediction,
            "age": rng.integers(18, 71, n),
            "amount": rng.gamma(2.0, 5000.0, n),
        }
    )


def run_tideml(frame: pd.DataFrame, repeats: int) -> dict[str, Any]:
    from tideml.clarify import Facet, bias_report

    kwargs: dict[str, Any] = dict(
        label="label",
        label_values_or_threshold=[1],
        facets=[Facet("gender", ["F"])],
        group_variable="state",
        predicted_label="prediction",
    )
    times: dict[str, list[float]] = {"pre": [], "post": [], "both": []}
    result = None
    for _ in range(repeats):
        t = time.perf_counter()
        bias_report(frame, pre_training="all", post_training=None, **kwargs)
        times["pre"].append(time.perf_counter() - t)
        t = time.perf_counter()
        bias_report(frame, pre_training=None, post_training=POST_NO_FT, **kwargs)
        times["post"].append(time.perf_counter() - t)
        t = time.perf_counter()
        result = bias_report(frame, pre_training="all", post_training=POST_NO_FT, **kwargs)
        times["both"].append(time.perf_counter() - t)
    assert result is not None and result.pre_training and result.post_training
    values = {
        m.name: m.value
        for stage in (result.pre_training, result.post_training)
        for m in stage.facets["gender"][0].metrics
    }
    return {"times": times, "values": values}


def run_smclarify(path: Path, repeats: int) -> dict[str, Any] | None:
    if not PEERS_PYTHON.exists():
        print(
            f"! {PEERS_PYTHON} missing: create it and `pip install smclarify==0.5 'pandas<3' 's3fs[boto3]'`"
        )
        return None
    proc = subprocess.run(
        [str(PEERS_PYTHON), "-c", PEER_SCRIPT, str(path), str(repeats)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        print("! smclarify failed:\n" + proc.stderr[-2000:])
        return None
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def bench_bias(rows: int, repeats: int) -> None:
    print(
        f"\n== bias metrics: {rows:,} rows, facet gender=F (3 levels), group variable state (6 levels), "
        f"median of {repeats} =="
    )
    frame = make_frame(rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frame.parquet"
        frame.to_parquet(path)
        peer = run_smclarify(path, repeats)
    ours = run_tideml(frame, repeats)
    med = {k: statistics.median(v) for k, v in ours["times"].items()}
    print(f"{'stage':<34}{'tideml s':>10}{'smclarify s':>13}{'ratio':>9}")
    rows_out = [
        ("pre-training (8 metrics)", med["pre"], "pre"),
        ("post-training (12, no FT)", med["post"], "post"),
    ]
    for name, ours_t, key in rows_out:
        theirs = statistics.median(peer[key]) if peer else math.nan
        print(f"{name:<34}{ours_t:>10.4f}{theirs:>13.3f}{theirs / ours_t:>8.0f}x")
    theirs_both = statistics.median(peer["pre"]) + statistics.median(peer["post"]) if peer else math.nan
    print(
        f"{'pre + post, one call (tideml)':<34}{med['both']:>10.4f}{theirs_both:>13.3f}"
        f"{theirs_both / med['both']:>8.0f}x"
    )
    if peer:
        print(f"\n{'metric':<8}{'tideml':>24}{'smclarify':>24}{'|diff|':>12}")
        worst = 0.0
        for code in [*PRE, *POST_NO_FT]:
            a, b = ours["values"].get(code), peer["values"].get(code)
            diff = abs(a - b) if isinstance(a, float) and isinstance(b, int | float) else math.nan
            worst = max(worst, diff) if not math.isnan(diff) else worst
            print(f"{code:<8}{a!s:>24}{b!s:>24}{diff:>12.1e}")
        print(f"largest difference: {worst:.2e}")


def bench_shap(rows: int, trees: int, depth: int, features: int, record_calls: int) -> None:
    import shap
    import xgboost as xgb

    from tideml.clarify import TreeShapExplainer

    print(f"\n== TreeSHAP: {rows:,} rows, {trees} trees, depth {depth}, {features} features ==")
    rng = np.random.default_rng(1)
    x_train = pd.DataFrame(rng.normal(size=(20_000, features)), columns=[f"f{i}" for i in range(features)])
    logit = x_train["f0"] - 0.5 * x_train["f1"] * x_train["f2"] + 0.3 * x_train["f3"]
    y = (rng.random(len(x_train)) < 1 / (1 + np.exp(-logit))).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": depth, "eta": 0.1, "seed": 0},
        xgb.DMatrix(x_train, label=y),
        trees,
    )
    x = pd.DataFrame(rng.normal(size=(rows, features)), columns=x_train.columns)
    explainer = TreeShapExplainer(booster)
    t = time.perf_counter()
    ours = explainer.explain(x, progress=False)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    theirs = shap.TreeExplainer(booster).shap_values(x)
    t_theirs = time.perf_counter() - t
    margin = booster.predict(xgb.DMatrix(x), output_margin=True)
    print(f"{'':<34}{'tideml s':>10}{'shap s':>10}{'ratio':>8}")
    print(
        f"{'TreeSHAP (exact, path-dependent)':<34}{t_ours:>10.2f}{t_theirs:>10.2f}{t_theirs / t_ours:>7.2f}x"
    )
    print(
        f"max |tideml - shap| = {np.max(np.abs(ours.values - theirs)):.2e}; "
        f"additivity max |sum + bias - margin| = {ours.additivity_error(margin):.2e}"
    )
    record = x.iloc[0].to_dict()
    explainer.explain_record(record)
    lat = []
    for i in range(record_calls):
        rec = x.iloc[i % 1000].to_dict()
        t = time.perf_counter()
        explainer.explain_record(rec)
        lat.append(time.perf_counter() - t)
    lat_us = np.array(lat) * 1e6
    print(
        f"explain_record (one row, dict in): median {np.median(lat_us):.0f} µs, "
        f"p99 {np.percentile(lat_us, 99):.0f} µs over {record_calls} calls"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shap-rows", type=int, default=100_000)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--record-calls", type=int, default=1000)
    parser.add_argument("--skip-shap", action="store_true")
    args = parser.parse_args()
    bench_bias(args.rows, args.repeats)
    if not args.skip_shap:
        bench_shap(args.shap_rows, args.trees, args.depth, args.features, args.record_calls)


if __name__ == "__main__":
    sys.exit(main())
