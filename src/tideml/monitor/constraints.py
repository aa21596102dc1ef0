"""`constraints.json`: what a window must satisfy, in Model Monitor's layout, suggested and hand-editable.

The managed layout, with tideml's additions marked (a file written by the managed service reads as is):

    {"version": 0.0,
     "features": [{"name", "inferred_type", "completeness",
                   "num_constraints": {"is_non_negative", "lower_bound"*, "upper_bound"*},
                   "string_constraints": {"domains": [...]},
                   "monitoringConfigOverrides": {...same keys as distribution_constraints...}}],
     "monitoring_config": {"evaluate_constraints", "emit_metrics", "datatype_check_threshold",
        "domain_content_threshold",
        "distribution_constraints": {"perform_comparison", "comparison_threshold", "comparison_method",
            "categorical_comparison_threshold", "categorical_drift_method",
            "significance_level"*, "small_sample_size"*, "multiple_testing"*}}}

(* = tideml extension). `comparison_method` accepts the managed `Simple` / `Robust` and tideml's `Auto`,
`KS`, `PSI`, `Wasserstein`, `JensenShannon`; `categorical_drift_method` the managed `LInfinity` /
`ChiSquared` and `Auto`, `PSI`, `JensenShannon`. `docs/monitor.md` explains each.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pydantic

from tideml.errors import ValidationError
from tideml.monitor._jsonfile import read_json, validate_json
from tideml.monitor.statistics import DISCRETE_MAX, NUMERIC_TYPES, DatasetStatistics, InferredType

__all__ = [
    "CategoricalMethod",
    "Constraints",
    "DistributionConstraints",
    "FeatureConstraint",
    "MonitoringConfig",
    "NumConstraints",
    "NumericMethod",
    "StringConstraints",
    "load_constraints",
    "suggest_constraints",
]

NumericMethod = Literal["Auto", "Simple", "Robust", "KS", "PSI", "Wasserstein", "JensenShannon"]
CategoricalMethod = Literal["Auto", "LInfinity", "ChiSquared", "PSI", "JensenShannon"]
Toggle = Literal["Enabled", "Disabled"]
_FIX = "correct the field (see docs/monitor.md), or regenerate the file with `tide monitor baseline`"


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", populate_by_name=True)


class NumConstraints(_Model):
    """Numeric constraints: the managed `is_non_negative`, and tideml's optional bounds."""

    is_non_negative: bool | None = None
    lower_bound: float | None = None
    upper_bound: float | None = None

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> NumConstraints:
        if (
            self.lower_bound is not None
            and self.upper_bound is not None
            and self.lower_bound > self.upper_bound
        ):
            raise ValueError("lower_bound is above upper_bound")
        return self


class StringConstraints(_Model):
    """The allowed values of a small-cardinality string feature."""

    domains: list[str] = pydantic.Field(default_factory=list)


class FeatureOverrides(_Model):
    """Per-feature drift settings (`monitoringConfigOverrides`); unset keys use the global config."""

    perform_comparison: Toggle | None = None
    comparison_threshold: float | None = pydantic.Field(None, ge=0)
    comparison_method: NumericMethod | None = None
    categorical_comparison_threshold: float | None = pydantic.Field(None, ge=0)
    categorical_drift_method: CategoricalMethod | None = None


class FeatureConstraint(_Model):
    """The constraints of one feature."""

    name: str = pydantic.Field(min_length=1)
    inferred_type: InferredType
    completeness: float | None = pydantic.Field(None, ge=0, le=1)
    num_constraints: NumConstraints | None = None
    string_constraints: StringConstraints | None = None
    monitoringConfigOverrides: FeatureOverrides = pydantic.Field(default_factory=FeatureOverrides)


class DistributionConstraints(_Model):
    """How drift is measured and when it is a violation."""

    perform_comparison: Toggle = "Enabled"
    comparison_threshold: float = pydantic.Field(0.1, ge=0)
    comparison_method: NumericMethod = "Auto"
    categorical_comparison_threshold: float = pydantic.Field(0.1, ge=0)
    categorical_drift_method: CategoricalMethod = "Auto"
    significance_level: float = pydantic.Field(0.01, gt=0, lt=1)
    small_sample_size: int = pydantic.Field(1000, ge=1)
    multiple_testing: Literal["bonferroni", "none"] = "bonferroni"


