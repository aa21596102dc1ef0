"""Model quality once ground truth arrives: labels joined on inference id, binary metrics, constraints.

Layouts follow the managed model-quality monitor:

- statistics: `{"version": 0.0, "dataset": {"item_count", "evaluation_time"},
  "binary_classification_metrics": {"confusion_matrix": {...}, "auc": {"value", "standard_deviation"},
  "f1": {...}, ...}}`;
- constraints: `{"version": 0.0, "binary_classification_constraints": {"auc": {"threshold": 0.75,
  "comparison_operator": "LessThanThreshold"}, ...}}`;
- a violation: `{"metric_name", "constraint_check_type": <operator>, "description"}`.

A row is flagged positive when its probability is >= the decision threshold (as `tideml.train` decides).
Standard deviations are bootstrap estimates (20 resamples of at most 20,000 labelled rows, scaled to the
window's size).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl
import pydantic

from tideml.errors import ValidationError
from tideml.monitor._jsonfile import read_json, validate_json
from tideml.monitor.violations import Violation

__all__ = [
    "JoinSummary",
    "MetricConstraint",
    "ModelQualityConstraints",
    "ModelQualityResult",
    "auc_score",
    "binary_classification_metrics",
    "evaluate_model_quality",
    "join_labels",
    "load_model_quality_constraints",
    "suggest_model_quality_constraints",
]

FloatArray = npt.NDArray[np.float64]
Operator = Literal[
    "LessThanThreshold", "LessThanOrEqualToThreshold", "GreaterThanThreshold", "GreaterThanOrEqualToThreshold"
]
HIGHER_IS_BETTER = (
    "auc",
    "pr_auc",
    "f0_5",
    "f1",
    "f2",
    "precision",
    "recall",
    "accuracy",
    "true_positive_rate",
    "true_negative_rate",
)
LOWER_IS_BETTER = ("false_positive_rate", "false_negative_rate")
_FIX = "correct the constraint (see docs/monitor.md) or regenerate it with `tide monitor baseline`"


# -- metrics ----------------------------------------------------------------------------------------------
def _ranked(
    y: npt.NDArray[np.bool_], s: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """Scores sorted descending, labels in that order, and the end index of each run of tied scores."""
    order = np.argsort(-s, kind="mergesort")
    ss, yy = s[order], y[order]
    ends = (
        np.flatnonzero(np.concatenate([ss[1:] != ss[:-1], [True]]))
        if ss.size
        else np.empty(0, dtype=np.int64)
    )
    return ss, yy, ends


def _auc_from_ranked(yy: npt.NDArray[np.bool_], ends: npt.NDArray[np.int64]) -> float | None:
    n_pos = int(yy.sum())
    n_neg = int(yy.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    tp = np.cumsum(yy)[ends].astype(np.float64)
    fp = (ends + 1 - tp).astype(np.float64)
    tpr = np.concatenate([[0.0], tp / n_pos])
    fpr = np.concatenate([[0.0], fp / n_neg])
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))  # trapezoids: ties count one half


def auc_score(y: npt.ArrayLike, score: npt.ArrayLike) -> float | None:
    """ROC AUC (tied scores count one half, as the Mann-Whitney statistic); None with one class."""
    yy = np.asarray(y, dtype=np.float64) > 0.5
    ss = np.asarray(score, dtype=np.float64)
    _, ranked_y, ends = _ranked(yy, ss)
    return _auc_from_ranked(ranked_y, ends)


def _pr_auc_from_ranked(yy: npt.NDArray[np.bool_], ends: npt.NDArray[np.int64]) -> float | None:
    n_pos = int(yy.sum())
    if n_pos == 0:
        return None
    tp = np.cumsum(yy)[ends].astype(np.float64)
    precision = tp / (ends + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))  # average precision


def _rates(y: npt.NDArray[np.bool_], flagged: npt.NDArray[np.bool_]) -> dict[str, float]:
    tp = float(np.sum(y & flagged))
    fp = float(np.sum(~y & flagged))
    fn = float(np.sum(y & ~flagged))
    tn = float(np.sum(~y & ~flagged))

    def div(a: float, b: float) -> float:
        return a / b if b else 0.0

    precision, recall = div(tp, tp + fp), div(tp, tp + fn)

    def fbeta(beta: float) -> float:
        b2 = beta * beta
        return div((1 + b2) * precision * recall, b2 * precision + recall)

    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": precision,
        "recall": recall,
        "accuracy": div(tp + tn, tp + fp + fn + tn),
        "true_positive_rate": recall,
        "true_negative_rate": div(tn, tn + fp),
        "false_positive_rate": div(fp, fp + tn),
        "false_negative_rate": div(fn, fn + tp),
        "f0_5": fbeta(0.5),
        "f1": fbeta(1.0),
        "f2": fbeta(2.0),
    }


def _curve(
    ss: FloatArray, yy: npt.NDArray[np.bool_], ends: npt.NDArray[np.int64], points: int = 101
) -> tuple[list[list[float]], list[list[float]]]:
    """ROC and PR points at up to `points` thresholds (score quantiles), from the ranked scores."""
    if ss.size == 0:
        return [[0.0, 0.0], [1.0, 1.0]], []
    n_pos, n_neg = max(int(yy.sum()), 1), max(int((~yy).sum()), 1)
    cum_pos = np.cumsum(yy)
    picks = np.unique(
        np.minimum(np.searchsorted(ends, np.linspace(0, ss.size - 1, points).astype(np.int64)), ends.size - 1)
    )
    roc: list[list[float]] = []
    pr: list[list[float]] = []
    for e in ends[picks]:
        tp = int(cum_pos[e])
        fp = int(e + 1 - tp)
        roc.append([fp / n_neg, tp / n_pos])
        pr.append([tp / n_pos, tp / (tp + fp) if tp + fp else 1.0])
    return [[0.0, 0.0], *roc, [1.0, 1.0]], pr


def binary_classification_metrics(
    y_true: npt.ArrayLike,
    score: npt.ArrayLike,
    *,
    threshold: float = 0.5,
    bootstrap: int = 20,
    max_bootstrap_rows: int = 20_000,
    seed: int = 0,
) -> dict[str, Any]:
    """The managed `binary_classification_metrics` block: values, bootstrap deviations, matrix, curves."""
    y = np.asarray(y_true, dtype=np.float64) > 0.5
    s = np.asarray(score, dtype=np.float64)
    if y.size != s.size:
        raise ValidationError(
            f"{y.size} labels for {s.size} scores", obj="model quality", fix="pass one label per score"
        )
    rates = _rates(y, s >= threshold)
    values: dict[str, float | None] = {k: v for k, v in rates.items() if k not in ("tp", "fp", "fn", "tn")}
    ranked_s, ranked_y, ends = _ranked(y, s)
    values["auc"] = _auc_from_ranked(ranked_y, ends)
    values["pr_auc"] = _pr_auc_from_ranked(ranked_y, ends)
    prevalence = float(y.mean()) if y.size else 0.0
    constant = _rates(y, np.ones_like(y))  # best constant classifier for recall/f: flag everything
    values["recall_best_constant_classifier"] = constant["recall"]
    values["precision_best_constant_classifier"] = constant["precision"]
    values["accuracy_best_constant_classifier"] = max(prevalence, 1.0 - prevalence)
    for beta in ("f0_5", "f1", "f2"):
        values[f"{beta}_best_constant_classifier"] = constant[beta]
    deviations = _bootstrap(y, s, threshold, bootstrap, max_bootstrap_rows, seed)
    out: dict[str, Any] = {
        "confusion_matrix": {
            "0": {"0": int(rates["tn"]), "1": int(rates["fp"])},
            "1": {"0": int(rates["fn"]), "1": int(rates["tp"])},
        }
    }
    for name, value in values.items():
        entry: dict[str, Any] = {"value": value}
        if name in deviations:
            entry["standard_deviation"] = deviations[name]
        out[name] = entry
    roc, pr = _curve(ranked_s, ranked_y, ends)
    out["receiver_operating_characteristic_curve"] = {
        "false_positive_rates": [p[0] for p in roc],
        "true_positive_rates": [p[1] for p in roc],
    }
    out["precision_recall_curve"] = {"recalls": [p[0] for p in pr], "precisions": [p[1] for p in pr]}
    return out


def _bootstrap(
    y: npt.NDArray[np.bool_], s: FloatArray, threshold: float, b: int, max_rows: int, seed: int
) -> dict[str, float]:
    if b <= 1 or y.size < 10:
        return {}
    rng = np.random.default_rng(seed)
    full = int(y.size)
    m = min(full, max_rows)
    if m < y.size:
        pick = rng.choice(y.size, size=m, replace=False)
        y, s = y[pick], s[pick]
    samples: dict[str, list[float]] = {}
    for _ in range(b):
        idx = rng.integers(0, m, m)
        yy, ss = y[idx], s[idx]
        r = _rates(yy, ss >= threshold)
        for name in (
            "precision",
            "recall",
            "accuracy",
            "f0_5",
            "f1",
            "f2",
            "false_positive_rate",
            "false_negative_rate",
            "true_negative_rate",
            "true_positive_rate",
        ):
            samples.setdefault(name, []).append(r[name])
        a = auc_score(yy, ss)
        if a is not None:
            samples.setdefault("auc", []).append(a)
    scale = math.sqrt(m / full) if m < full else 1.0  # the deviation of a statistic shrinks as 1/sqrt(n)
    return {k: float(np.std(v, ddof=1)) * scale for k, v in samples.items() if len(v) > 1}


# -- constraints ------------------------------------------------------------------------------------------
class MetricConstraint(pydantic.BaseModel):
    """One metric's limit."""

    model_config = pydantic.ConfigDict(extra="forbid")

    threshold: float
    comparison_operator: Operator

    def violated(self, value: float) -> bool:
        """True when `value` breaks the constraint (the operator names the failing relation)."""
        if self.comparison_operator == "LessThanThreshold":
            return value < self.threshold
        if self.comparison_operator == "LessThanOrEqualToThreshold":
            return value <= self.threshold
        if self.comparison_operator == "GreaterThanThreshold":
            return value > self.threshold
        return value >= self.threshold


