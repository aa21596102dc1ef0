"""Honest evaluation: a threshold chosen on validation, every number reported on test.

Functions here take arrays (labels, scores, optional claim amounts) and return pydantic models that
serialise to JSON. Nothing reads files or a workspace. Plots and the HTML report are in
`tideml.train.report`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from tideml.errors import ValidationError
from tideml.train.spec import CostMatrix, ThresholdSpec

__all__ = [
    "CalibrationBin",
    "ClassificationMetrics",
    "ConfusionCounts",
    "Curve",
    "Evaluation",
    "SweepPoint",
    "ThresholdChoice",
    "bootstrap_auc_interval",
    "calibration_bins",
    "choose_threshold",
    "classification_metrics",
    "evaluate",
    "threshold_sweep",
    "weighted_auc",
]

FloatArray = npt.NDArray[np.float64]
_MAX_CURVE_POINTS = 300


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ConfusionCounts(_Model):
    """Counts of the four outcomes at one threshold (positive = flagged as fraud)."""

    tn: int
    fp: int
    fn: int
    tp: int


class ClassificationMetrics(_Model):
    """Ranking, probability and decision metrics of one split."""

    rows: int
    positives: int
    base_rate: float
    roc_auc: float
    roc_auc_ci_low: float | None = None
    roc_auc_ci_high: float | None = None
    bootstrap_resamples: int = 0
    pr_auc: float
    log_loss: float
    brier: float
    threshold: float | None
    f1: float
    precision: float
    recall: float
    accuracy: float
    predicted_positive_rate: float
    confusion: ConfusionCounts
    expected_cost: float | None = None
    cost_of_flagging_nothing: float | None = None


class ThresholdChoice(_Model):
    """The decision threshold and how it was chosen (always on the validation split)."""

    strategy: str
    value: float
    validation_objective: str
    validation_score: float


class SweepPoint(_Model):
    """Decision metrics of the test split at one threshold."""

    threshold: float
    precision: float
    recall: float
    f1: float
    predicted_positive_rate: float
    expected_cost: float | None = None


class CalibrationBin(_Model):
    """One quantile bin of test scores: mean predicted probability against the observed rate."""

    mean_predicted: float
    observed_rate: float
    count: int


class Curve(_Model):
    """A curve as two coordinate lists (downsampled for plotting)."""

    x: list[float]
    y: list[float]


class Evaluation(_Model):
    """Everything the report shows: threshold choice, validation and test metrics, sweep, calibration."""

    threshold: ThresholdChoice
    group_thresholds: dict[str, float] | None = None
    validation: ClassificationMetrics
    test: ClassificationMetrics
    sweep: list[SweepPoint]
    calibration: list[CalibrationBin]
    roc_curve: Curve
    pr_curve: Curve


# ------------------------------------------------------------------------------------------ helpers
def _check(y: npt.NDArray[Any], p: npt.NDArray[Any], obj: str) -> tuple[npt.NDArray[np.int64], FloatArray]:
    yy = np.asarray(y, dtype=np.int64).reshape(-1)
    pp = np.asarray(p, dtype=np.float64).reshape(-1)
    if yy.shape != pp.shape:
        raise ValidationError(
            f"{yy.size} labels but {pp.size} scores", obj=obj, fix="pass one score per labelled row"
        )
    if np.unique(yy).size < 2:
        raise ValidationError(
            "needs both positive and negative rows", obj=obj, field="y", fix="evaluate on a larger split"
        )
    if not np.all(np.isfinite(pp)):
        raise ValidationError("scores must be finite", obj=obj, field="scores", fix="check the model output")
    return yy, pp


def _false_negative_costs(
    y: npt.NDArray[np.int64], costs: CostMatrix, amounts: FloatArray | None
) -> FloatArray:
    if amounts is None:
        return np.full(y.shape, costs.false_negative, dtype=np.float64)
    return np.asarray(amounts, dtype=np.float64)


def _descending_cumulative(
    y: npt.NDArray[np.int64], p: FloatArray, extra: FloatArray | None = None
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Distinct scores (descending) and, flagging `p >= score`, cumulative tp, fp and sum of `extra` on tp."""
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order].astype(np.float64)
    last = np.r_[ps[1:] != ps[:-1], True]  # last row of each run of equal scores
    tp = np.cumsum(ys)[last]
    fp = np.cumsum(1.0 - ys)[last]
    carried = np.cumsum(ys * extra[order])[last] if extra is not None else np.zeros_like(tp)
    return ps[last], tp, fp, carried