class MonitoringConfig(_Model):
    """`monitoring_config`: thresholds of the data-quality checks and the drift settings."""

    evaluate_constraints: Toggle = "Enabled"
    emit_metrics: Toggle = "Enabled"
    datatype_check_threshold: float = pydantic.Field(1.0, ge=0, le=1)
    domain_content_threshold: float = pydantic.Field(1.0, ge=0, le=1)
    distribution_constraints: DistributionConstraints = pydantic.Field(
        default_factory=DistributionConstraints
    )


class Constraints(_Model):
    """A whole `constraints.json`."""

    version: float = 0.0
    features: list[FeatureConstraint]
    monitoring_config: MonitoringConfig = pydantic.Field(default_factory=MonitoringConfig)

    @pydantic.model_validator(mode="after")
    def _unique(self) -> Constraints:
        seen: set[str] = set()
        for f in self.features:
            if f.name in seen:
                raise ValueError(f"feature {f.name!r} appears twice")
            seen.add(f.name)
        return self

    def feature(self, name: str) -> FeatureConstraint | None:
        """The constraint of one feature, or None."""
        for f in self.features:
            if f.name == name:
                return f
        return None

    @property
    def names(self) -> list[str]:
        """Feature names in file order."""
        return [f.name for f in self.features]

    def to_json(self) -> dict[str, Any]:
        """The document, without keys left unset (so a managed reader sees only what it knows)."""
        out: dict[str, Any] = self.model_dump(mode="json", exclude_none=True)
        return out

    @classmethod
    def from_json(
        cls, data: Any, *, path: Path | str = "constraints.json", text: str | None = None
    ) -> Constraints:
        """Validate a parsed document; the first problem names the file, line and field."""
        return validate_json(cls, data, path=path, text=text, what="constraints file", fix=_FIX)


def load_constraints(path: str | Path) -> Constraints:
    """Read and validate a `constraints.json` file."""
    p = Path(path)
    data, text = read_json(p, what="constraints file", fix="pass the constraints.json of a baseline")
    return Constraints.from_json(data, path=p, text=text)


def suggest_constraints(
    stats: DatasetStatistics,
    *,
    max_domain: int = DISCRETE_MAX * 2,
    completeness_slack: float = 0.05,
    range_margin: float = 0.25,
    exclude: Sequence[str] = (),
) -> Constraints:
    """Constraints a baseline satisfies: types, completeness, domains of small string features, ranges.

    Completeness below 1 gets `completeness_slack` of room so sampling noise is not a violation; numeric
    bounds are the baseline's min/max widened by `range_margin` of the range on each side, suggested only
    where the extreme value occurs at least twice (a hard limit such as an age cap, not a tail draw).
    """
    if not 0 <= completeness_slack < 1 or range_margin < 0:
        raise ValidationError(
            "completeness_slack must be in [0, 1) and range_margin >= 0",
            obj="suggest_constraints",
            fix="pass e.g. completeness_slack=0.05, range_margin=0.25",
        )
    features: list[FeatureConstraint] = []
    for name, f in stats.features.items():
        if name in exclude:
            continue
        c = f.completeness
        completeness = 1.0 if c >= 1.0 else max(0.0, round(c - completeness_slack, 4))
        entry: dict[str, Any] = {"name": name, "inferred_type": f.inferred_type, "completeness": completeness}
        if f.inferred_type in NUMERIC_TYPES and f.min is not None and f.max is not None:
            num: dict[str, Any] = {"is_non_negative": f.min >= 0}
            span = f.max - f.min
            margin = range_margin * span if span > 0 else range_margin * max(abs(f.max), 1.0)
            # Bounds only where the data shows a hard limit (the extreme value recurs); a heavy tail's
            # maximum is a single draw and a larger window would exceed it without any drift.
            freq = f.frequencies or {}
            if freq.get(f.min, 0) >= 2:
                num["lower_bound"] = _round(f.min - margin, down=True)
                if f.min >= 0 and num["lower_bound"] < 0:
                    num["lower_bound"] = 0.0
            if freq.get(f.max, 0) >= 2:
                num["upper_bound"] = _round(f.max + margin, down=False)
            entry["num_constraints"] = num
        elif f.inferred_type == "String" and f.distinct_count is not None and f.distinct_count <= max_domain:
            entry["string_constraints"] = {"domains": sorted(str(v) for v in (f.frequencies or {}))}
        features.append(FeatureConstraint.model_validate(entry))
    return Constraints(features=features)


def _round(x: float, *, down: bool) -> float:
    import math

    if x == 0 or not math.isfinite(x):
        return x
    scale = 10 ** (math.floor(math.log10(abs(x))) - 3)
    return float((math.floor if down else math.ceil)(x / scale) * scale)
