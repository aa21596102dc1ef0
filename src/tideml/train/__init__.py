"""Training, honest evaluation, tuning and bias mitigation for binary classification with XGBoost.

Three lines of Python train and evaluate a model with no workspace at all::

    from tideml.train import train
    result = train(frame, {"label": "fraud", "entity": "policy_id"})
    print(result.summary()["test"])

On a workspace, `TrainService(ws)` (wired as `ws.train`) stores models and reports as artifacts, tuning
studies in the metadata DB, and records every run in lineage.
"""

from tideml.train.data import ModelMatrix, build_matrix, frame_fingerprint
from tideml.train.evaluate import (
    ClassificationMetrics,
    Evaluation,
    ThresholdChoice,
    bootstrap_auc_interval,
    calibration_bins,
    choose_threshold,
    classification_metrics,
    evaluate,
    threshold_sweep,
    weighted_auc,
)
from tideml.train.mitigate import (
    METHODS,
    MitigationResult,
    MitigationRow,
    compare_mitigations,
    group_thresholds_on_validation,
    kamiran_calders_weights,
    predicted_positive_rate_gap,
    smote_facet,
)
from tideml.train.model import FeatureSpec, GroupThresholds, ModelSpec, TrainedModel
from tideml.train.report import evaluation_plots, render_html
from tideml.train.service import MitigationRun, StoredModel, TrainRun, TrainService, TuneRun
from tideml.train.spec import (
    ARTICLE_HYPERPARAMETERS,
    CostMatrix,
    CVSpec,
    Hyperparameters,
    SplitSpec,
    ThresholdSpec,
    TrainSpec,
    load_spec_file,
)
from tideml.train.split import Split, assert_disjoint_entities, entity_folds, entity_split
from tideml.train.trainer import CVResult, TrainResult, cross_validate, fit_booster, train
from tideml.train.tune import (
    DEFAULT_SEARCH_SPACE,
    CategoricalParam,
    FloatParam,
    IntParam,
    TrialRecord,
    TuneResult,
    TuneSpec,
    tune,
)

__all__ = [
    "ARTICLE_HYPERPARAMETERS",
    "DEFAULT_SEARCH_SPACE",
    "METHODS",
    "CVResult",
    "CVSpec",
    "CategoricalParam",
    "ClassificationMetrics",
    "CostMatrix",
    "Evaluation",
    "FeatureSpec",
    "FloatParam",
    "GroupThresholds",
    "Hyperparameters",
    "IntParam",
    "MitigationResult",
    "MitigationRow",
    "MitigationRun",
    "ModelMatrix",
    "ModelSpec",
    "Split",
    "SplitSpec",
    "StoredModel",
    "ThresholdChoice",
    "ThresholdSpec",
    "TrainResult",
    "TrainRun",
    "TrainService",
    "TrainSpec",
    "TrainedModel",
    "TrialRecord",
    "TuneResult",
    "TuneRun",
    "TuneSpec",
    "assert_disjoint_entities",
    "bootstrap_auc_interval",
    "build_matrix",
    "calibration_bins",
    "choose_threshold",
    "classification_metrics",
    "compare_mitigations",
    "cross_validate",
    "entity_folds",
    "entity_split",
    "evaluate",
    "evaluation_plots",
    "fit_booster",
    "frame_fingerprint",
    "group_thresholds_on_validation",
    "kamiran_calders_weights",
    "load_spec_file",
    "predicted_positive_rate_gap",
    "render_html",
    "smote_facet",
    "threshold_sweep",
    "train",
    "tune",
    "weighted_auc",
]
