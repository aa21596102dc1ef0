"""Benchmark `tideml.train`: accuracy against the oracle, scale, and tuning on the article's data.

Three measurements, each printed as a table:

1. **Oracle gap.** Generated policies (default 100k) with their true fraud probability: the trained model's
   test ROC-AUC next to the oracle's (the true probability scored on the same test policies). Repeated
   over seeds; the median gap is the claim.
2. **Scale.** 1M generated policies, `tree_method=hist`, default hyperparameters (early stopping on
   validation): wall time of the fit and of the whole `train()` call, and the peak RSS of a fresh process
   (with the RSS after loading the data, so the training overhead is visible).
3. **Tuning.** A 30-trial TPE study on the article's 5,000 policies through `TrainService.tune` (trials
   stored in the metadata DB of a temporary workspace): elapsed time, the best trial against the article's
   fixed hyperparameters (max_depth 3, eta 0.2, 100 rounds) on the tuning objective and on the validation
   split, test ROC-AUC with its bootstrap 95% CI, and the repeated 5-fold out-of-fold ROC-AUC.

4. **Mitigation.** The unmitigated model, SMOTE (the article's and a label-preserving variant),
   reweighing and per-group thresholds side by side on the article's data (tuned parameters if (3) ran).

The reference next to (3) is the article's own procedure run locally: `xgb.cv` 5-fold on AUC with early
stopping on the held-out folds, then a final fit. No separate peer venv is needed: the article's "peer"
is XGBoost itself, which tideml uses too; what differs is the procedure (honest split, tuning, threshold).

    python benchmarks/train.py                    # 100k x 3 seeds, 1M x 1, 30 trials
    python benchmarks/train.py --oracle-policies 50000 --repeats 1 --skip-scale
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
ARTICLE = ROOT.parent / "shared" / "data" / "aws-autoclaims"
CATEGORICALS = (
    "driver_relationship",
    "incident_type",
    "collision_type",
    "incident_severity",
    "authorities_contacted",
    "police_report_available",
    "policy_state",
    "policy_liability",
    "customer_gender",
    "customer_education",
)


def model_ready(customers: Any, claims: Any) -> Any:
    """Join on policy_id and one-hot the categoricals (the flows will do this once they are wired)."""
    import polars as pl

    frame = claims.join(customers, on="policy_id", how="inner").drop("customer_zip").sort("policy_id")
    frame = frame.with_columns(
        pl.col(c).cast(pl.String).str.to_lowercase().str.replace_all(r"[^a-z0-9]+", "_") for c in CATEGORICALS
    )
    return frame.to_dummies(list(CATEGORICALS), separator="_")


def generated(policies: int, seed: int) -> Any:
    from tideml.datasets import autoclaims_frames

    customers, claims = autoclaims_frames(policies=policies, seed=seed, with_probability=True)
    return model_ready(customers, claims)


def article() -> Any:
    import polars as pl

    read = {"infer_schema_length": 10_000, "null_values": []}
    return model_ready(
        pl.read_csv(ARTICLE / "customers.csv", **read), pl.read_csv(ARTICLE / "claims.csv", **read)
    )


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))


# --------------------------------------------------------------------------------------------- 1. oracle
def oracle_gap(policies: int, seeds: list[int]) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    from tideml.train import train

    rows: list[dict[str, float]] = []
    for seed in seeds:
        frame = generated(policies, seed)
        started = time.perf_counter()
        spec = {"exclude": ["fraud_probability"], "seed": seed, "n_jobs": 1}
        result = train(frame, spec, progress=False)
        seconds = time.perf_counter() - started
        test = result.split.test
        oracle = float(
            roc_auc_score(frame["fraud"].to_numpy()[test], frame["fraud_probability"].to_numpy()[test])
        )
        t = result.evaluation.test
        rows.append(
            {
                "seed": seed,
                "test_auc": t.roc_auc,
                "ci_low": t.roc_auc_ci_low or float("nan"),
                "ci_high": t.roc_auc_ci_high or float("nan"),
                "oracle_auc": oracle,
                "gap": oracle - t.roc_auc,
                "test_frauds": t.positives,
                "trees": result.model.spec.num_trees,
                "seconds": seconds,
            }
        )
    _table(
        f"1. test ROC-AUC vs oracle ROC-AUC, {policies:,} generated policies (60/20/20 entity split)",
        ["seed", "test AUC", "95% CI", "oracle AUC", "gap", "test frauds", "trees", "train s"],
        [
            [
                str(r["seed"]),
                f"{r['test_auc']:.4f}",
                f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]",
                f"{r['oracle_auc']:.4f}",
                f"{r['gap']:+.4f}",
                str(int(r["test_frauds"])),
                str(int(r["trees"])),
                f"{r['seconds']:.1f}",
            ]
            for r in rows
        ],
    )
    median_gap = statistics.median(r["gap"] for r in rows)
    print(f"median gap (oracle - model): {median_gap:+.4f}   max gap: {max(r['gap'] for r in rows):+.4f}")
    return {"policies": policies, "runs": rows, "median_gap": median_gap}


# --------------------------------------------------------------------------------------------- 2. scale
def scale_child(arguments: str) -> None:
    """In a fresh process: generate, encode, train; print time and peak RSS as one JSON line."""
    sys.path.insert(0, str(SRC))
    spec = json.loads(arguments)
    import psutil

    from tideml.train import train

    started = time.perf_counter()
    frame = generated(spec["policies"], spec["seed"])
    prepare = time.perf_counter() - started
    rss_data = psutil.Process().memory_info().rss
    started = time.perf_counter()
    result = train(frame, {"exclude": ["fraud_probability"], "n_jobs": spec["threads"]}, progress=False)
    total = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "rows": frame.height,
                "features": len(result.model.spec.features),
                "prepare_seconds": prepare,
                "train_seconds": total,
                "fit_seconds": result.timings["fit"],
                "evaluate_seconds": result.timings["evaluate"],
                "trees": result.model.spec.num_trees,
                "test_auc": result.evaluation.test.roc_auc,
                "rss_after_data_mib": rss_data / 2**20,
                "peak_rss_mib": peak_kib / 1024,
            }
        )
    )


def scale(policies: int, repeats: int, thread_counts: list[int]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    rows = []
    for threads in thread_counts:
        runs = []
        for seed in range(repeats):
            spec = json.dumps({"policies": policies, "seed": seed, "threads": threads})
            done = subprocess.run(
                [sys.executable, __file__, "--scale-child", spec], check=True, capture_output=True, text=True
            )
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        results[str(threads)] = {"runs": runs, "median": med}
        rows.append(
            [
                str(threads or "all"),
                f"{int(med['rows']):,}",
                str(int(med["features"])),
                str(int(med["trees"])),
                f"{med['fit_seconds']:.1f}",
                f"{med['train_seconds']:.1f}",
                f"{med['test_auc']:.4f}",
                f"{med['rss_after_data_mib']:.0f}",
                f"{max(r['peak_rss_mib'] for r in runs):.0f}",
            ]
        )
    _table(
        f"2. training at scale: {policies:,} generated policies, hist, default hyperparameters "
        f"(early stopping on validation), median of {repeats}",
        [
            "threads",
            "rows",
            "features",
            "trees",
            "fit s",
            "train() s",
            "test AUC",
            "RSS data MiB",
            "peak RSS MiB",
        ],
        rows,
    )
    print("train() = fit + predict + threshold + test metrics with a 1,000-resample bootstrap CI")
    return {"policies": policies, **results}


# --------------------------------------------------------------------------------------------- 3. tuning
def article_procedure(frame: Any) -> dict[str, float]:
    """The article's training script: 5-fold xgb.cv (AUC, early stopping 10), then a final fit."""
    import numpy as np
    import xgboost as xgb

    X = frame.drop(["fraud", "policy_id"]).to_numpy().astype(np.float32)
    y = frame["fraud"].to_numpy()
    params = {"max_depth": 3, "eta": 0.2, "objective": "binary:logistic", "eval_metric": "auc", "nthread": 1}
    started = time.perf_counter()
    cv = xgb.cv(
        params, xgb.DMatrix(X, label=y), num_boost_round=100, nfold=5, seed=0, early_stopping_rounds=10
    )
    xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=len(cv))
    return {
        "seconds": time.perf_counter() - started,
        "validation_auc": float(cv["test-auc-mean"].iloc[-1]),
        "rounds": len(cv),
    }