def choose_threshold(
    y: npt.NDArray[Any], p: npt.NDArray[Any], spec: ThresholdSpec, *, amounts: FloatArray | None = None
) -> ThresholdChoice:
    """Pick the threshold on validation data: max F1, min expected cost, or a fixed value."""
    yy, pp = _check(y, p, "threshold selection")
    if spec.strategy == "fixed":
        assert spec.value is not None
        f1 = _decision_counts(yy, pp >= spec.value)["f1"]
        return ThresholdChoice(
            strategy="fixed", value=spec.value, validation_objective="f1", validation_score=f1
        )
    if spec.strategy == "max_f1":
        scores, tp, fp, _ = _descending_cumulative(yy, pp)
        f1 = 2 * tp / (2 * tp + fp + (yy.sum() - tp))
        best = int(np.argmax(f1))  # first maximum = the highest threshold reaching it
        return ThresholdChoice(
            strategy="max_f1",
            value=float(scores[best]),
            validation_objective="f1",
            validation_score=float(f1[best]),
        )
    fn_costs = _false_negative_costs(yy, spec.costs, amounts)
    c = spec.costs
    scores, tp, fp, fn_avoided = _descending_cumulative(yy, pp, fn_costs)
    negatives = float((yy == 0).sum())
    all_fn = float((yy * fn_costs).sum())
    # flag nothing: every positive costs its false-negative cost, every negative the true-negative cost
    none_cost = all_fn + negatives * c.true_negative
    totals = none_cost + tp * c.true_positive - fn_avoided + fp * (c.false_positive - c.true_negative)
    best = int(np.argmin(totals))
    if totals[best] < none_cost:
        value, total = float(scores[best]), float(totals[best])
    else:  # flagging nothing is cheapest: put the threshold just above every validation score
        value, total = float(min(1.0, np.nextafter(scores[0], np.inf))), none_cost
    return ThresholdChoice(
        strategy="min_cost",
        value=value,
        validation_objective="expected_cost_per_row",
        validation_score=total / yy.size,
    )


