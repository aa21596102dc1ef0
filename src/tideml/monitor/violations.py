"""One violation of any monitor, written in the managed `constraint_violations.json` entry layout.

The managed service writes one file per monitor type, each entry with its own keys:

| monitor | keys |
|---|---|
| data quality | feature_name, constraint_check_type, description |
| model quality | metric_name, constraint_check_type (the comparison operator), description |
| bias drift | facet, facet_value, metric_name, constraint_check_type = bias_drift_check, description |
| attribution drift | label, metric_name, constraint_check_type = attribution check, description |

tideml writes all of them into one `{"violations": [...]}` file, each entry in its monitor's layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["CHECK_TYPES", "MonitorKind", "Violation", "violations_document"]

MonitorKind = Literal["data_quality", "model_quality", "bias", "attribution"]
CHECK_TYPES = (
    "data_type_check",
    "completeness_check",
    "baseline_drift_check",
    "missing_column_check",
    "extra_column_check",
    "categorical_values_check",
    "range_check",
    "bias_drift_check",
    "feature_attribution_drift_check",
)


@dataclass(frozen=True)
class Violation:
    """A failed constraint: what was checked, on which feature / metric / facet, and why."""

    constraint_check_type: str
    description: str
    monitor: MonitorKind = "data_quality"
    feature_name: str | None = None
    metric_name: str | None = None
    facet: str | None = None
    facet_value: str | None = None
    label: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The entry in its monitor's managed layout."""
        if self.monitor == "data_quality":
            return {
                "feature_name": self.feature_name,
                "constraint_check_type": self.constraint_check_type,
                "description": self.description,
            }
        if self.monitor == "model_quality":
            return {
                "metric_name": self.metric_name,
                "constraint_check_type": self.constraint_check_type,
                "description": self.description,
            }
        if self.monitor == "bias":
            return {
                "facet": self.facet,
                "facet_value": self.facet_value,
                "metric_name": self.metric_name,
                "constraint_check_type": self.constraint_check_type,
                "description": self.description,
            }
        return {
            "label": self.label,
            "metric_name": self.metric_name,
            "constraint_check_type": self.constraint_check_type,
            "description": self.description,
        }

    @property
    def subject(self) -> str:
        """The feature, metric or facet the violation is about (for tables and streak rules)."""
        if self.feature_name is not None:
            return self.feature_name
        if self.facet is not None:
            return f"{self.facet}={self.facet_value}:{self.metric_name}"
        return self.metric_name or self.label or ""


def violations_document(violations: list[Violation]) -> dict[str, Any]:
    """`{"violations": [...]}`, the content of `constraint_violations.json`."""
    return {"violations": [v.to_json() for v in violations]}
