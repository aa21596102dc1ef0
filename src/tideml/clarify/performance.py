"""Model performance by group (Fairlearn's MetricFrame idea) from the same count table as the metrics.

Clarify reports signed *d*-versus-rest differences; this table adds, for every group of a facet, the rates
themselves and the symmetric summaries (max - min, min / max) that multi-group comparisons need:
demographic-parity difference and ratio, equal-opportunity and equalized-odds differences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tideml.clarify._arith import Q, ratio
from tideml.errors import ValidationError

__all__ = [
    "RATE_NAMES",
    "GroupPerformance",
    "PerformanceTable",
    "confusion_rates",
    "metric_by_group",
    "performance_by_group",
]

RATE_NAMES: tuple[str, ...] = (
    "base_rate",
    "selection_rate",
    "accuracy",
    "precision",
    "recall",
    "specificity",
    "false_positive_rate",
    "false_negative_rate",
    "negative_predictive_value",
    "f1",
)
_LABEL_ONLY = ("base_rate",)


def confusion_rates(table: npt.NDArray[np.int64]) -> dict[str, Q]:
    """Rates from `table[..., y, ŷ]` (0/0 is undefined, never silently 0)."""
    t = table.astype(np.float64)
    tn, fp, fn, tp = t[..., 0, 0], t[..., 0, 1], t[..., 1, 0], t[..., 1, 1]
    n = tn + fp + fn + tp
    return {
        "base_rate": ratio(tp + fn, n, False),
        "selection_rate": ratio(tp + fp, n, False),
        "accuracy": ratio(tp + tn, n, False),
        "precision": ratio(tp, tp + fp, False),
        "recall": ratio(tp, tp + fn, False),
        "specificity": ratio(tn, tn + fp, False),
        "false_positive_rate": ratio(fp, fp + tn, False),
        "false_negative_rate": ratio(fn, fn + tp, False),
        "negative_predictive_value": ratio(tn, tn + fn, False),
        "f1": ratio(2 * tp, 2 * tp + fp + fn, False),
    }


def _num(q: Q, i: int | tuple[int, ...] = ()) -> float | None:
    return float(q.value[i]) if q.code[i] == 0 else None


@dataclass(frozen=True)
class GroupPerformance:
    """One group's size, share of rows and rates."""

    group: str
    n: int
    share: float
    rates: dict[str, float | None]


@dataclass
class PerformanceTable:
    """Per-group rates of one facet, the overall row, and symmetric summaries across groups."""

    facet: str
    groups: list[GroupPerformance]
    overall: GroupPerformance
    summary: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""

        def row(g: GroupPerformance) -> dict[str, Any]:
            return {"group": g.group, "n": g.n, "share": g.share, **g.rates}

        return {
            "facet": self.facet,
            "groups": [row(g) for g in self.groups],
            "overall": row(self.overall),
            "summary": self.summary,
        }


def performance_by_group(
    facet: str,
    cells: npt.NDArray[np.int64],
    positive: npt.NDArray[np.bool_],
    atom_names: Sequence[str],
    *,
    has_predictions: bool,
    min_rows: int = 1,
) -> PerformanceTable:
    """Rates for every atom of a facet from `cells[atom, group, label, ŷ]`."""
    by_label = cells.sum(axis=1)  # [atom, L, 2]
    table = np.stack([by_label[:, ~positive, :].sum(axis=1), by_label[:, positive, :].sum(axis=1)], axis=1)
    names = RATE_NAMES if has_predictions else _LABEL_ONLY
    rates = confusion_rates(table)
    total = table.sum(axis=0)
    overall_rates = confusion_rates(total)
    n_all = int(total.sum())
    sizes = table.sum(axis=(1, 2))
    groups = [
        GroupPerformance(
            str(atom_names[i]),
            int(sizes[i]),
            float(sizes[i] / n_all) if n_all else 0.0,
            {k: _num(rates[k], i) for k in names},
        )
        for i in range(len(atom_names))
        if sizes[i] >= min_rows
    ]
    overall = GroupPerformance("all", n_all, 1.0, {k: _num(overall_rates[k]) for k in names})
    summary: dict[str, dict[str, float | None]] = {}
    for k in names:
        vals = [g.rates[k] for g in groups if g.rates[k] is not None]
        if len(vals) < 2:
            continue
        lo, hi = min(v for v in vals if v is not None), max(v for v in vals if v is not None)
        summary[k] = {"min": lo, "max": hi, "difference": hi - lo, "ratio": (lo / hi) if hi else None}
    if has_predictions and "recall" in summary and "false_positive_rate" in summary:
        summary["equalized_odds"] = {
            "difference": max(
                summary["recall"]["difference"] or 0.0, summary["false_positive_rate"]["difference"] or 0.0
            )
        }
    if has_predictions and "selection_rate" in summary:
        summary["demographic_parity"] = {
            "difference": summary["selection_rate"]["difference"],
            "ratio": summary["selection_rate"]["ratio"],
        }
    return PerformanceTable(facet, groups, overall, summary)


def metric_by_group(
    metric: Callable[..., float],
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    groups: npt.ArrayLike,
) -> dict[str, Any]:
    """Any scikit-learn-style `metric(y_true, y_pred)` per group, with overall, difference and ratio."""
    yt, yp, g = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups)
    if not (len(yt) == len(yp) == len(g)):
        raise ValidationError(
            f"lengths differ: y_true {len(yt)}, y_pred {len(yp)}, groups {len(g)}",
            obj="metric_by_group",
            fix="pass arrays of one row each",
        )
    uniques, inverse = np.unique(g, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(uniques) + 1))
    by_group: dict[str, float] = {}
    for i, u in enumerate(uniques):
        rows = order[bounds[i] : bounds[i + 1]]
        by_group[str(u.item() if isinstance(u, np.generic) else u)] = float(metric(yt[rows], yp[rows]))
    values = list(by_group.values())
    lo, hi = (min(values), max(values)) if values else (float("nan"), float("nan"))
    return {
        "overall": float(metric(yt, yp)),
        "by_group": by_group,
        "difference": hi - lo,
        "ratio": lo / hi if hi else None,
    }
