"""Validated specifications of a training run: hyperparameters, split, threshold, cross-validation.

Every spec is a frozen pydantic model with `extra="forbid"`; build one with `TrainSpec.parse(data)` (or
`load_spec_file(path, TrainSpec)`) so that a bad value raises `tideml.errors.ValidationError` naming the
field path and the fix, never a raw pydantic error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tideml.errors import ValidationError

__all__ = [
    "ARTICLE_HYPERPARAMETERS",
    "CVSpec",
    "CostMatrix",
    "Hyperparameters",
    "SplitSpec",
    "ThresholdSpec",
    "TrainSpec",
    "load_spec_file",
    "parse_spec",
    "read_spec_mapping",
]

_FIXES: dict[str, str] = {
    "num_round": "pass a whole number of boosting rounds from 1 to 100000",
    "early_stopping_rounds": "pass a whole number of rounds >= 1, or null to train all num_round rounds",
    "max_depth": "pass a tree depth from 1 to 20",
    "eta": "pass a learning rate in (0, 1]",
    "subsample": "pass a row-sampling share in (0, 1]",
    "colsample_bytree": "pass a column-sampling share in (0, 1]",
    "scale_pos_weight": "pass a positive number, 'balanced' (negatives/positives of training) or null",
    "test_fraction": "pass a share in (0, 0.5]",
    "validation_fraction": "pass a share in (0, 0.5]",
    "folds": "pass a whole number of folds from 2 to 20",
    "strategy": "use one of max_f1, min_cost, fixed",
    "label": "name the 0/1 label column, e.g. 'fraud'",
    "entity": "name the entity column, e.g. 'policy_id'",
}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(cls, data: Any = None, **overrides: Any) -> Self:
        """Validate a mapping (or an instance) plus keyword overrides into this spec."""
        return parse_spec(cls, data, **overrides)


S = TypeVar("S", bound=BaseModel)


def _friendly(exc: pydantic.ValidationError, obj: str, model: type[BaseModel]) -> ValidationError:
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    path = ".".join(loc)
    # union members add their type name to the location ("scale_pos_weight.float"); name the field
    leaf = next((part for part in reversed(loc) if part in _FIXES), loc[-1] if loc else "")
    message = f"{first['msg']} (got {first.get('input')!r})"
    if first["type"] == "extra_forbidden":
        fix = f"remove it; allowed fields of {obj} are listed in docs/train.md"
        if len(first["loc"]) == 1:
            fix = "use only these fields: " + ", ".join(model.model_fields)
    else:
        fix = _FIXES.get(leaf, "see the field descriptions in docs/train.md")
    more = len(exc.errors()) - 1
    if more:
        message += f"; and {more} more problem(s)"
    return ValidationError(message, obj=obj, field=path or None, fix=fix)


def parse_spec(cls: type[S], data: Any = None, **overrides: Any) -> S:
    """Validate `data` (a mapping, an instance of `cls` or None) with `overrides` into `cls`."""
    if isinstance(data, cls):
        base: dict[str, Any] = data.model_dump()
    elif data is None:
        base = {}
    elif isinstance(data, dict):
        base = dict(data)
    else:
        raise ValidationError(
            f"expected a mapping, got {type(data).__name__}",
            obj=cls.__name__,
            fix=f"pass a dict or a {cls.__name__}",
        )
    base.update(overrides)
    try:
        return cls.model_validate(base)
    except pydantic.ValidationError as exc:
        raise _friendly(exc, cls.__name__, cls) from None


def read_spec_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping in a JSON or YAML file (an empty file is an empty mapping)."""
    file = Path(path)
    if not file.is_file():
        raise ValidationError("no such file", obj=str(file), fix="pass the path of a JSON or YAML spec file")
    text = file.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValidationError(
            f"cannot parse it: {exc}", obj=str(file), fix="fix the JSON/YAML syntax"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValidationError(
            f"expected a mapping at the top level, found {type(data).__name__}",
            obj=str(file),
            fix="write the spec as key: value pairs",
        )
    return data


def load_spec_file(path: str | Path, cls: type[S]) -> S:
    """Read a JSON or YAML file into `cls`, with errors naming the file and the field."""
    file = Path(path)
    data = read_spec_mapping(file)
    try:
        return parse_spec(cls, data)
    except ValidationError as exc:
        raise ValidationError(
            exc.message, obj=f"{file} ({cls.__name__})", field=exc.field, fix=exc.fix
        ) from None


class Hyperparameters(_Spec):
    """XGBoost hyperparameters (native names). Defaults suit a few-percent positive rate."""

    num_round: int = Field(500, ge=1, le=100_000, description="Maximum boosting rounds.")
    early_stopping_rounds: int | None = Field(
        50, ge=1, description="Stop when the validation metric has not improved for this many rounds."
    )
    eval_metric: Literal["logloss", "auc", "aucpr"] = Field(
        "logloss", description="Validation metric watched by early stopping."
    )
    max_depth: int = Field(3, ge=1, le=20)
    eta: float = Field(0.05, gt=0.0, le=1.0, description="Learning rate.")
    min_child_weight: float = Field(1.0, ge=0.0)
    subsample: float = Field(1.0, gt=0.0, le=1.0)
    colsample_bytree: float = Field(1.0, gt=0.0, le=1.0)
    gamma: float = Field(0.0, ge=0.0)
    reg_lambda: float = Field(1.0, ge=0.0)
    reg_alpha: float = Field(0.0, ge=0.0)
    max_delta_step: float = Field(0.0, ge=0.0)
    scale_pos_weight: float | Literal["balanced"] | None = Field(
        None, description="Weight of positive rows; 'balanced' = negatives/positives in the training split."
    )
    tree_method: Literal["hist", "approx", "exact"] = "hist"
    max_bin: int = Field(256, ge=2, le=65_536)
    grow_policy: Literal["depthwise", "lossguide"] = "depthwise"
    max_leaves: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _positive_weight(self) -> Self:
        w = self.scale_pos_weight
        if isinstance(w, float) and w <= 0:
            raise ValueError("scale_pos_weight must be positive")
        return self

    def xgb_params(self, *, seed: int, nthread: int, scale_pos_weight: float | None = None) -> dict[str, Any]:
        """The parameter dict for `xgboost.train` (objective, metric, seed and threads included)."""
        params: dict[str, Any] = {
            "objective": "binary:logistic",
            "eval_metric": self.eval_metric,
            "max_depth": self.max_depth,
            "eta": self.eta,
            "min_child_weight": self.min_child_weight,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "gamma": self.gamma,
            "lambda": self.reg_lambda,
            "alpha": self.reg_alpha,
            "max_delta_step": self.max_delta_step,
            "tree_method": self.tree_method,
            "max_bin": self.max_bin,
            "grow_policy": self.grow_policy,
            "max_leaves": self.max_leaves,
            "seed": seed,
            "nthread": nthread,
            "verbosity": 0,
        }
        if scale_pos_weight is not None:
            params["scale_pos_weight"] = scale_pos_weight
        return params


# The article's fixed training job: max_depth 3, eta 0.2, 100 rounds (its 5-fold xgb.cv used early
# stopping on the held-out folds; here the 100 rounds are kept without that leak).
ARTICLE_HYPERPARAMETERS = Hyperparameters(
    num_round=100, early_stopping_rounds=None, max_depth=3, eta=0.2, eval_metric="auc"
)


class SplitSpec(_Spec):
    """Entity-grouped, label-stratified train / validation / test split."""

    test_fraction: float = Field(0.2, gt=0.0, le=0.5, description="Share of entities held out for test.")
    validation_fraction: float = Field(
        0.2, gt=0.0, le=0.5, description="Share of entities used for early stopping and the threshold."
    )
    stratify: bool = Field(True, description="Keep the positive rate equal across the three splits.")

    @model_validator(mode="after")
    def _room_for_training(self) -> Self:
        if self.test_fraction + self.validation_fraction >= 0.9:
            raise ValueError("test_fraction + validation_fraction must leave at least 10% for training")
        return self


class CostMatrix(_Spec):
    """Cost of each decision outcome, in one currency; `false_negative` may come from a claim amount."""

    true_positive: float = Field(0.0, description="Cost of investigating a fraudulent claim.")
    false_positive: float = Field(1.0, description="Cost of investigating a legitimate claim.")
    false_negative: float = Field(
        10.0, description="Cost of paying a fraudulent claim (if no amount column)."
    )
    true_negative: float = Field(0.0, description="Cost of paying a legitimate claim (usually 0).")


class ThresholdSpec(_Spec):
    """How the decision threshold is chosen on the validation split."""

    strategy: Literal["max_f1", "min_cost", "fixed"] = "max_f1"
    value: float | None = Field(None, ge=0.0, le=1.0, description="The threshold when strategy is 'fixed'.")
    costs: CostMatrix = CostMatrix()
    amount_column: str | None = Field(
        None,
        description="Column whose value is the false-negative cost of each row (e.g. total_claim_amount).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.strategy == "fixed" and self.value is None:
            raise ValueError("strategy 'fixed' needs a value")
        if self.strategy != "fixed" and self.value is not None:
            raise ValueError("value is only used with strategy 'fixed'")
        return self


class CVSpec(_Spec):
    """Repeated, entity-grouped, stratified k-fold cross-validation (out-of-fold ROC-AUC)."""

    folds: int = Field(5, ge=2, le=20)
    repeats: int = Field(1, ge=1, le=100)
    scope: Literal["development", "all"] = Field(
        "development",
        description="'development' = train+validation rows (test untouched); 'all' = every row.",
    )


class TrainSpec(_Spec):
    """Everything that determines a trained model besides the data: columns, params, split, threshold."""

    label: str = Field("fraud", min_length=1)
    entity: str = Field("policy_id", min_length=1)
    features: tuple[str, ...] | None = Field(
        None,
        description="Feature columns in model order; default: every numeric column but label/entity/exclude.",
    )
    exclude: tuple[str, ...] = Field(("event_time",), description="Columns never used as features.")
    hyperparameters: Hyperparameters = Hyperparameters()
    split: SplitSpec = SplitSpec()
    threshold: ThresholdSpec = ThresholdSpec()
    cv: CVSpec | None = Field(None, description="Also report k-fold out-of-fold ROC-AUC.")
    seed: int = Field(0, ge=0, lt=2**31)
    bootstrap_resamples: int = Field(1000, ge=0, le=100_000, description="Resamples for the test AUC 95% CI.")
    calibration_bins: int = Field(10, ge=2, le=100)
    n_jobs: int = Field(
        0, ge=0, description="XGBoost threads; 0 = auto (1 below 20,000 training rows, else all cores)."
    )

    @model_validator(mode="after")
    def _columns(self) -> Self:
        if self.label == self.entity:
            raise ValueError("label and entity must be different columns")
        if self.features is not None:
            if len(set(self.features)) != len(self.features):
                raise ValueError("features lists a column twice")
            clash = {self.label, self.entity} & set(self.features)
            if clash:
                raise ValueError(f"features must not include the label or entity column ({sorted(clash)})")
            if not self.features:
                raise ValueError("features must name at least one column")
        return self
