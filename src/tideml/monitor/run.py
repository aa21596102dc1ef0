"""One monitoring run, the functional core: a baseline and a window in, every check's result out.

`run_checks(baseline, window, labels=..., model=...)` profiles the window with the baseline's types, then runs
the data-quality checks, per-feature drift (the prediction column included: prediction drift), model quality
on the labelled rows, bias drift and feature-attribution drift, each when its inputs are there. No workspace,
no files written: the service persists what this returns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pydantic

from tideml.monitor.attribution import (
    AttributionDriftResult,
    attribution_drift,
    global_attributions,
    window_attributions,
)
from tideml.monitor.baseline import Baseline
from tideml.monitor.bias import BiasDriftResult, bias_drift
from tideml.monitor.capture import CaptureFormat, Window, read_labels, read_window
from tideml.monitor.checks import check_data_quality
from tideml.monitor.drift import FeatureDrift, compare_features
from tideml.monitor.quality import ModelQualityResult, evaluate_model_quality, join_labels
from tideml.monitor.statistics import DatasetStatistics, compute_statistics
from tideml.monitor.violations import Violation, violations_document

__all__ = ["MonitorConfig", "MonitorResult", "run_checks"]


class MonitorConfig(pydantic.BaseModel):
    """Which checks a run does and their settings (thresholds of drift live in constraints.json)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    capture: CaptureFormat | None = None
    threshold: float | None = pydantic.Field(
        None, ge=0, le=1, description="Decision threshold (default: baseline's)."
    )
    ignore_columns: list[str] = pydantic.Field(default_factory=list)
    data_quality: bool = True
    drift: bool = True
    model_quality: bool = True
    bias: bool = True
    attribution: bool = True
    attribution_threshold: float = pydantic.Field(0.9, ge=0, le=1)
    attribution_sample: int = pydantic.Field(2000, ge=10)
    min_labels: int = pydantic.Field(50, ge=1)
    report_plots: int = pydantic.Field(9, ge=0, description="Feature distributions drawn in report.html.")
    label_delay_seconds: float = pydantic.Field(
        0.0,
        ge=0,
        description="Model quality looks at captures this much older than the window (late labels).",
    )
    seed: int = 0


@dataclass
class MonitorResult:
    """Everything one run found."""

    violations: list[Violation]
    statistics: DatasetStatistics
    drift: list[FeatureDrift]
    rows: int
    model_quality: ModelQualityResult | None = None
    bias: BiasDriftResult | None = None
    attribution: AttributionDriftResult | None = None
    prediction_column: str | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    window_start: datetime | None = None
    window_end: datetime | None = None

    @property
    def violated(self) -> bool:
        """True when any check failed."""
        return bool(self.violations)

    def violations_json(self) -> dict[str, Any]:
        """`constraint_violations.json`."""
        return violations_document(self.violations)

    def summary(self) -> dict[str, Any]:
        """A short JSON-ready summary (what the CLI prints)."""
        by_type: dict[str, int] = {}
        for v in self.violations:
            by_type[v.constraint_check_type] = by_type.get(v.constraint_check_type, 0) + 1
        out: dict[str, Any] = {
            "rows": self.rows,
            "violations": len(self.violations),
            "by_check": by_type,
            "drifted_features": [d.name for d in self.drift if d.drifted],
        }
        if self.model_quality is not None and self.model_quality.statistics is not None:
            out["model_quality"] = {
                k: self.model_quality.metric(k) for k in ("auc", "f1", "precision", "recall")
            }
        if self.attribution is not None:
            out["attribution_ndcg"] = self.attribution.ndcg
        return out

    def results_json(self) -> dict[str, Any]:
        """Every measure of the run (tideml's `monitoring_results.json`): aggregates only, never raw rows."""
        out: dict[str, Any] = {
            "version": 1,
            "rows": self.rows,
            "window": {
                "start": self.window_start.isoformat() if self.window_start else None,
                "end": self.window_end.isoformat() if self.window_end else None,
            },
            "summary": self.summary(),
            "prediction_column": self.prediction_column,
            "drift": [d.to_json() for d in self.drift],
            "data_quality": {
                name: {
                    "completeness": f.completeness,
                    "num_present": f.num_present,
                    "num_missing": f.num_missing,
                    "num_type_mismatch": f.num_type_mismatch,
                }
                for name, f in self.statistics.features.items()
            },
            "violations": [dict(v.to_json(), monitor=v.monitor) for v in self.violations],
            "notes": list(self.notes),
            "timings": dict(self.timings),
        }
        if self.model_quality is not None:
            out["model_quality"] = {
                "statistics": self.model_quality.statistics,
                "join": self.model_quality.join.to_json() if self.model_quality.join else None,
                "threshold": self.model_quality.threshold,
                "notes": self.model_quality.notes,
            }
        if self.bias is not None:
            out["bias"] = {
                "analysis": self.bias.analysis,
                "comparisons": self.bias.comparisons,
                "notes": self.bias.notes,
            }
        if self.attribution is not None:
            a = self.attribution
            out["attribution"] = {
                "ndcg": a.ndcg,
                "threshold": a.threshold,
                "baseline": a.baseline,
                "window": a.window,
                "rows": a.rows,
            }
        return out


