"""Model monitoring: baselines, data-quality and drift checks, model quality with late labels, bias and
feature-attribution drift, schedules and a retraining trigger — in Model Monitor's file formats.

Functional core (no workspace): `suggest_baseline` → `Baseline` (statistics.json, constraints.json, …),
`run_checks(baseline, window, labels=..., model=...)` → `MonitorResult` (violations, drift, quality),
`write_run_outputs` (constraint_violations.json, statistics.json, monitoring_results.json, report.html).
Workspace shell: `MonitorService(ws)` stores baselines, monitors and runs, schedules them and records lineage.
"""

from tideml.monitor.attribution import AttributionDriftResult, attribution_drift, ndcg
from tideml.monitor.baseline import Baseline, BaselineSettings, load_baseline, suggest_baseline
from tideml.monitor.bias import BiasDriftConfig, BiasDriftResult, BiasFacet, bias_drift
from tideml.monitor.capture import CaptureFormat, Window, read_labels, read_window
from tideml.monitor.checks import check_data_quality
from tideml.monitor.constraints import Constraints, load_constraints, suggest_constraints
from tideml.monitor.drift import DriftMeasures, FeatureDrift, compare_features, jensen_shannon, psi
from tideml.monitor.quality import (
    ModelQualityConstraints,
    ModelQualityResult,
    auc_score,
    binary_classification_metrics,
    evaluate_model_quality,
    join_labels,
    load_model_quality_constraints,
)
from tideml.monitor.report import render_html, run_files, write_run_outputs
from tideml.monitor.run import MonitorConfig, MonitorResult, run_checks
from tideml.monitor.schedule import CronExpression, Schedule, parse_duration
from tideml.monitor.service import BaselineRef, MonitorRunOutcome, MonitorRunView, MonitorService, MonitorView
from tideml.monitor.sketch import QuantileSketch
from tideml.monitor.statistics import (
    DatasetStatistics,
    FeatureStatistics,
    compute_statistics,
    load_statistics,
)
from tideml.monitor.trigger import LaunchedRun, PipelineLauncher, TriggerSpec, pipelines_launcher
from tideml.monitor.violations import Violation

__all__ = [
    "AttributionDriftResult",
    "Baseline",
    "BaselineRef",
    "BaselineSettings",
    "BiasDriftConfig",
    "BiasDriftResult",
    "BiasFacet",
    "CaptureFormat",
    "Constraints",
    "CronExpression",
    "DatasetStatistics",
    "DriftMeasures",
    "FeatureDrift",
    "FeatureStatistics",
    "LaunchedRun",
    "ModelQualityConstraints",
    "ModelQualityResult",
    "MonitorConfig",
    "MonitorResult",
    "MonitorRunOutcome",
    "MonitorRunView",
    "MonitorService",
    "MonitorView",
    "PipelineLauncher",
    "QuantileSketch",
    "Schedule",
    "TriggerSpec",
    "Violation",
    "Window",
    "attribution_drift",
    "auc_score",
    "bias_drift",
    "binary_classification_metrics",
    "check_data_quality",
    "compare_features",
    "compute_statistics",
    "evaluate_model_quality",
    "jensen_shannon",
    "join_labels",
    "load_baseline",
    "load_constraints",
    "load_model_quality_constraints",
    "load_statistics",
    "ndcg",
    "parse_duration",
    "pipelines_launcher",
    "psi",
    "read_labels",
    "read_window",
    "render_html",
    "run_checks",
    "run_files",
    "suggest_baseline",
    "suggest_constraints",
    "write_run_outputs",
]
