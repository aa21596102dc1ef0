"""The XGBoost trainer: entity split, early stopping on validation, evaluation on test, k-fold CV.

`train(data, spec)` is the whole honest procedure in one call and needs no workspace:

1. pin the feature order and types (`data.build_matrix`);
2. split entities into train / validation / test, stratified and seeded (`split.entity_split`);
3. fit on train, early-stop on validation (optionally weighting positives);
4. choose the threshold on validation, report every metric on test (`evaluate.evaluate`);
5. optionally, repeated k-fold cross-validation with out-of-fold ROC-AUC (`cross_validate`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import xgboost as xgb
from pydantic import BaseModel, ConfigDict
from sklearn.metrics import roc_auc_score

from tideml._progress import ProgressBar, progress_bar
from tideml.errors import ValidationError
from tideml.train.data import ModelMatrix, as_polars, build_matrix, frame_fingerprint
from tideml.train.evaluate import Evaluation, ThresholdChoice, evaluate
from tideml.train.model import FeatureSpec, GroupThresholds, TrainedModel
from tideml.train.spec import CVSpec, Hyperparameters, TrainSpec
from tideml.train.split import Split, entity_folds, entity_split

__all__ = [
    "CVResult",
    "TrainResult",
    "cross_validate",
    "fit_booster",
    "fit_evaluate",
    "resolve_threads",
    "train",
]

FloatArray = npt.NDArray[np.float64]
_XGB_TYPES: dict[str, str] = {"int": "int", "float": "float", "bool": "i"}
_INNER_VALIDATION_FOLDS = (
    5  # CV folds early-stop on 1/5 of their own training rows, never on the held-out fold
)


# Below this many training rows one thread is as fast as several, and it does not collapse when the cores
# are busy (OpenMP threads spin-wait for each other: 10-30x slower on an oversubscribed machine).
AUTO_THREADS_MIN_ROWS = 20_000


def resolve_threads(n_jobs: int, rows: int | None = None) -> int:
    """XGBoost threads: `n_jobs`; or, for 0 (auto), 1 below `AUTO_THREADS_MIN_ROWS` rows, else every core."""
    if n_jobs > 0:
        return n_jobs
    if rows is not None and rows < AUTO_THREADS_MIN_ROWS:
        return 1
    return os.cpu_count() or 1


class _RoundProgress(xgb.callback.TrainingCallback):
    def __init__(self, bar: ProgressBar) -> None:
        super().__init__()
        self.bar = bar

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        self.bar.advance(1)
        return False


def _scale_pos_weight(hp: Hyperparameters, y: npt.NDArray[Any], weights: FloatArray | None) -> float | None:
    if hp.scale_pos_weight != "balanced":
        return hp.scale_pos_weight
    w = np.ones(y.shape) if weights is None else weights
    positive = float(w[y == 1].sum())
    return float(w[y == 0].sum()) / positive if positive else 1.0


def fit_booster(
    X_train: npt.NDArray[np.float32],
    y_train: npt.NDArray[Any],
    hp: Hyperparameters,
    *,
    X_validation: npt.NDArray[np.float32] | xgb.DMatrix | None = None,
    y_validation: npt.NDArray[Any] | None = None,
    weights: FloatArray | None = None,
    seed: int = 0,
    nthread: int = 0,
    feature_names: Sequence[str] | None = None,
    feature_types: Sequence[str] | None = None,
    callbacks: Sequence[xgb.callback.TrainingCallback] = (),
) -> tuple[xgb.Booster, dict[str, Any]]:
    """Fit one booster; early-stop on the validation rows if given; return it cut to its best round.

    The validation rows may come as a DMatrix (labelled): a callback that predicts on that same
    object then reads XGBoost's per-round prediction cache instead of running the whole model.
    """
    names = list(feature_names) if feature_names is not None else None
    types = [_XGB_TYPES.get(t, t) for t in feature_types] if feature_types is not None else None
    dtrain = xgb.DMatrix(X_train, label=y_train, weight=weights, feature_names=names, feature_types=types)
    spw = _scale_pos_weight(hp, np.asarray(y_train), weights)
    threads = resolve_threads(nthread, int(np.asarray(y_train).shape[0]))
    params = hp.xgb_params(seed=seed, nthread=threads, scale_pos_weight=spw)
    evals: list[tuple[xgb.DMatrix, str]] = []
    stopping = None
    if X_validation is not None and y_validation is not None:
        dval = (
            X_validation
            if isinstance(X_validation, xgb.DMatrix)
            else xgb.DMatrix(X_validation, label=y_validation, feature_names=names, feature_types=types)
        )
        evals = [(dval, "validation")]
        stopping = hp.early_stopping_rounds
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=hp.num_round,
        evals=evals,
        early_stopping_rounds=stopping,
        verbose_eval=False,
        callbacks=list(callbacks),
    )
    rounds = booster.num_boosted_rounds()
    best = rounds - 1
    if stopping is not None:
        best = int(booster.best_iteration)
        if best + 1 < rounds:
            booster = booster[: best + 1]
    info = {"best_iteration": best, "rounds_trained": rounds, "scale_pos_weight": spw}
    return booster, info


class CVResult(BaseModel):
    """Repeated k-fold cross-validation: out-of-fold ROC-AUC per repeat and per fold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    folds: int
    repeats: int
    scope: str
    rows: int
    oof_auc: list[float]
    oof_auc_mean: float
    oof_auc_std: float
    fold_auc: list[list[float]]
    fold_auc_mean: float


