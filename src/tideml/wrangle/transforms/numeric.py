"""Process numeric columns: scale (standard, min-max, robust, max-abs) and handle outliers.

Statistics ignore nulls and NaN and are fitted once. Both paths apply them with the same sequence of
float64 operations, so the results agree bit for bit. The standard deviation is the population one
(ddof 0, as scikit-learn's StandardScaler); a zero spread scales by 1.
"""

from __future__ import annotations

import math
from typing import Literal

import polars as pl
import pydantic

from tideml.wrangle.transforms.base import (
    ColumnList,
    Row,
    RowFn,
    RowOperator,
    Runtime,
    StepParams,
    StrictModel,
    col,
    py,
    register,
)
from tideml.wrangle.types import NUMERIC, Schema

__all__ = [
    "HandleOutliers",
    "HandleOutliersParams",
    "HandleOutliersState",
    "Scale",
    "ScaleParams",
    "ScaleState",
]


def _present(column: str, dtype: str) -> pl.Expr:
    c = pl.col(column)
    return c.filter(c.is_not_nan()) if dtype == "float64" else c.drop_nulls()


class ScaleParams(StepParams):
    """`{"op": "scale", "columns": ["age"], "method": "standard"}`: in place, as float64."""

    op: Literal["scale"] = "scale"
    columns: ColumnList
    method: Literal["standard", "minmax", "robust", "maxabs"]
    with_mean: bool = pydantic.Field(True, description="standard: subtract the mean.")
    with_std: bool = pydantic.Field(True, description="standard: divide by the standard deviation.")
    feature_range: tuple[float, float] = pydantic.Field((0.0, 1.0), description="minmax: output range.")
    quantile_range: tuple[float, float] = pydantic.Field((25.0, 75.0), description="robust: IQR bounds, %.")

    @pydantic.model_validator(mode="after")
    def _ranges(self) -> ScaleParams:
        lo, hi = self.feature_range
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError("feature_range must be two finite numbers, low < high")
        qlo, qhi = self.quantile_range
        if not 0.0 <= qlo < qhi <= 100.0:
            raise ValueError("quantile_range must satisfy 0 <= low < high <= 100")
        return self


class ColumnScale(StrictModel):
    """out = ((x - center) / scale) * span + low."""

    center: float
    scale: float
    span: float = 1.0
    low: float = 0.0


class ScaleState(StrictModel):
    """The fitted affine map of each column."""

    columns: dict[str, ColumnScale]