class ModelQualityConstraints(pydantic.BaseModel):
    """A model-quality `constraints.json`."""

    model_config = pydantic.ConfigDict(extra="forbid")

    version: float = 0.0
    binary_classification_constraints: dict[str, MetricConstraint]

    def to_json(self) -> dict[str, Any]:
        """The document."""
        out: dict[str, Any] = self.model_dump(mode="json")
        return out

    @classmethod
    def from_json(
        cls, data: Any, *, path: Path | str = "model_quality_constraints.json", text: str | None = None
    ) -> ModelQualityConstraints:
        """Validate a parsed document (errors name the file, line and field)."""
        return validate_json(cls, data, path=path, text=text, what="model-quality constraints", fix=_FIX)


def load_model_quality_constraints(path: str | Path) -> ModelQualityConstraints:
    """Read and validate a model-quality constraints file."""
    p = Path(path)
    data, text = read_json(p, what="model-quality constraints", fix="pass model_quality_constraints.json")
    return ModelQualityConstraints.from_json(data, path=p, text=text)


def suggest_model_quality_constraints(
    metrics: dict[str, Any],
    *,
    names: Sequence[str] = ("auc", "f1", "precision", "recall"),
    tolerance: float = 0.05,
    relative_tolerance: float = 0.25,
) -> ModelQualityConstraints:
    """Limits below the baseline's values (above, for error rates).

    AUC (and PR-AUC) get an absolute `tolerance`; metrics at the decision threshold (F1, precision, recall…)
    swing much more from window to window at a low base rate, so they get `relative_tolerance` of their value
    when that is larger. The baseline must come from held-out predictions, or every window looks worse.
    """
    out: dict[str, MetricConstraint] = {}
    for name in names:
        entry = metrics.get(name)
        value = entry.get("value") if isinstance(entry, dict) else None
        if value is None:
            continue
        room = tolerance if name in ("auc", "pr_auc") else max(tolerance, relative_tolerance * abs(value))
        if name in LOWER_IS_BETTER:
            out[name] = MetricConstraint(
                threshold=round(min(1.0, value + room), 4), comparison_operator="GreaterThanThreshold"
            )
        else:
            out[name] = MetricConstraint(
                threshold=round(max(0.0, value - room), 4), comparison_operator="LessThanThreshold"
            )
    return ModelQualityConstraints(binary_classification_constraints=out)