def cross_validate(
    matrix: ModelMatrix,
    hp: Hyperparameters,
    cv: CVSpec,
    *,
    rows: npt.NDArray[np.int64] | None = None,
    seed: int = 0,
    nthread: int = 0,
    weights: FloatArray | None = None,
    on_fold: Callable[[int, float], None] | None = None,
    progress: bool = False,
) -> CVResult:
    """Entity-grouped stratified k-fold CV over `rows` (default all), repeated with seeds seed, seed+1, ….

    With early stopping on, each fold stops on an entity-grouped fifth of its own training rows, so the
    held-out fold never influences its own model. `on_fold(step, mean_fold_auc_so_far)` is called after
    every fold (tuning uses it to prune); it may raise to abort.
    """
    idx = np.arange(matrix.rows) if rows is None else np.asarray(rows, dtype=np.int64)
    X, y, entities = matrix.X[idx], matrix.y[idx], matrix.entities[idx]
    w = None if weights is None else np.asarray(weights)[idx]
    names, types = list(matrix.features), list(matrix.feature_types)
    oof_aucs: list[float] = []
    fold_aucs: list[list[float]] = []
    step = 0
    with progress_bar("Cross-validating", total=cv.folds * cv.repeats, enabled=progress) as bar:
        for repeat in range(cv.repeats):
            fold_of = entity_folds(entities, y, cv.folds, seed=seed + repeat)
            oof = np.zeros(idx.size, dtype=np.float64)
            this_repeat: list[float] = []
            for fold in range(cv.folds):
                held = fold_of == fold
                fit_rows = np.flatnonzero(~held)
                kwargs: dict[str, Any] = {}
                if hp.early_stopping_rounds is not None:
                    inner = entity_folds(
                        entities[fit_rows], y[fit_rows], _INNER_VALIDATION_FOLDS, seed=seed + repeat
                    )
                    stop_rows, fit_rows = fit_rows[inner == 0], fit_rows[inner != 0]
                    kwargs = {"X_validation": X[stop_rows], "y_validation": y[stop_rows]}
                booster, _ = fit_booster(
                    X[fit_rows],
                    y[fit_rows],
                    hp,
                    weights=None if w is None else w[fit_rows],
                    seed=seed,
                    nthread=nthread,
                    feature_names=names,
                    feature_types=types,
                    **kwargs,
                )
                oof[held] = booster.inplace_predict(X[held], validate_features=False)
                this_repeat.append(float(roc_auc_score(y[held], oof[held])))
                step += 1
                bar.advance(1)
                if on_fold is not None:
                    done = [a for r in fold_aucs for a in r] + this_repeat
                    on_fold(step, float(np.mean(done)))
            oof_aucs.append(float(roc_auc_score(y, oof)))
            fold_aucs.append(this_repeat)
    flat = [a for r in fold_aucs for a in r]
    return CVResult(
        folds=cv.folds,
        repeats=cv.repeats,
        scope=cv.scope,
        rows=int(idx.size),
        oof_auc=oof_aucs,
        oof_auc_mean=float(np.mean(oof_aucs)),
        oof_auc_std=float(np.std(oof_aucs)),
        fold_auc=fold_aucs,
        fold_auc_mean=float(np.mean(flat)),
    )