@register
class Scale(RowOperator[ScaleParams, ScaleState]):
    """Scale numeric columns in place; the output is float64."""

    op = "scale"
    params_model = ScaleParams
    state_model = ScaleState
    summary = "process numeric: scale (standard, min-max, robust, max-abs)"

    def check(self, schema: Schema) -> None:
        for column in self.params.columns:
            self.ctx.require(schema, column, NUMERIC)

    def fit_frame(self, lf: pl.LazyFrame, schema: Schema) -> ScaleState:
        p = self.params
        fitted: dict[str, ColumnScale] = {}
        for column in p.columns:
            x = _present(column, schema[column]).cast(pl.Float64)
            if p.method == "standard":
                stats = [x.mean(), x.std(ddof=0)]
            elif p.method == "minmax":
                stats = [x.min(), x.max()]
            elif p.method == "robust":
                q = p.quantile_range
                stats = [x.median(), x.quantile(q[1] / 100, "linear") - x.quantile(q[0] / 100, "linear")]
            else:
                stats = [x.abs().max(), x.abs().max()]
            a, b = lf.select(stats[0].alias("a"), stats[1].alias("b")).collect().row(0)
            if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
                raise self.ctx.error("no finite values to fit the scaler on", column)
            if p.method == "standard":
                center, scale = (a if p.with_mean else 0.0), (b if p.with_std else 1.0)
                fitted[column] = ColumnScale(center=center, scale=scale or 1.0)
            elif p.method == "minmax":
                lo, hi = p.feature_range
                fitted[column] = ColumnScale(center=a, scale=(b - a) or 1.0, span=hi - lo, low=lo)
            elif p.method == "robust":
                fitted[column] = ColumnScale(center=a, scale=b or 1.0)
            else:
                fitted[column] = ColumnScale(center=0.0, scale=a or 1.0)
        return ScaleState(columns=fitted)

    def frame_schema(self, schema: Schema, state: ScaleState) -> Schema:
        if set(state.columns) != set(self.params.columns):
            raise self.ctx.error("the fitted state does not match the step's columns", None, "refit the flow")
        return {k: ("float64" if k in state.columns else v) for k, v in schema.items()}

    def frame_source(self, schema: Schema, state: ScaleState) -> list[str]:
        exprs = []
        for column, s in state.columns.items():
            x = f"{col(column)}.cast(pl.Float64)"
            exprs.append(
                f"((({x} - {py(s.center)}) / {py(s.scale)}) * {py(s.span)} + {py(s.low)}).alias({column!r})"
            )
        return [f"lf = lf.with_columns({', '.join(exprs)})"]

    def row_function(self, schema: Schema, state: ScaleState) -> RowFn:
        plan = [(c, s.center, s.scale, s.span, s.low) for c, s in state.columns.items()]

        def scale(row: Row, rt: Runtime) -> Row:
            for column, center, spread, span, low in plan:
                value = row[column]
                if value is not None:
                    row[column] = ((float(value) - center) / spread) * span + low
            return row

        return scale


class HandleOutliersParams(StepParams):
    """`{"op": "handle_outliers", "columns": ["x"], "method": "iqr", "fix": "clip"}`."""

    op: Literal["handle_outliers"] = "handle_outliers"
    columns: ColumnList
    method: Literal["std", "iqr", "quantile", "thresholds"]
    k: float | None = pydantic.Field(
        None, gt=0, description="std: k standard deviations (3); iqr: k IQRs (1.5)."
    )
    lower_quantile: float = pydantic.Field(0.01, ge=0.0, le=1.0)
    upper_quantile: float = pydantic.Field(0.99, ge=0.0, le=1.0)
    lower: float | None = pydantic.Field(None, description="thresholds: values below are outliers.")
    upper: float | None = pydantic.Field(None, description="thresholds: values above are outliers.")
    fix: Literal["clip", "remove", "null"] = pydantic.Field(
        "clip", description="Clip to the bounds, remove the row, or set the value to null."
    )

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> HandleOutliersParams:
        if self.method == "thresholds":
            if self.lower is None and self.upper is None:
                raise ValueError("method 'thresholds' needs 'lower' and/or 'upper'")
            if self.lower is not None and self.upper is not None and self.lower > self.upper:
                raise ValueError("lower must not exceed upper")
        elif self.lower is not None or self.upper is not None:
            raise ValueError("'lower' / 'upper' are only for method 'thresholds'")
        if self.lower_quantile >= self.upper_quantile:
            raise ValueError("lower_quantile must be below upper_quantile")
        return self


class Bounds(StrictModel):
    """Values below `lower` or above `upper` are outliers (None: that side is open)."""

    lower: float | None
    upper: float | None


class HandleOutliersState(StrictModel):
    """The fitted bounds of each column."""

    columns: dict[str, Bounds]