# -- joining late labels ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class JoinSummary:
    """How the window's captures met their labels."""

    captured: int
    labels: int
    matched: int
    captures_without_label: int
    labels_without_capture: int
    duplicate_captures: int

    def to_json(self) -> dict[str, int]:
        """JSON-ready counts."""
        return dict(self.__dict__)


def _last_per_id(frame: pl.DataFrame, id_column: str) -> pl.DataFrame:
    """One row per id, the last one winning; a cheap uniqueness test skips the dedupe in the usual case."""
    if frame[id_column].n_unique() == frame.height:
        return frame
    return frame.unique(subset=[id_column], keep="last", maintain_order=True)


def join_labels(
    window: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    id_column: str,
    label_column: str,
    prediction_column: str,
    keep_columns: Sequence[str] = (),
) -> tuple[pl.DataFrame, JoinSummary]:
    """Inner join of captures and labels on the inference id (one row per id: the last capture and the
    last label win). `keep_columns` of the window come along (e.g. facets for bias drift)."""
    for frame, what, cols in (
        (window, "window", (id_column, prediction_column, *keep_columns)),
        (labels, "labels", (id_column, label_column)),
    ):
        for c in cols:
            if c not in frame.columns:
                raise ValidationError(
                    "column is missing",
                    obj=what,
                    field=c,
                    fix=f"the {what} needs {c!r} to join captures with labels",
                )
    extra = [c for c in dict.fromkeys(keep_columns) if c not in (id_column, prediction_column, label_column)]
    captures = window.select(
        pl.col(id_column).cast(pl.String),
        pl.col(prediction_column).cast(pl.Float64),
        *[pl.col(c) for c in extra],
    )
    lab = labels.select(pl.col(id_column).cast(pl.String), pl.col(label_column).cast(pl.Float64)).drop_nulls()
    try:
        # the usual case, unique ids on both sides, checked by the join itself in one pass
        joined = captures.join(lab, on=id_column, how="inner", validate="1:1")
        deduped = captures
    except pl.exceptions.ComputeError:
        deduped = _last_per_id(captures, id_column)
        lab = _last_per_id(lab, id_column)  # a corrected label replaces the first
        joined = deduped.join(lab, on=id_column, how="inner")
    joined = joined.drop_nulls([prediction_column, label_column])
    summary = JoinSummary(
        captured=window.height,
        labels=lab.height,
        matched=joined.height,
        captures_without_label=deduped.height - joined.height,
        labels_without_capture=lab.height - joined.height,
        duplicate_captures=captures.height - deduped.height,
    )
    return joined, summary