def article_variants(frame: Any) -> list[tuple[str, str, float]]:
    """The article's parameters, measured honestly (repeated entity-grouped CV, out-of-fold AUC)."""
    from tideml.train import CVSpec, Hyperparameters, TrainSpec, build_matrix, cross_validate

    matrix = build_matrix(frame, TrainSpec())
    cv = CVSpec(folds=5, repeats=3, scope="all")
    variants = [
        ("fixed 100 rounds (the issue's baseline)", "100", {"num_round": 100, "early_stopping_rounds": None}),
        (
            "early stop 10 on an inner fifth of each training fold",
            "<=100",
            {"num_round": 100, "early_stopping_rounds": 10, "eval_metric": "auc"},
        ),
        (
            "fixed 10 rounds (what the article's early stopping picked)",
            "10",
            {"num_round": 10, "early_stopping_rounds": None},
        ),
    ]
    out = []
    for name, rounds, params in variants:
        hp = Hyperparameters.parse({**params, "max_depth": 3, "eta": 0.2})
        out.append((name, rounds, cross_validate(matrix, hp, cv, nthread=1).oof_auc_mean))
    return out


def tuning(trials: int, jobs: int, repeats: int) -> dict[str, Any]:
    from tideml.train import TrainService
    from tideml.workspace import Workspace

    frame = article()
    runs = []
    for r in range(repeats):
        with (
            tempfile.TemporaryDirectory(prefix="tide-bench-train-") as tmp,
            Workspace.init(Path(tmp) / "ws") as ws,
        ):
            service = TrainService(ws)
            started = time.perf_counter()
            run = service.tune(
                frame,
                {"n_trials": trials, "n_jobs": jobs, "seed": r},
                {"cv": {"folds": 5, "repeats": 3, "scope": "all"}},
                study=f"bench-{r}",
                progress=False,
            )
            elapsed = time.perf_counter() - started
            stored = service.trials(f"bench-{r}")
            runs.append({"elapsed": elapsed, "run": run, "stored": stored})
    first = runs[0]["run"].result
    _table(
        f"3a. trials of the first study ({trials} trials, TPE, objective: 5-fold CV AUC on "
        "train+validation), as stored in the metadata DB",
        [
            "#",
            "state",
            "value",
            "s",
            "max_depth",
            "eta",
            "num_round",
            "min_child_w",
            "subsample",
            "colsample",
            "lambda",
        ],
        [
            [
                str(t.number),
                t.state,
                "-" if t.value is None else f"{t.value:.4f}",
                f"{t.duration_seconds:.2f}",
                str(t.params["max_depth"]),
                f"{t.params['eta']:.4f}",
                str(t.params["num_round"]),
                f"{t.params['min_child_weight']:.2f}",
                f"{t.params['subsample']:.2f}",
                f"{t.params['colsample_bytree']:.2f}",
                f"{t.params['reg_lambda']:.2f}",
            ]
            for t in runs[0]["stored"]
        ],
    )
    rows = []
    for i, entry in enumerate(runs):
        res = entry["run"].result
        s = res.summary()
        tuned, base = s["tuned"], s["baseline"]
        rows.append(
            {
                "seed": i,
                "seconds": entry["elapsed"],
                "study_seconds": res.timings["study"],
                "best": s["best_value"],
                "baseline": s["baseline_value"],
                "val_tuned": tuned["validation_auc"],
                "val_base": base["validation_auc"],
                "test_tuned": tuned["test_auc"],
                "test_ci": tuned["test_auc_ci95"],
                "test_base": base["test_auc"],
                "oof_tuned": tuned["cv_oof_auc_mean"],
                "oof_base": base["cv_oof_auc_mean"],
                "pruned": s["pruned"],
                "f1": tuned["test_f1"],
            }
        )
    _table(
        f"3b. {trials}-trial tuning on the article's 5,000 policies, {jobs} parallel trial(s); "
        "tuned vs the article's fixed hyperparameters",
        [
            "seed",
            "study s",
            "wall s",
            "pruned",
            "CV AUC best/base",
            "val AUC tuned/base",
            "test AUC tuned [95% CI]",
            "test AUC base",
            "test F1",
            "3x5-fold OOF tuned/base",
        ],
        [
            [
                str(r["seed"]),
                f"{r['study_seconds']:.1f}",
                f"{r['seconds']:.1f}",
                str(r["pruned"]),
                f"{r['best']:.4f}/{r['baseline']:.4f}",
                f"{r['val_tuned']:.4f}/{r['val_base']:.4f}",
                f"{r['test_tuned']:.4f} [{r['test_ci'][0]:.3f}, {r['test_ci'][1]:.3f}]",
                f"{r['test_base']:.4f}",
                f"{r['f1']:.3f}",
                f"{r['oof_tuned']:.4f}/{r['oof_base']:.4f}",
            ]
            for r in rows
        ],
    )
    print(f"best parameters (seed 0): {json.dumps(first.best.params)}")
    print(
        "study s = the trials alone; wall s adds the baseline on the same folds, the refits of the best and "
        "the baseline, their 3x5-fold OOF CV, bootstrap CIs, reports and the metadata/artifact writes"
    )
    print(
        f"median study time: {statistics.median(r['study_seconds'] for r in rows):.1f} s; "
        f"median wall time: {statistics.median(r['seconds'] for r in rows):.1f} s; "
        f"median OOF AUC tuned {statistics.median(r['oof_tuned'] for r in rows):.4f} "
        f"vs article params {statistics.median(r['oof_base'] for r in rows):.4f}"
    )
    reference = article_procedure(frame)
    honest = article_variants(frame)
    _table(
        "3c. reference: the article's hyperparameters (max_depth 3, eta 0.2) under different procedures",
        ["procedure", "rounds", "CV AUC", "note"],
        [
            [
                "article script: xgb.cv 5-fold, early stop 10 on the held-out folds",
                str(reference["rounds"]),
                f"{reference['validation_auc']:.4f}",
                f"optimistic: the held-out folds chose the rounds ({reference['seconds']:.2f} s)",
            ],
            *[
                [name, rounds, f"{auc:.4f}", "3x5-fold out-of-fold, entity-grouped"]
                for name, rounds, auc in honest
            ],
        ],
    )
    return {
        "trials": trials,
        "jobs": jobs,
        "runs": [{k: v for k, v in r.items()} for r in rows],
        "best_params": first.best.params,
        "article_procedure": reference,
        "article_parameters_honest_cv": honest,
    }


