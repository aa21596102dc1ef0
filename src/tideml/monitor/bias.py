"""Bias drift: Clarify's metrics on a labelled window against the same metrics on the baseline.

The metrics come from `tideml.clarify.bias_report` (imported when used, so the monitor works without it for
everything else). The baseline is Clarify's `analysis.json` bias blocks, as the managed bias-drift monitor
keeps it. By default a metric violates when the window is farther from neutral (0, or 1 for DI) than the
baseline by more than `tolerance` — the managed rule "farther from 0 than the baseline", with room for
sampling noise; `rule="change"` flags any change larger than `tolerance` (a reversed gap included).
Each violation is `{facet, facet_value, metric_name, constraint_check_type: "bias_drift_check",
description}`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl
import pydantic

from tideml.errors import ValidationError
from tideml.monitor.violations import Violation

__all__ = [
    "BiasDriftConfig",
    "BiasDriftResult",
    "BiasFacet",
    "bias_available",
    "bias_baseline",
    "bias_drift",
]

NEUTRAL_ONE = frozenset({"DI"})


def _positive_label() -> list[str | int | float]:
    return [1]


class BiasFacet(pydantic.BaseModel):
    """A facet column and the values (or threshold) of the group *d*."""

    model_config = pydantic.ConfigDict(extra="forbid")

    name: str
    value_or_threshold: list[str | int | float] | float | None = None


class BiasDriftConfig(pydantic.BaseModel):
    """What to measure and how much change is tolerated."""

    model_config = pydantic.ConfigDict(extra="forbid")

    facets: list[BiasFacet] = pydantic.Field(min_length=1)
    label_values: list[str | int | float] = pydantic.Field(default_factory=_positive_label)
    pre_training: list[str] = pydantic.Field(default_factory=lambda: ["CI", "DPL"])
    post_training: list[str] = pydantic.Field(default_factory=lambda: ["DPPL", "DI", "RD"])
    tolerance: float = pydantic.Field(0.1, ge=0)
    rule: Literal["farther_from_neutral", "change"] = pydantic.Field(
        "farther_from_neutral",
        description="Managed rule (|window - neutral| > |baseline - neutral| + tolerance) or any change "
        "(|window - baseline| > tolerance, which also catches a reversed gap of the same size).",
    )
    min_rows: int = pydantic.Field(100, ge=1)


def bias_available() -> bool:
    """True when `tideml.clarify` can be imported."""
    try:
        import tideml.clarify  # noqa: F401
    except ImportError:
        return False
    return True


def _report(
    frame: pl.DataFrame,
    *,
    label: str,
    predicted: npt.NDArray[np.int64],
    config: BiasDriftConfig,
) -> dict[str, Any]:
    from tideml.clarify import Facet, bias_report

    facets = [Facet(f.name, f.value_or_threshold) for f in config.facets]
    result = bias_report(
        frame,
        label=label,
        label_values_or_threshold=config.label_values,
        facets=facets,
        predicted_label=predicted,
        pre_training=config.pre_training or None,
        post_training=config.post_training or None,
    )
    out: dict[str, Any] = result.analysis_json()
    return out


def _predicted(scores: npt.ArrayLike, threshold: float) -> npt.NDArray[np.int64]:
    return (np.asarray(scores, dtype=np.float64) >= threshold).astype(np.int64)


def _label_frame(frame: pl.DataFrame, label: str) -> pl.DataFrame:
    col = frame[label]
    if col.dtype.is_float() and col.drop_nulls().is_in([0.0, 1.0]).all():
        return frame.with_columns(col.cast(pl.Int64))
    return frame


def bias_baseline(
    frame: pl.DataFrame, *, label: str, scores: npt.ArrayLike, threshold: float, config: BiasDriftConfig
) -> dict[str, Any]:
    """Clarify's `analysis.json` bias blocks of the baseline data (the bias-drift constraints)."""
    return _report(
        _label_frame(frame, label), label=label, predicted=_predicted(scores, threshold), config=config
    )


@dataclass
class BiasDriftResult:
    """Window metrics, the comparison with the baseline and the violations."""

    analysis: dict[str, Any] | None
    comparisons: list[dict[str, Any]]
    violations: list[Violation]
    notes: list[str] = field(default_factory=list)


def _metrics(analysis: dict[str, Any]) -> dict[tuple[str, str, str], float | None]:
    out: dict[tuple[str, str, str], float | None] = {}
    for stage in ("pre_training_bias_metrics", "post_training_bias_metrics"):
        block = analysis.get(stage) or {}
        for facet, entries in (block.get("facets") or {}).items():
            for entry in entries:
                for m in entry.get("metrics", []):
                    out[(facet, str(entry.get("value_or_threshold")), m["name"])] = _num(m.get("value"))
    return out


def _num(v: Any) -> float | None:
    if v is None:
        return None
    if v == "Infinity":
        return math.inf
    if v == "-Infinity":
        return -math.inf
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _deviation(metric: str, value: float) -> float:
    return abs(value - 1.0) if metric in NEUTRAL_ONE else abs(value)


def bias_drift(
    baseline: dict[str, Any],
    frame: pl.DataFrame,
    *,
    label: str,
    scores: Sequence[float] | npt.ArrayLike,
    threshold: float,
    config: BiasDriftConfig,
) -> BiasDriftResult:
    """Compare the window's bias metrics with the baseline's; needs labelled rows."""
    if not bias_available():
        return BiasDriftResult(None, [], [], ["bias drift skipped: tideml.clarify is not importable"])
    if frame.height < config.min_rows:
        return BiasDriftResult(
            None, [], [], [f"bias drift skipped: {frame.height} labelled rows (needs {config.min_rows})"]
        )
    for f in config.facets:
        if f.name not in frame.columns:
            raise ValidationError(
                "facet column is missing from the window",
                obj="bias drift",
                field=f.name,
                fix="capture the facet column",
            )
    live = _report(
        _label_frame(frame, label), label=label, predicted=_predicted(scores, threshold), config=config
    )
    base_values = _metrics(baseline)
    comparisons: list[dict[str, Any]] = []
    violations: list[Violation] = []
    for key, value in _metrics(live).items():
        facet, facet_value, metric = key
        base = base_values.get(key)
        row: dict[str, Any] = {
            "facet": facet,
            "facet_value": facet_value,
            "metric_name": metric,
            "baseline": base,
            "window": value,
            "violated": False,
        }
        if value is not None and base is not None and math.isfinite(value) and math.isfinite(base):
            if config.rule == "change":
                broken = abs(value - base) > config.tolerance
                allowed_text = f"allowed change {config.tolerance:.4g}"
            else:
                allowed = _deviation(metric, base) + config.tolerance
                broken = _deviation(metric, value) > allowed
                allowed_text = f"allowed distance from neutral {allowed:.4g}"
            if broken:
                row["violated"] = True
                violations.append(
                    Violation(
                        "bias_drift_check",
                        f"Value {value:.4g} does not meet the constraint requirement: baseline {base:.4g}, "
                        f"{allowed_text}",
                        monitor="bias",
                        facet=facet,
                        facet_value=facet_value,
                        metric_name=metric,
                    )
                )
        comparisons.append(_clean(row))
    return BiasDriftResult(live, comparisons, violations)


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, float) and math.isinf(v):
            out[k] = "Infinity" if v > 0 else "-Infinity"
        else:
            out[k] = v
    return out