@dataclass
class TrainResult:
    """A trained model with its evaluation, split, optional CV, and the raw scores of validation/test."""

    model: TrainedModel
    evaluation: Evaluation
    split: Split
    split_summary: dict[str, dict[str, int | float]]
    cv: CVResult | None
    timings: dict[str, float]
    validation_scores: FloatArray
    test_scores: FloatArray
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready digest: test metrics, threshold, split sizes, CV, timings."""
        test = self.evaluation.test
        out: dict[str, Any] = {
            "model": {
                "booster_sha256": self.model.spec.booster_sha256,
                "trees": self.model.spec.num_trees,
                "features": len(self.model.spec.features),
            },
            "threshold": self.evaluation.threshold.model_dump(),
            "group_thresholds": self.evaluation.group_thresholds,
            "test": {
                "roc_auc": test.roc_auc,
                "roc_auc_ci95": [test.roc_auc_ci_low, test.roc_auc_ci_high],
                "pr_auc": test.pr_auc,
                "log_loss": test.log_loss,
                "brier": test.brier,
                "f1": test.f1,
                "precision": test.precision,
                "recall": test.recall,
                "accuracy": test.accuracy,
                "confusion": test.confusion.model_dump(),
            },
            "validation": {
                "roc_auc": self.evaluation.validation.roc_auc,
                "f1": self.evaluation.validation.f1,
            },
            "split": self.split_summary,
            "timings_seconds": self.timings,
        }
        if self.cv is not None:
            out["cv"] = self.cv.model_dump()
        return out

    def report(self) -> dict[str, Any]:
        """The full evaluation report as JSON-ready data (what the HTML report is rendered from)."""
        return {
            "summary": self.summary(),
            "evaluation": self.evaluation.model_dump(mode="json"),
            "model_spec": self.model.spec.model_dump(mode="json"),
            **({"extra": self.extra} if self.extra else {}),
        }


def _metrics_digest(evaluation: Evaluation, cv: CVResult | None) -> dict[str, Any]:
    t, v = evaluation.test, evaluation.validation
    digest: dict[str, Any] = {
        "test_roc_auc": t.roc_auc,
        "test_roc_auc_ci95": [t.roc_auc_ci_low, t.roc_auc_ci_high],
        "test_pr_auc": t.pr_auc,
        "test_log_loss": t.log_loss,
        "test_brier": t.brier,
        "test_f1": t.f1,
        "test_precision": t.precision,
        "test_recall": t.recall,
        "test_accuracy": t.accuracy,
        "test_confusion": t.confusion.model_dump(),
        "validation_roc_auc": v.roc_auc,
        "validation_f1": v.f1,
    }
    if cv is not None:
        digest["cv_oof_auc_mean"] = cv.oof_auc_mean
        digest["cv_oof_auc_std"] = cv.oof_auc_std
    return digest


def _check_feature_names(features: Sequence[str]) -> None:
    for name in features:
        if any(ch in name for ch in "[]<"):
            raise ValidationError(
                "XGBoost refuses feature names containing '[', ']' or '<'",
                obj="training data",
                field=name,
                fix="rename the column",
            )


def fit_evaluate(
    matrix: ModelMatrix,
    split: Split,
    spec: TrainSpec,
    *,
    train_set: tuple[npt.NDArray[np.float32], npt.NDArray[Any], FloatArray | None] | None = None,
    dataset_sha256: str | None = None,
    fitted_flow_ids: Sequence[str] = (),
    cv: CVResult | None = None,
    mitigation: dict[str, Any] | None = None,
    group_thresholds: tuple[GroupThresholds, FloatArray, FloatArray] | None = None,
    threshold_choice: ThresholdChoice | None = None,
    booster: tuple[xgb.Booster, dict[str, Any]] | None = None,
    progress: bool = False,
) -> TrainResult:
    """Fit on the train rows (or `train_set`, e.g. oversampled), early-stop on validation, evaluate on test.

    `booster` reuses an already fitted booster (per-group thresholds change only the decision rule);
    `group_thresholds` = (spec, per-row thresholds of validation, of test).
    """
    _check_feature_names(matrix.features)
    timings: dict[str, float] = {}
    X_tr, y_tr, w_tr = train_set or (matrix.X[split.train], matrix.y[split.train], None)
    started = time.perf_counter()
    if booster is None:
        with progress_bar("Training", total=spec.hyperparameters.num_round, enabled=progress) as bar:
            booster = fit_booster(
                X_tr,
                y_tr,
                spec.hyperparameters,
                X_validation=matrix.X[split.validation],
                y_validation=matrix.y[split.validation],
                weights=w_tr,
                seed=spec.seed,
                nthread=spec.n_jobs,
                feature_names=matrix.features,
                feature_types=matrix.feature_types,
                callbacks=[_RoundProgress(bar)] if progress else [],
            )
    fitted, info = booster
    timings["fit"] = time.perf_counter() - started
    started = time.perf_counter()
    p_val = np.asarray(
        fitted.inplace_predict(matrix.X[split.validation], validate_features=False), dtype=np.float64
    )
    p_test = np.asarray(
        fitted.inplace_predict(matrix.X[split.test], validate_features=False), dtype=np.float64
    )
    amounts = matrix.amounts
    evaluation = evaluate(
        matrix.y[split.validation],
        p_val,
        matrix.y[split.test],
        p_test,
        spec.threshold,
        amounts_validation=None if amounts is None else amounts[split.validation],
        amounts_test=None if amounts is None else amounts[split.test],
        entities_test=matrix.entities[split.test],
        bootstrap_resamples=spec.bootstrap_resamples,
        calibration_bin_count=spec.calibration_bins,
        seed=spec.seed,
        row_thresholds=None if group_thresholds is None else (group_thresholds[1], group_thresholds[2]),
        group_thresholds=None if group_thresholds is None else dict(group_thresholds[0].thresholds),
        threshold_choice=threshold_choice,
    )
    timings["evaluate"] = time.perf_counter() - started
    split_summary = split.summary(matrix.y, matrix.entities)
    params = spec.hyperparameters.model_dump(mode="json")
    params["scale_pos_weight_resolved"] = info["scale_pos_weight"]
    model = TrainedModel.build(
        fitted,
        label=spec.label,
        entity=spec.entity,
        features=[
            FeatureSpec(name=n, type=t) for n, t in zip(matrix.features, matrix.feature_types, strict=True)
        ],
        threshold=evaluation.threshold.value,
        threshold_strategy=evaluation.threshold.strategy,
        group_thresholds=None if group_thresholds is None else group_thresholds[0],
        dataset_sha256=dataset_sha256,
        fitted_flow_ids=list(fitted_flow_ids),
        params=params,
        seed=spec.seed,
        best_iteration=info["best_iteration"],
        metrics=_metrics_digest(evaluation, cv),
        training={
            "split": split_summary,
            "split_spec": spec.split.model_dump(),
            "threshold_spec": spec.threshold.model_dump(),
            "training_rows": int(y_tr.shape[0]),
            "rounds_trained": info["rounds_trained"],
        },
        mitigation=mitigation,
    )
    return TrainResult(
        model=model,
        evaluation=evaluation,
        split=split,
        split_summary=split_summary,
        cv=cv,
        timings=timings,
        validation_scores=p_val,
        test_scores=p_test,
    )


def train(
    data: Any,
    spec: TrainSpec | dict[str, Any] | None = None,
    *,
    dataset_sha256: str | None = None,
    fitted_flow_ids: Sequence[str] = (),
    progress: bool = True,
) -> TrainResult:
    """Train and evaluate honestly on a model-ready table (polars/pandas frame or Parquet path).

    The dataset hash recorded in the model spec is `dataset_sha256` if given, else a fingerprint of the
    frame's content (`data.frame_fingerprint`).
    """
    spec = TrainSpec.parse(spec)
    started = time.perf_counter()
    frame = as_polars(data)
    matrix = build_matrix(frame, spec)
    split = entity_split(matrix.entities, matrix.y, spec.split, seed=spec.seed)
    load_seconds = time.perf_counter() - started
    cv = None
    cv_seconds = 0.0
    if spec.cv is not None:
        started = time.perf_counter()
        rows = split.development if spec.cv.scope == "development" else None
        cv = cross_validate(
            matrix,
            spec.hyperparameters,
            spec.cv,
            rows=rows,
            seed=spec.seed,
            nthread=spec.n_jobs,
            progress=progress,
        )
        cv_seconds = time.perf_counter() - started
    result = fit_evaluate(
        matrix,
        split,
        spec,
        dataset_sha256=dataset_sha256 or frame_fingerprint(frame),
        fitted_flow_ids=fitted_flow_ids,
        cv=cv,
        progress=progress,
    )
    result.timings["prepare"] = load_seconds
    if cv is not None:
        result.timings["cross_validate"] = cv_seconds
    return result