# --------------------------------------------------------------------------------------------- 4. mitigation
def mitigation(params: dict[str, Any] | None) -> dict[str, Any]:
    from tideml.train import compare_mitigations

    spec: dict[str, Any] = {"n_jobs": 1}
    if params:
        spec["hyperparameters"] = {**params, "early_stopping_rounds": None}
    started = time.perf_counter()
    result = compare_mitigations(article(), spec, facet="customer_gender_female", progress=False)
    seconds = time.perf_counter() - started
    _table(
        "4. bias mitigation on the article's data, facet customer_gender_female = 1 (test split, "
        f"{'tuned' if params else 'default'} hyperparameters, {seconds:.1f} s for all five)",
        [
            "method",
            "AUC",
            "95% CI",
            "F1",
            "precision",
            "recall",
            "flagged F",
            "flagged other",
            "DPPL",
            "recall F",
        ],
        [
            [
                r.method,
                f"{r.test_auc:.4f}",
                f"[{r.test_auc_ci95[0]:.3f}, {r.test_auc_ci95[1]:.3f}]",
                f"{r.f1:.3f}",
                f"{r.precision:.3f}",
                f"{r.recall:.3f}",
                f"{r.flagged_rate_facet:.3f}",
                f"{r.flagged_rate_other:.3f}",
                f"{r.dppl:+.4f}",
                f"{r.recall_facet:.3f}",
            ]
            for r in result.rows
        ],
    )
    print("DPPL = flagged share of non-female minus flagged share of female policies (tideml.clarify)")
    return {"seconds": seconds, "methods": result.table()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--oracle-policies", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3, help="Seeds of the oracle measurement.")
    parser.add_argument("--scale-policies", type=int, default=1_000_000)
    parser.add_argument("--scale-repeats", type=int, default=1)
    parser.add_argument(
        "--scale-threads", default="1,0", help="Comma-separated XGBoost thread counts (0 = every core)."
    )
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--tune-jobs", type=int, default=1, help="Trials run in parallel.")
    parser.add_argument("--tune-repeats", type=int, default=1)
    parser.add_argument("--skip-oracle", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-tune", action="store_true")
    parser.add_argument("--skip-mitigation", action="store_true")
    parser.add_argument("--json", type=Path, help="Also write the numbers to this JSON file.")
    parser.add_argument("--scale-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scale_child:
        scale_child(args.scale_child)
        return
    sys.path.insert(0, str(SRC))
    out: dict[str, Any] = {}
    if not args.skip_oracle:
        out["oracle"] = oracle_gap(args.oracle_policies, list(range(args.repeats)))
    if not args.skip_scale:
        threads = [int(t) for t in args.scale_threads.split(",")]
        out["scale"] = scale(args.scale_policies, args.scale_repeats, threads)
    if not args.skip_tune:
        out["tuning"] = tuning(args.trials, args.tune_jobs, args.tune_repeats)
    if not args.skip_mitigation:
        out["mitigation"] = mitigation(out["tuning"]["best_params"] if "tuning" in out else None)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
