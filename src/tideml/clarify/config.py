"""Clarify's `analysis_config.json` as Pydantic models, plus tideml's few extensions.

Every documented Clarify field is accepted (unknown top-level fields are rejected, so typos surface);
fields tideml does not act on (endpoint sizing, S3 side inputs…) are accepted and reported as ignored.
Extensions: `label_type`, `facet[].type`, intersectional facets (`name_or_index` as a list),
`compat`, `bootstrap`, `flip_test` and `label_distribution`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from tideml.errors import NotFound, ValidationError

__all__ = [
    "AnalysisConfig",
    "BiasMethod",
    "BootstrapConfig",
    "FacetConfig",
    "FlipTestConfig",
    "MethodsConfig",
    "PredictorConfig",
    "ReportConfig",
    "ShapConfig",
    "load_config",
    "parse_config",
]

NameOrIndex = str | int
MethodList = Literal["all"] | list[str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class FacetConfig(_Strict):
    """One `facet` entry: a column (or a list of columns for an intersection) and *d*'s values/threshold."""

    name_or_index: NameOrIndex | list[NameOrIndex]
    value_or_threshold: list[Any] | float | int | str | None = None
    type: Literal["categorical", "continuous"] | None = None


class BiasMethod(_Strict):
    """`methods.pre_training_bias` / `methods.post_training_bias`."""

    methods: MethodList = "all"


class ShapConfig(_Strict):
    """`methods.shap`: Kernel SHAP options as Clarify names them."""

    baseline: list[list[Any]] | list[dict[str, Any]] | str | None = None
    num_clusters: Annotated[int, Field(ge=1, le=100)] | None = None
    num_samples: Annotated[int, Field(ge=1)] | None = None
    seed: int | None = None
    use_logit: bool = False
    save_local_shap_values: bool = True
    agg_method: Literal["mean_abs", "mean_sq", "median"] = "mean_abs"
    features_to_explain: list[NameOrIndex] | None = None
    text_config: dict[str, Any] | None = None
    image_config: dict[str, Any] | None = None
    method: Literal["kernel", "tree", "auto"] = "auto"
    max_rows: Annotated[int, Field(ge=1)] | None = None


class ReportConfig(_Loose):
    """`methods.report`: name and title of the HTML report."""

    name: str = "report"
    title: str = "Bias and explainability report"


class MethodsConfig(_Strict):
    """`methods`: which analyses to run."""

    pre_training_bias: BiasMethod | None = None
    post_training_bias: BiasMethod | None = None
    shap: ShapConfig | None = None
    pdp: dict[str, Any] | None = None
    report: ReportConfig | None = None


class PredictorConfig(_Loose):
    """`predictor`: where predictions come from (endpoint fields are accepted and ignored in-process)."""

    model_name: str | None = None
    endpoint_name: str | None = None
    endpoint_name_prefix: str | None = None
    instance_type: str | None = None
    initial_instance_count: int | None = None
    content_type: str | None = None
    accept_type: str | None = None
    content_template: str | None = None
    label: NameOrIndex | None = None
    probability: NameOrIndex | None = None
    label_headers: list[Any] | None = None
    target_model: str | None = None
    custom_attributes: str | None = None


class BootstrapConfig(_Strict):
    """tideml extension: bootstrap confidence intervals for every count-based metric."""

    n_boot: Annotated[int, Field(ge=0, le=100_000)] = 1000
    confidence: Annotated[float, Field(gt=0, lt=1)] = 0.95
    seed: int = 0


class FlipTestConfig(_Strict):
    """tideml extension: FT feature columns, standardisation, sample cap and seed."""

    features: list[str] | None = None
    standardize: bool = False
    max_rows: Annotated[int, Field(ge=10)] | None = 100_000
    seed: int = 0


class AnalysisConfig(_Strict):
    """Clarify's `analysis_config.json`."""

    version: str = "1.0"
    dataset_type: str | None = None
    dataset_uri: str | None = None
    headers: list[str] | None = None
    label: NameOrIndex | None = None
    label_values_or_threshold: list[Any] | float | int | str | None = None
    predicted_label: NameOrIndex | None = None
    features: str | None = None
    excluded_columns: list[NameOrIndex] = Field(default_factory=list)
    joinsource_name_or_index: NameOrIndex | None = None
    facet_dataset_uri: str | None = None
    facet_headers: list[str] | None = None
    predicted_label_dataset_uri: str | None = None
    predicted_label_headers: list[str] | None = None
    probability_threshold: Annotated[float, Field(ge=0, le=1)] | None = None
    facet: list[FacetConfig] = Field(default_factory=list)
    group_variable: NameOrIndex | None = None
    methods: MethodsConfig = Field(default_factory=MethodsConfig)
    predictor: PredictorConfig | None = None
    # tideml extensions
    label_type: Literal["categorical", "continuous"] | None = None
    label_distribution: Literal["binary", "full"] = "binary"
    compat: Literal["smclarify"] | None = None
    bootstrap: BootstrapConfig | None = None
    flip_test: FlipTestConfig | None = None

    def column(self, name_or_index: NameOrIndex, field: str, columns: list[str]) -> str:
        """Resolve a name or a 0-based index (into `headers`, else the data's columns)."""
        if isinstance(name_or_index, str):
            return name_or_index
        names = self.headers or columns
        if not 0 <= name_or_index < len(names):
            raise ValidationError(
                f"index {name_or_index} is outside the {len(names)} columns",
                obj="analysis_config",
                field=field,
                fix="use a column name, or a 0-based index into headers",
            )
        return names[name_or_index]


def _pydantic_error(exc: pydantic.ValidationError, source: str) -> ValidationError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        fix = f"remove {loc!r} or check its spelling against the Clarify analysis_config fields"
    elif kind == "missing":
        fix = f"add {loc!r}"
    else:
        fix = f"give {loc!r} a valid value ({err['msg']})"
    more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
    return ValidationError(f"{err['msg']}{more}", obj=source, field=loc, fix=fix)


def parse_config(data: dict[str, Any] | AnalysisConfig, *, source: str = "analysis_config") -> AnalysisConfig:
    """Validate a config mapping; pydantic errors become a ValidationError naming the field path."""
    if isinstance(data, AnalysisConfig):
        return data
    try:
        return AnalysisConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        raise _pydantic_error(exc, source) from None


def load_config(path: str | Path) -> AnalysisConfig:
    """Read and validate an `analysis_config.json` file."""
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no file at {p}", obj="analysis_config", fix="pass the path of analysis_config.json")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"not valid JSON: {exc}", obj=str(p), fix="fix the JSON syntax at the reported position"
        ) from None
    if not isinstance(data, dict):
        raise ValidationError("the top level must be an object", obj=str(p), fix="wrap the fields in {}")
    return parse_config(data, source=str(p))
