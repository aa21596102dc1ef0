"""Bias metrics and explanations, Clarify-compatible: every pre- and post-training metric from count
tables, bootstrap intervals, intersectional facets, per-group performance, TreeSHAP and Kernel SHAP,
and Clarify's `analysis_config.json` / `analysis.json` formats."""

from tideml.clarify.analysis import (
    BiasResult,
    Facet,
    FacetResult,
    FlipTestOptions,
    MetricValue,
    StageResult,
    bias_report,
    suggest_group_variable,
)
from tideml.clarify.config import AnalysisConfig, load_config, parse_config
from tideml.clarify.explain import (
    Explanation,
    KernelShapExplainer,
    RecordExplanation,
    TreeShapExplainer,
    aggregate,
)
from tideml.clarify.job import AnalysisOutput, load_dataset, run_analysis
from tideml.clarify.model import Model, as_model, load_booster
from tideml.clarify.performance import PerformanceTable, metric_by_group
from tideml.clarify.report import render_html, write_outputs
from tideml.clarify.service import ClarifyRun, ClarifyService

__all__ = [
    "AnalysisConfig",
    "AnalysisOutput",
    "BiasResult",
    "ClarifyRun",
    "ClarifyService",
    "Explanation",
    "Facet",
    "FacetResult",
    "FlipTestOptions",
    "KernelShapExplainer",
    "MetricValue",
    "Model",
    "PerformanceTable",
    "RecordExplanation",
    "StageResult",
    "TreeShapExplainer",
    "aggregate",
    "as_model",
    "bias_report",
    "load_booster",
    "load_config",
    "load_dataset",
    "metric_by_group",
    "parse_config",
    "render_html",
    "run_analysis",
    "suggest_group_variable",
    "write_outputs",
]