def run_checks(
    baseline: Baseline,
    window: Window | Any,
    *,
    labels: Window | Any | None = None,
    model: Any = None,
    config: MonitorConfig | None = None,
    now: datetime | None = None,
    quality_window: Window | Any | None = None,
) -> MonitorResult:
    """Run every applicable check of `window` (a `Window`, a frame or capture files) against `baseline`.

    Model quality and bias drift join `labels` with `quality_window` (default: the window itself) — an
    earlier window when labels arrive late (`MonitorConfig.label_delay_seconds`).
    """
    cfg = config or MonitorConfig()
    fmt = cfg.capture or baseline.settings.capture
    threshold = cfg.threshold if cfg.threshold is not None else baseline.settings.threshold
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    win = window if isinstance(window, Window) else read_window(window, fmt=fmt)
    frame = win.frame
    notes = list(win.notes)
    timings["read"] = time.perf_counter() - t0

    t = time.perf_counter()
    names = baseline.constraints.names
    present = [n for n in names if n in frame.columns]
    types = baseline.types
    stats = compute_statistics(frame, types={n: types[n] for n in present}, columns=present, seed=cfg.seed)
    timings["profile"] = time.perf_counter() - t

    violations: list[Violation] = []
    prediction = fmt.prediction_column
    if cfg.data_quality:
        t = time.perf_counter()
        ignore = {
            fmt.id_column,
            fmt.time_column,
            fmt.label_column,
            *cfg.ignore_columns,
            *fmt.metadata_columns,
            *baseline.settings.excluded_columns,
        }
        if baseline.settings.label_column:
            ignore.add(baseline.settings.label_column)
        if prediction and prediction not in names:
            ignore.add(prediction)
        violations += check_data_quality(
            baseline.constraints, stats, window_columns=list(frame.columns), ignore_columns=ignore
        )
        timings["data_quality"] = time.perf_counter() - t
    drift: list[FeatureDrift] = []
    if cfg.drift and frame.height:
        t = time.perf_counter()
        extra = {prediction: {"prediction": True}} if prediction else None
        drift = compare_features(
            baseline.statistics, stats, baseline.constraints, features=present, extra=extra
        )
        for d in drift:
            if d.drifted:
                prefix = "Prediction drift. " if d.extra.get("prediction") else ""
                violations.append(
                    Violation("baseline_drift_check", prefix + d.description(), feature_name=d.name)
                )
        timings["drift"] = time.perf_counter() - t

    result = MonitorResult(
        violations,
        stats,
        drift,
        frame.height,
        prediction_column=prediction if prediction in frame.columns else None,
        notes=notes,
        timings=timings,
        window_start=win.start,
        window_end=win.end,
    )
    if labels is not None and (cfg.model_quality or cfg.bias):
        t = time.perf_counter()
        lab = labels if isinstance(labels, Window) else read_labels(labels, fmt=fmt)
        notes.extend(lab.notes)
        qframe = frame
        if quality_window is not None:
            qwin = (
                quality_window if isinstance(quality_window, Window) else read_window(quality_window, fmt=fmt)
            )
            qframe = qwin.frame
            notes.extend(qwin.notes)
        if prediction is None or prediction not in qframe.columns or fmt.id_column not in qframe.columns:
            notes.append(
                f"model quality skipped: the window needs {fmt.id_column!r} and the prediction column "
                f"{prediction!r}"
            )
        else:
            want_bias = cfg.bias and baseline.bias is not None and baseline.settings.bias is not None
            facets = (
                [f.name for f in baseline.settings.bias.facets]
                if want_bias and baseline.settings.bias
                else []
            )
            pair = join_labels(
                qframe,
                lab.frame,
                id_column=fmt.id_column,
                label_column=fmt.label_column,
                prediction_column=prediction,
                keep_columns=[f for f in facets if f in qframe.columns],
            )
            timings["join"] = time.perf_counter() - t
            if cfg.model_quality:
                t = time.perf_counter()
                mq = evaluate_model_quality(
                    qframe,
                    None,
                    constraints=baseline.model_quality_constraints,
                    id_column=fmt.id_column,
                    label_column=fmt.label_column,
                    prediction_column=prediction,
                    threshold=threshold,
                    min_labels=cfg.min_labels,
                    now=now,
                    joined=pair,
                )
                result.model_quality = mq
                violations += mq.violations
                notes.extend(mq.notes)
                timings["model_quality"] = time.perf_counter() - t
            if want_bias and baseline.bias is not None and baseline.settings.bias is not None:
                t = time.perf_counter()
                joined = pair[0]
                b = bias_drift(
                    baseline.bias,
                    joined,
                    label=fmt.label_column,
                    scores=joined[prediction].to_numpy(),
                    threshold=threshold,
                    config=baseline.settings.bias,
                )
                result.bias = b
                violations += b.violations
                notes.extend(b.notes)
                timings["bias"] = time.perf_counter() - t
    elif baseline.bias is not None and cfg.bias:
        notes.append("bias drift skipped: no labels were given for the window")
    if cfg.attribution and baseline.attribution is not None:
        if model is None:
            notes.append("attribution drift skipped: no model was given")
        elif frame.height == 0:
            notes.append("attribution drift skipped: the window is empty")
        else:
            t = time.perf_counter()
            base_values = global_attributions(baseline.attribution)
            values, _, rows = window_attributions(
                model,
                frame,
                features=baseline.settings.attribution_features,
                sample=cfg.attribution_sample,
                seed=cfg.seed,
            )
            a = attribution_drift(base_values, values, threshold=cfg.attribution_threshold, rows=rows)
            result.attribution = a
            violations += a.violations
            timings["attribution"] = time.perf_counter() - t
    if frame.height == 0:
        notes.append("the window is empty: only column checks were possible")
    timings["total"] = time.perf_counter() - t0
    result.timings = timings
    return result
