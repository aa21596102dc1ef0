"""Featurize date/time (ordinal or cyclic parts) and add an event-time column (Unix seconds, float64).

Cyclic encodings are sin/cos of `2π (v - first) / period`, computed as `sin(((v - first) * 2π) / period)`
on both paths so the float operations are the same.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any, Literal

import pydantic

from tideml.wrangle.transforms.base import (
    NoState,
    Row,
    RowFn,
    RowOperator,
    Runtime,
    StepParams,
    col,
    py,
    register,
)
from tideml.wrangle.types import Schema, epoch_microseconds

__all__ = [
    "DATETIME_FEATURES",
    "AddEventTime",
    "AddEventTimeParams",
    "FeaturizeDatetime",
    "FeaturizeDatetimeParams",
]

Feature = Literal[
    "year", "quarter", "month", "week", "day", "day_of_year", "weekday", "hour", "minute", "second"
]
DATETIME_FEATURES: tuple[str, ...] = Feature.__args__  # type: ignore[attr-defined]
_TIME_FEATURES = frozenset({"hour", "minute", "second"})
# feature -> (first value, period) for the cyclic encoding; the year has no cycle and stays ordinal.
_CYCLES: dict[str, tuple[int, int]] = {
    "quarter": (1, 4),
    "month": (1, 12),
    "week": (1, 53),
    "day": (1, 31),
    "day_of_year": (1, 366),
    "weekday": (1, 7),
    "hour": (0, 24),
    "minute": (0, 60),
    "second": (0, 60),
}
_POLARS_PART = {
    "year": "year()",
    "quarter": "quarter()",
    "month": "month()",
    "week": "week()",
    "day": "day()",
    "day_of_year": "ordinal_day()",
    "weekday": "weekday()",
    "hour": "hour()",
    "minute": "minute()",
    "second": "second()",
}
_PYTHON_PART: dict[str, Callable[[Any], int]] = {
    "year": lambda d: d.year,
    "quarter": lambda d: (d.month - 1) // 3 + 1,
    "month": lambda d: d.month,
    "week": lambda d: d.isocalendar()[1],
    "day": lambda d: d.day,
    "day_of_year": lambda d: d.timetuple().tm_yday,
    "weekday": lambda d: d.isoweekday(),
    "hour": lambda d: d.hour,
    "minute": lambda d: d.minute,
    "second": lambda d: d.second,
}
TWO_PI = 2.0 * math.pi
_DEFAULT_FEATURES: tuple[Feature, ...] = ("year", "month", "day", "weekday")


class FeaturizeDatetimeParams(StepParams):
    """`{"op": "featurize_datetime", "column": "incident_at", "features": ["month", "hour"]}`."""

    op: Literal["featurize_datetime"] = "featurize_datetime"
    column: str
    features: list[Feature] = pydantic.Field(default_factory=lambda: list(_DEFAULT_FEATURES), min_length=1)
    encoding: Literal["ordinal", "cyclic"] = pydantic.Field(
        "ordinal", description="ordinal: int64 parts; cyclic: float64 sin/cos pairs (the year stays ordinal)."
    )
    keep_original: bool = True
    separator: str = "_"

    @pydantic.field_validator("features")
    @classmethod
    def _distinct(cls, features: list[str]) -> list[str]:
        if len(set(features)) != len(features):
            raise ValueError("a feature is listed twice")
        return features


@register
class FeaturizeDatetime(RowOperator[FeaturizeDatetimeParams, NoState]):
    """Date or datetime parts as new columns appended at the end."""

    op = "featurize_datetime"
    params_model = FeaturizeDatetimeParams
    summary = "featurize date/time (ordinal or cyclic)"

    def _outputs(self) -> list[tuple[str, str, str]]:
        """(feature, output column, kind) with kind in ordinal / sin / cos."""
        p = self.params
        out: list[tuple[str, str, str]] = []
        for feature in p.features:
            base = f"{p.column}{p.separator}{feature}"
            if p.encoding == "cyclic" and feature in _CYCLES:
                out += [
                    (feature, f"{base}{p.separator}sin", "sin"),
                    (feature, f"{base}{p.separator}cos", "cos"),
                ]
            else:
                out.append((feature, base, "ordinal"))
        return out

    def check(self, schema: Schema) -> None:
        dtype = self.ctx.require(schema, self.params.column, {"date", "datetime"})
        if dtype == "date" and _TIME_FEATURES & set(self.params.features):
            raise self.ctx.error(
                "a date column has no hour, minute or second", self.params.column, "cast it to datetime first"
            )
        out = dict(schema)
        if not self.params.keep_original:
            del out[self.params.column]
        for _, name, _ in self._outputs():
            self.ctx.require_new(out, name)
            out[name] = "int64"

    def frame_schema(self, schema: Schema, state: NoState) -> Schema:
        out = dict(schema)
        if not self.params.keep_original:
            del out[self.params.column]
        for _, name, kind in self._outputs():
            out[name] = "int64" if kind == "ordinal" else "float64"
        return out

    def frame_source(self, schema: Schema, state: NoState) -> list[str]:
        c = col(self.params.column)
        exprs = []
        for feature, name, kind in self._outputs():
            part = f"{c}.dt.{_POLARS_PART[feature]}.cast(pl.Int64)"
            if kind == "ordinal":
                exprs.append(f"{part}.alias({name!r})")
            else:
                first, period = _CYCLES[feature]
                angle = f"((({part} - {first}).cast(pl.Float64) * {py(TWO_PI)}) / {py(float(period))})"
                exprs.append(f"{angle}.{kind}().alias({name!r})")
        lines = [f"lf = lf.with_columns({', '.join(exprs)})"]
        if not self.params.keep_original:
            lines.append(f"lf = lf.drop({self.params.column!r})")
        return lines

    def row_function(self, schema: Schema, state: NoState) -> RowFn:
        column, keep = self.params.column, self.params.keep_original
        plan: list[tuple[str, Callable[[Any], Any]]] = []
        for feature, name, kind in self._outputs():
            part = _PYTHON_PART[feature]
            if kind == "ordinal":
                plan.append((name, part))
                continue
            first, period = _CYCLES[feature]
            trig = math.sin if kind == "sin" else math.cos
            plan.append((name, _cyclic(part, trig, first, float(period))))

        def featurize(row: Row, rt: Runtime) -> Row:
            value = row[column] if keep else row.pop(column)
            for name, fn in plan:
                row[name] = None if value is None else fn(value)
            return row

        return featurize


def _cyclic(
    part: Callable[[Any], int], trig: Callable[[float], float], first: int, period: float
) -> Callable[[Any], float]:
    def encode(value: Any) -> float:
        return trig((float(part(value) - first) * TWO_PI) / period)

    return encode


class AddEventTimeParams(StepParams):
    """`{"op": "add_event_time", "column": "event_time", "source": "run_time"}`."""

    op: Literal["add_event_time"] = "add_event_time"
    column: str = pydantic.Field("event_time", min_length=1, description="The output column.")
    source: Literal["run_time", "column"] = pydantic.Field(
        "run_time", description="The run's time (processing time), or a column of the data."
    )
    from_column: str | None = pydantic.Field(
        None, description="source column: a datetime, date, or numeric Unix-seconds column."
    )

    @pydantic.model_validator(mode="after")
    def _from_column_with_column_source(self) -> AddEventTimeParams:
        if (self.source == "column") != (self.from_column is not None):
            raise ValueError("'from_column' goes with source: column, and only with it")
        return self


@register
class AddEventTime(RowOperator[AddEventTimeParams, NoState]):
    """Add (or replace) a float64 Unix-seconds event-time column.

    With `source: run_time` the value is the run's time: the `run_time` a caller passes to `transform`
    or `transform_record`, else the clock when the run started. It is processing time, not the time of
    the business event; use `source: column` when the data carries one.
    """

    op = "add_event_time"
    params_model = AddEventTimeParams
    summary = "add event time (from a column or the run's time)"

    def check(self, schema: Schema) -> None:
        p = self.params
        if p.from_column is not None:
            self.ctx.require(schema, p.from_column, {"datetime", "date", "int64", "float64"})
        if p.column in schema and p.column != p.from_column:
            self.ctx.require_new(schema, p.column)

    def frame_schema(self, schema: Schema, state: NoState) -> Schema:
        out = dict(schema)
        out[self.params.column] = "float64"
        return out

    def frame_source(self, schema: Schema, state: NoState) -> list[str]:
        p = self.params
        if p.from_column is None:
            value = "pl.lit(rt.run_time, dtype=pl.Float64)"
        else:
            c = col(p.from_column)
            dtype = schema[p.from_column]
            if dtype in ("datetime", "date"):
                micros = c if dtype == "datetime" else f"{c}.cast(pl.Datetime('us'))"
                value = f"({micros}.dt.epoch('us').cast(pl.Float64) / 1000000.0)"
            else:
                value = f"{c}.cast(pl.Float64)"
        return [f"lf = lf.with_columns({value}.alias({p.column!r}))"]

    def row_function(self, schema: Schema, state: NoState) -> RowFn:
        p = self.params
        out = p.column
        if p.from_column is None:

            def run_time(row: Row, rt: Runtime) -> Row:
                row[out] = rt.run_time
                return row

            return run_time
        source, dtype = p.from_column, schema[p.from_column]
        convert: Callable[[Any], float]
        if dtype == "datetime":
            convert = _datetime_seconds
        elif dtype == "date":
            convert = _date_seconds
        else:
            convert = float

        def from_column(row: Row, rt: Runtime) -> Row:
            value = row[source]
            row[out] = None if value is None else convert(value)
            return row

        return from_column


def _datetime_seconds(value: dt.datetime) -> float:
    return epoch_microseconds(value) / 1000000.0


def _date_seconds(value: dt.date) -> float:
    return epoch_microseconds(dt.datetime(value.year, value.month, value.day)) / 1000000.0
