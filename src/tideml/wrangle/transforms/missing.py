"""Handle missing: fill with a constant, impute mean / median / mode, add an indicator, or drop rows.

Missing means null, and also NaN in a float64 column. Imputing an int64 column with its mean or median
turns it into float64 (the statistic is fractional); a constant must already have the column's type.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

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
    pdt,
    py,
    register,
)
from tideml.wrangle.transforms.encode import learn_categories
from tideml.wrangle.types import DType, Schema, TypeMismatch, is_missing, value_coercer

__all__ = ["HandleMissing", "HandleMissingParams", "HandleMissingState", "missing_source"]

JsonScalar = str | int | float | bool


def missing_source(column: str, dtype: str) -> str:
    """Polars source of the "is missing" test of a column."""
    c = col(column)
    return f"({c}.is_null() | {c}.is_nan())" if dtype == "float64" else f"{c}.is_null()"


def _to_json(value: Any) -> JsonScalar:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"no JSON form for {type(value).__name__}")


class HandleMissingParams(StepParams):
    """`{"op": "handle_missing", "columns": ["age"], "strategy": "median"}`."""

    op: Literal["handle_missing"] = "handle_missing"
    columns: ColumnList
    strategy: Literal["constant", "mean", "median", "mode", "indicator", "drop"]
    value: JsonScalar | None = pydantic.Field(None, description="constant: the fill value.")
    suffix: str = pydantic.Field("_missing", min_length=1, description="indicator: <column><suffix>.")

    @pydantic.model_validator(mode="after")
    def _value_with_constant(self) -> HandleMissingParams:
        if (self.strategy == "constant") != (self.value is not None):
            raise ValueError("'value' goes with strategy: constant, and only with it")
        return self


class HandleMissingState(StrictModel):
    """Fill value per column (dates as ISO text), for the filling strategies."""

    fills: dict[str, JsonScalar] = pydantic.Field(default_factory=dict)


@register
class HandleMissing(RowOperator[HandleMissingParams, HandleMissingState]):
    """Fill, flag or drop missing values."""

    op = "handle_missing"
    params_model = HandleMissingParams
    state_model = HandleMissingState
    summary = "handle missing (fill, impute mean/median/mode, indicator, drop rows)"

    def check(self, schema: Schema) -> None:
        strategy = self.params.strategy
        allowed = {"int64", "float64"} if strategy in ("mean", "median") else None
        for column in self.params.columns:
            dtype = self.ctx.require(schema, column, allowed)
            if strategy == "constant":
                self._fill_value(self.params.value, dtype, column)
            if strategy == "indicator":
                self.ctx.require_new(schema, column + self.params.suffix)

    def _fill_value(self, value: Any, dtype: DType, column: str) -> Any:
        try:
            if dtype in ("date", "datetime") and not isinstance(value, str):
                raise TypeMismatch
            return value_coercer(dtype)(value)
        except TypeMismatch:
            raise self.ctx.error(
                f"wrong type: the fill value {value!r} is not a {dtype}",
                column,
                "give a value of the column's type (dates as ISO text), or cast the column first",
            ) from None

    def _out_dtype(self, dtype: DType) -> DType:
        return "float64" if self.params.strategy in ("mean", "median") else dtype

    def fit_frame(self, lf: pl.LazyFrame, schema: Schema) -> HandleMissingState:
        p = self.params
        if p.strategy in ("indicator", "drop"):
            return HandleMissingState()
        if p.strategy == "constant":
            assert p.value is not None
            return HandleMissingState(fills=dict.fromkeys(p.columns, p.value))
        fills: dict[str, JsonScalar] = {}
        for column in p.columns:
            dtype = schema[column]
            present = lf.filter(~_missing_expr(column, dtype))
            value: Any
            if p.strategy == "mean":
                value = present.select(pl.col(column).mean()).collect().item()
            elif p.strategy == "median":
                value = present.select(pl.col(column).median()).collect().item()
            else:
                learned = learn_categories(present, column, "frequency")
                value = learned[0] if learned else None
            if value is None:
                raise self.ctx.error(f"no values to learn the {p.strategy} from", column)
            fills[column] = _to_json(float(value) if p.strategy in ("mean", "median") else value)
        return HandleMissingState(fills=fills)

    def frame_schema(self, schema: Schema, state: HandleMissingState) -> Schema:
        p = self.params
        if p.strategy in ("indicator", "drop"):
            out = dict(schema)
            if p.strategy == "indicator":
                out.update({c + p.suffix: "int64" for c in p.columns})
            return out
        for column in p.columns:
            if column not in state.fills:
                raise self.ctx.error("the fitted state has no fill value for the column", column, "refit")
        return {k: (self._out_dtype(v) if k in p.columns else v) for k, v in schema.items()}

    def frame_source(self, schema: Schema, state: HandleMissingState) -> list[str]:
        p = self.params
        if p.strategy == "drop":
            kept = " & ".join(f"~{missing_source(c, schema[c])}" for c in p.columns)
            return [f"lf = lf.filter({kept})"]
        if p.strategy == "indicator":
            flags = ", ".join(
                f"{missing_source(c, schema[c])}.cast(pl.Int64).alias({c + p.suffix!r})" for c in p.columns
            )
            return [f"lf = lf.with_columns({flags})"]
        exprs = []
        for column in p.columns:
            out = self._out_dtype(schema[column])
            fill = self._fill_value(state.fills[column], out, column)
            value = f"pl.lit({py(fill)}, dtype={pdt(out)})"
            current = col(column) if out == schema[column] else f"{col(column)}.cast({pdt(out)})"
            test = missing_source(column, schema[column])
            exprs.append(f"pl.when({test}).then({value}).otherwise({current}).alias({column!r})")
        return [f"lf = lf.with_columns({', '.join(exprs)})"]

    def row_function(self, schema: Schema, state: HandleMissingState) -> RowFn:
        p = self.params
        columns = list(p.columns)
        if p.strategy == "drop":

            def drop_missing(row: Row, rt: Runtime) -> Row | None:
                for column in columns:
                    if is_missing(row[column]):
                        return None
                return row

            return drop_missing
        if p.strategy == "indicator":
            pairs = [(c, c + p.suffix) for c in columns]

            def indicate(row: Row, rt: Runtime) -> Row:
                for column, flag in pairs:
                    row[flag] = 1 if is_missing(row[column]) else 0
                return row

            return indicate
        plan = []
        for column in columns:
            out = self._out_dtype(schema[column])
            plan.append((column, self._fill_value(state.fills[column], out, column), out != schema[column]))

        def fill(row: Row, rt: Runtime) -> Row:
            for column, value, to_float in plan:
                current = row[column]
                if is_missing(current):
                    row[column] = value
                elif to_float:
                    row[column] = float(current)
            return row

        return fill


def _missing_expr(column: str, dtype: str) -> pl.Expr:
    c = pl.col(column)
    return (c.is_null() | c.is_nan()) if dtype == "float64" else c.is_null()