@dataclass
class ModelQualityResult:
    """Model quality of one window."""

    statistics: dict[str, Any] | None
    violations: list[Violation]
    join: JoinSummary | None
    threshold: float
    notes: list[str] = field(default_factory=list)

    def metric(self, name: str) -> float | None:
        """The value of one metric (None when not computed)."""
        if self.statistics is None:
            return None
        entry = self.statistics["binary_classification_metrics"].get(name)
        return entry.get("value") if isinstance(entry, dict) else None


def evaluate_model_quality(
    window: pl.DataFrame,
    labels: pl.DataFrame | None,
    *,
    constraints: ModelQualityConstraints | None,
    id_column: str,
    label_column: str,
    prediction_column: str,
    threshold: float,
    min_labels: int = 50,
    now: datetime | None = None,
    joined: tuple[pl.DataFrame, JoinSummary] | None = None,
) -> ModelQualityResult:
    """Join, compute the metrics and check them; too few labels (or one class) is a note, not a violation.

    `joined` passes a join already made by `join_labels` (then `window` and `labels` are not read again).
    """
    if joined is not None:
        frame, summary = joined
    else:
        if labels is None:
            raise ValidationError("no labels given", obj="model quality", field="labels", fix="pass labels")
        frame, summary = join_labels(
            window,
            labels,
            id_column=id_column,
            label_column=label_column,
            prediction_column=prediction_column,
        )
    joined_frame = frame
    notes: list[str] = []
    y = joined_frame[label_column].to_numpy()
    s = joined_frame[prediction_column].to_numpy()
    if joined_frame.height < min_labels or len(np.unique(y > 0.5)) < 2:
        notes.append(
            f"model quality skipped: {joined_frame.height} labelled rows"
            + ("" if joined_frame.height < min_labels else " with a single class")
            + f" (needs {min_labels} with both classes)"
        )
        return ModelQualityResult(None, [], summary, threshold, notes)
    metrics = binary_classification_metrics(y, s, threshold=threshold)
    stats = {
        "version": 0.0,
        "dataset": {
            "item_count": joined_frame.height,
            "evaluation_time": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
        "binary_classification_metrics": metrics,
    }
    violations: list[Violation] = []
    for name, rule in constraints.binary_classification_constraints.items() if constraints else []:
        entry = metrics.get(name)
        if not isinstance(entry, dict) or entry.get("value") is None:
            notes.append(f"constraint on {name!r} not checked: the metric is not computed")
            continue
        value = float(entry["value"])
        if rule.violated(value):
            sd = entry.get("standard_deviation")
            shown = f"{value:.4g}" + (f" +/- {sd:.2g}" if sd is not None else "")
            violations.append(
                Violation(
                    rule.comparison_operator,
                    f"Metric {name} with {shown} was {rule.comparison_operator} '{rule.threshold}'",
                    monitor="model_quality",
                    metric_name=name,
                )
            )
    return ModelQualityResult(stats, violations, summary, threshold, notes)