def _decision_counts(y: npt.NDArray[np.int64], flagged: npt.NDArray[np.bool_]) -> dict[str, float]:
    tp = int((flagged & (y == 1)).sum())
    fp = int((flagged & (y == 0)).sum())
    fn = int((~flagged & (y == 1)).sum())
    tn = int((~flagged & (y == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": precision, "recall": recall, "f1": f1}


def _expected_cost(
    y: npt.NDArray[np.int64], flagged: npt.NDArray[np.bool_], costs: CostMatrix, amounts: FloatArray | None
) -> float:
    fn_costs = _false_negative_costs(y, costs, amounts)
    per_row = np.where(
        flagged,
        np.where(y == 1, costs.true_positive, costs.false_positive),
        np.where(y == 1, fn_costs, costs.true_negative),
    )
    return float(per_row.mean())


# ------------------------------------------------------------------------------------------ AUC + CI
def weighted_auc(y: npt.NDArray[Any], p: npt.NDArray[Any], weights: npt.NDArray[Any] | None = None) -> float:
    """ROC-AUC with row weights (ties count one half); equals sklearn's `roc_auc_score` for unit weights."""
    yy, pp = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    ww = np.ones_like(pp) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.argsort(pp, kind="stable")
    ps = pp[order]
    group = np.r_[0, np.cumsum(ps[1:] != ps[:-1])]
    return _grouped_auc(group, yy[order], ww[order], int(group[-1]) + 1)


def _grouped_auc(group: npt.NDArray[Any], ys: FloatArray, ws: FloatArray, groups: int) -> float:
    pos = np.bincount(group, ws * ys, groups)
    neg = np.bincount(group, ws * (1.0 - ys), groups)
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos == 0 or total_neg == 0:
        return float("nan")
    below = np.cumsum(neg) - neg
    return float((pos * (below + 0.5 * neg)).sum() / (total_pos * total_neg))


def bootstrap_auc_interval(
    y: npt.NDArray[Any],
    p: npt.NDArray[Any],
    *,
    resamples: int = 1000,
    seed: int = 0,
    entities: npt.NDArray[Any] | None = None,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the ROC-AUC, resampling entities (all rows of one move together)."""
    yy, pp = _check(y, p, "bootstrap")
    if resamples < 1:
        raise ValidationError(
            "needs at least one resample", obj="bootstrap", field="resamples", fix="pass >= 100"
        )
    if entities is None:
        codes = np.arange(yy.size)
    else:
        codes = np.unique(np.asarray(entities), return_inverse=True)[1].reshape(-1)
    n_entities = int(codes.max()) + 1
    # Sort the negatives once; each positive's rank among them (strictly below, and below-or-tied) is
    # fixed, so a resample only needs the cumulative negative weight: O(rows) per resample, no sorting.
    neg = np.flatnonzero(yy == 0)
    neg = neg[np.argsort(pp[neg], kind="stable")]
    pos = np.flatnonzero(yy == 1)
    neg_scores = pp[neg]
    below = np.searchsorted(neg_scores, pp[pos], side="left")
    below_or_tied = np.searchsorted(neg_scores, pp[pos], side="right")
    neg_codes, pos_codes = codes[neg], codes[pos]
    rng = np.random.default_rng(seed)
    values = np.empty(resamples, dtype=np.float64)
    cumulative = np.zeros(neg.size + 1, dtype=np.float64)
    for i in range(resamples):
        counts = np.bincount(rng.integers(0, n_entities, n_entities), minlength=n_entities).astype(np.float64)
        np.cumsum(counts[neg_codes], out=cumulative[1:])
        w_pos = counts[pos_codes]
        total = w_pos.sum() * cumulative[-1]
        won = cumulative[below] + 0.5 * (cumulative[below_or_tied] - cumulative[below])
        values[i] = float(w_pos @ won) / total if total > 0 else np.nan
    values = values[np.isfinite(values)]
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


# ------------------------------------------------------------------------------------------ metrics
def classification_metrics(
    y: npt.NDArray[Any],
    p: npt.NDArray[Any],
    threshold: float | FloatArray,
    *,
    costs: CostMatrix | None = None,
    amounts: FloatArray | None = None,
    bootstrap_resamples: int = 0,
    seed: int = 0,
    entities: npt.NDArray[Any] | None = None,
) -> ClassificationMetrics:
    """All metrics of one split; `threshold` may be one value or one per row (per-group thresholds)."""
    yy, pp = _check(y, p, "evaluation")
    flagged = pp >= np.asarray(threshold, dtype=np.float64)
    counts = _decision_counts(yy, flagged)
    low = high = None
    if bootstrap_resamples:
        low, high = bootstrap_auc_interval(
            yy, pp, resamples=bootstrap_resamples, seed=seed, entities=entities
        )
    cost = none_cost = None
    if costs is not None:
        cost = _expected_cost(yy, flagged, costs, amounts)
        none_cost = _expected_cost(yy, np.zeros_like(flagged), costs, amounts)
    clipped = np.clip(pp, 1e-15, 1 - 1e-15)
    return ClassificationMetrics(
        rows=int(yy.size),
        positives=int(yy.sum()),
        base_rate=float(yy.mean()),
        roc_auc=float(roc_auc_score(yy, pp)),
        roc_auc_ci_low=low,
        roc_auc_ci_high=high,
        bootstrap_resamples=bootstrap_resamples,
        pr_auc=float(average_precision_score(yy, pp)),
        log_loss=float(log_loss(yy, clipped, labels=[0, 1])),
        brier=float(brier_score_loss(yy, pp)),
        threshold=float(threshold) if np.ndim(threshold) == 0 else None,
        f1=counts["f1"],
        precision=counts["precision"],
        recall=counts["recall"],
        accuracy=float((flagged == (yy == 1)).mean()),
        predicted_positive_rate=float(flagged.mean()),
        confusion=ConfusionCounts(
            tn=int(counts["tn"]), fp=int(counts["fp"]), fn=int(counts["fn"]), tp=int(counts["tp"])
        ),
        expected_cost=cost,
        cost_of_flagging_nothing=none_cost,
    )


def threshold_sweep(
    y: npt.NDArray[Any],
    p: npt.NDArray[Any],
    *,
    points: int = 101,
    extra: tuple[float, ...] = (),
    costs: CostMatrix | None = None,
    amounts: FloatArray | None = None,
) -> list[SweepPoint]:
    """Decision metrics at thresholds spread over the score quantiles (plus `extra` thresholds)."""
    yy, pp = _check(y, p, "threshold sweep")
    grid = np.unique(
        np.r_[np.quantile(pp, np.linspace(0.0, 1.0, points)), np.asarray(extra, dtype=np.float64)]
    )
    out: list[SweepPoint] = []
    for t in grid:
        flagged = pp >= t
        c = _decision_counts(yy, flagged)
        out.append(
            SweepPoint(
                threshold=float(t),
                precision=c["precision"],
                recall=c["recall"],
                f1=c["f1"],
                predicted_positive_rate=float(flagged.mean()),
                expected_cost=_expected_cost(yy, flagged, costs, amounts) if costs is not None else None,
            )
        )
    return out


def calibration_bins(y: npt.NDArray[Any], p: npt.NDArray[Any], *, bins: int = 10) -> list[CalibrationBin]:
    """Quantile bins of the scores (equal counts, so rare high scores still get bins)."""
    yy, pp = _check(y, p, "calibration")
    edges = np.unique(np.quantile(pp, np.linspace(0.0, 1.0, bins + 1)))
    index = np.clip(np.searchsorted(edges, pp, side="right") - 1, 0, max(edges.size - 2, 0))
    out: list[CalibrationBin] = []
    for b in range(max(edges.size - 1, 1)):
        member = index == b
        if member.any():
            out.append(
                CalibrationBin(
                    mean_predicted=float(pp[member].mean()),
                    observed_rate=float(yy[member].mean()),
                    count=int(member.sum()),
                )
            )
    return out


def _downsample(x: FloatArray, y: FloatArray) -> Curve:
    if x.size > _MAX_CURVE_POINTS:
        keep = np.unique(np.linspace(0, x.size - 1, _MAX_CURVE_POINTS).round().astype(np.int64))
        x, y = x[keep], y[keep]
    return Curve(x=[float(v) for v in x], y=[float(v) for v in y])


def evaluate(
    y_validation: npt.NDArray[Any],
    p_validation: npt.NDArray[Any],
    y_test: npt.NDArray[Any],
    p_test: npt.NDArray[Any],
    spec: ThresholdSpec,
    *,
    amounts_validation: FloatArray | None = None,
    amounts_test: FloatArray | None = None,
    entities_test: npt.NDArray[Any] | None = None,
    bootstrap_resamples: int = 1000,
    calibration_bin_count: int = 10,
    seed: int = 0,
    row_thresholds: tuple[FloatArray, FloatArray] | None = None,
    group_thresholds: dict[str, float] | None = None,
    threshold_choice: ThresholdChoice | None = None,
) -> Evaluation:
    """Choose the threshold on validation, then compute every metric on test.

    `row_thresholds` (validation, test) replaces the single threshold with one per row (per-group
    thresholds); `threshold_choice` then describes the global fallback.
    """
    choice = threshold_choice or choose_threshold(
        y_validation, p_validation, spec, amounts=amounts_validation
    )
    costs = spec.costs if spec.strategy == "min_cost" else None
    t_val: float | FloatArray = choice.value if row_thresholds is None else row_thresholds[0]
    t_test: float | FloatArray = choice.value if row_thresholds is None else row_thresholds[1]
    validation = classification_metrics(
        y_validation, p_validation, t_val, costs=costs, amounts=amounts_validation
    )
    test = classification_metrics(
        y_test,
        p_test,
        t_test,
        costs=costs,
        amounts=amounts_test,
        bootstrap_resamples=bootstrap_resamples,
        seed=seed,
        entities=entities_test,
    )
    yy, pp = _check(y_test, p_test, "evaluation")
    fpr, tpr, _ = roc_curve(yy, pp)
    precision, recall, _ = precision_recall_curve(yy, pp)
    return Evaluation(
        threshold=choice,
        group_thresholds=group_thresholds,
        validation=validation,
        test=test,
        sweep=threshold_sweep(yy, pp, extra=(choice.value,), costs=costs, amounts=amounts_test),
        calibration=calibration_bins(yy, pp, bins=calibration_bin_count),
        roc_curve=_downsample(np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)),
        pr_curve=_downsample(
            np.asarray(recall[::-1], dtype=np.float64), np.asarray(precision[::-1], dtype=np.float64)
        ),
    )