@register
class HandleOutliers(RowOperator[HandleOutliersParams, HandleOutliersState]):
    """Clip, remove or null values outside fitted bounds; NaN and null are never outliers.

    An int64 column stays int64: clipping uses the bounds rounded inwards (ceil of the lower, floor of
    the upper), which changes nothing about which integers are outliers.
    """

    op = "handle_outliers"
    params_model = HandleOutliersParams
    state_model = HandleOutliersState
    summary = "handle outliers (standard deviation, IQR, quantile, thresholds; clip, remove, null)"

    def check(self, schema: Schema) -> None:
        for column in self.params.columns:
            self.ctx.require(schema, column, NUMERIC)

    def fit_frame(self, lf: pl.LazyFrame, schema: Schema) -> HandleOutliersState:
        p = self.params
        out: dict[str, Bounds] = {}
        for column in p.columns:
            if p.method == "thresholds":
                out[column] = Bounds(lower=p.lower, upper=p.upper)
                continue
            x = _present(column, schema[column]).cast(pl.Float64)
            if p.method == "std":
                k = p.k or 3.0
                stats = [x.mean() - k * x.std(ddof=0), x.mean() + k * x.std(ddof=0)]
            elif p.method == "iqr":
                k = p.k or 1.5
                q1, q3 = x.quantile(0.25, "linear"), x.quantile(0.75, "linear")
                stats = [q1 - k * (q3 - q1), q3 + k * (q3 - q1)]
            else:
                stats = [x.quantile(p.lower_quantile, "linear"), x.quantile(p.upper_quantile, "linear")]
            lo, hi = lf.select(stats[0].alias("lo"), stats[1].alias("hi")).collect().row(0)
            if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
                raise self.ctx.error("no finite values to fit the outlier bounds on", column)
            out[column] = Bounds(lower=lo, upper=hi)
        return HandleOutliersState(columns=out)

    def frame_schema(self, schema: Schema, state: HandleOutliersState) -> Schema:
        if set(state.columns) != set(self.params.columns):
            raise self.ctx.error("the fitted state does not match the step's columns", None, "refit the flow")
        return dict(schema)

    @staticmethod
    def _clip_values(dtype: str, b: Bounds) -> tuple[float | int | None, float | int | None]:
        if dtype == "int64":
            return (
                None if b.lower is None else math.ceil(b.lower),
                None if b.upper is None else math.floor(b.upper),
            )
        return b.lower, b.upper

    def frame_source(self, schema: Schema, state: HandleOutliersState) -> list[str]:
        tests: dict[str, tuple[str, str]] = {}
        for column, b in state.columns.items():
            x = f"{col(column)}.cast(pl.Float64)"
            low = "pl.lit(False)" if b.lower is None else f"({x} < {py(b.lower)})"
            # NaN sorts above every number in Polars; NaN is never an outlier here.
            high = "pl.lit(False)" if b.upper is None else f"({x}.is_not_nan() & ({x} > {py(b.upper)}))"
            tests[column] = (low, high)
        if self.params.fix == "remove":
            outlier = " | ".join(f"({lo} | {hi}).fill_null(False)" for lo, hi in tests.values())
            return [f"lf = lf.filter(~({outlier}))"]
        exprs = []
        for column, (low, high) in tests.items():
            if self.params.fix == "null":
                exprs.append(f"pl.when({low} | {high}).then(None).otherwise({col(column)}).alias({column!r})")
                continue
            lo, hi = self._clip_values(schema[column], state.columns[column])
            exprs.append(
                f"pl.when({low}).then({py(lo)}).when({high}).then({py(hi)}).otherwise({col(column)}).alias({column!r})"
            )
        return [f"lf = lf.with_columns({', '.join(exprs)})"]

    def row_function(self, schema: Schema, state: HandleOutliersState) -> RowFn:
        fix = self.params.fix
        plan = []
        for column, b in state.columns.items():
            clip_lo, clip_hi = self._clip_values(schema[column], b)
            lower = -math.inf if b.lower is None else b.lower
            upper = math.inf if b.upper is None else b.upper
            plan.append((column, lower, upper, clip_lo, clip_hi))

        def outliers(row: Row, rt: Runtime) -> Row | None:
            for column, lower, upper, clip_lo, clip_hi in plan:
                value = row[column]
                if value is None:
                    continue
                x = float(value)
                if x < lower:
                    if fix == "remove":
                        return None
                    row[column] = None if fix == "null" else clip_lo
                elif x > upper:
                    if fix == "remove":
                        return None
                    row[column] = None if fix == "null" else clip_hi
            return row

        return outliers
