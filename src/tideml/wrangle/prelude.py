"""Helpers that the batch path's generated Polars code calls; also copied verbatim into exported scripts.

This module may import only the standard library and Polars: `tideml.wrangle.export` embeds its source
in standalone scripts, so that an exported script runs the very code `FittedFlow.transform` runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import polars as pl

__all__ = [
    "COERCERS",
    "DTYPES_POLARS",
    "FailHandler",
    "TypeMismatch",
    "check_rows",
    "compile_custom",
    "conform",
    "days_in_month",
    "parse_temporal",
    "run_custom",
]

DTYPES_POLARS: dict[str, Any] = {
    "int64": pl.Int64,
    "float64": pl.Float64,
    "string": pl.String,
    "bool": pl.Boolean,
    "date": pl.Date,
    "datetime": pl.Datetime("us"),
}


class FailHandler(Protocol):
    """What generated code calls when a row breaks a rule: record the error and raise."""

    def fail(self, where: str, column: str | None, message: str, fix: str | None) -> None: ...


def check_rows(
    bad: pl.Expr,
    shown: pl.Expr,
    rt: FailHandler,
    where: str,
    column: str | None,
    message: str,
    fix: str | None,
) -> pl.Expr:
    """A row filter that keeps every row, but fails the run if any row is `bad` (showing its `shown`).

    It is a filter, not a projection, so that the query optimiser can never prune the check away.
    """

    def check(batch: pl.Series) -> pl.Series:
        flags = batch.struct.field("bad")
        if flags.any():
            first = batch.struct.field("shown").filter(flags).head(1).to_list()[0]
            rt.fail(where, column, message.replace("{value}", repr(first)), fix)
        return pl.Series(batch.name, [True] * len(batch), dtype=pl.Boolean)

    return pl.struct(bad.fill_null(False).alias("bad"), shown.alias("shown")).map_batches(
        check, return_dtype=pl.Boolean, is_elementwise=True
    )


def conform(lf: pl.LazyFrame, source: str, schema: dict[str, str], rt: FailHandler) -> pl.LazyFrame:
    """The source's columns in the fitted order and types; a missing or mistyped column fails the run.

    Accepted widenings match the record path: any integer as int64, any integer or float as float64,
    categoricals as string, any naive datetime unit as microseconds, and all-null columns as anything.
    """
    have = lf.collect_schema()
    exprs = []
    for name, want in schema.items():
        if name not in have:
            rt.fail(f"source {source!r}", name, "unknown column: not in the input", "supply the column")
            continue
        got = have[name]
        ok = (
            got == pl.Null
            or (want == "int64" and got.is_integer())
            or (want == "float64" and (got.is_integer() or got.is_float()))
            or (want == "string" and isinstance(got, pl.String | pl.Categorical | pl.Enum))
            or (want == "bool" and got == pl.Boolean)
            or (want == "date" and got == pl.Date)
            or (want == "datetime" and isinstance(got, pl.Datetime) and got.time_zone is None)
        )
        if not ok:
            rt.fail(
                f"source {source!r}",
                name,
                f"wrong type: expected {want}, got {got}",
                f"supply {name} as {want} (cast it upstream)",
            )
        exprs.append(pl.col(name).cast(DTYPES_POLARS[want]))
    return lf.select(exprs)


def days_in_month(year: pl.Expr, month: pl.Expr) -> pl.Expr:
    """Days in the month of a proleptic Gregorian (year, month); month must already be in 1..12."""
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    return (
        pl.when(month == 2)
        .then(pl.when(leap).then(29).otherwise(28))
        .when(month.is_in([4, 6, 9, 11]))
        .then(30)
        .otherwise(31)
    )


def parse_temporal(text: pl.Expr, pattern: str, fields: list[str], dtype: str) -> pl.Expr:
    """Parse strings shaped exactly like `pattern` (a regex with one group per entry of `fields`).

    Fields are among Y, m, d, H, M, S. Impossible dates or times (month 13, 30 February, hour 24) and
    years outside 1..9999 give null, exactly as the record path's `datetime` constructor rejects them.
    """
    groups = text.str.extract_groups(pattern)
    parts = {
        key: groups.struct.field(str(i + 1)).cast(pl.Int64, strict=False) for i, key in enumerate(fields)
    }
    one = pl.lit(1, dtype=pl.Int64)
    zero = pl.lit(0, dtype=pl.Int64)
    year, month, day = parts.get("Y", one), parts.get("m", one), parts.get("d", one)
    hour, minute, second = parts.get("H", zero), parts.get("M", zero), parts.get("S", zero)
    month_ok = month.is_between(1, 12)
    valid = (
        text.str.contains("^(?:" + pattern + ")$")
        & year.is_between(1, 9999)
        & month_ok
        & day.is_between(1, days_in_month(year, pl.when(month_ok).then(month).otherwise(1)))
        & hour.is_between(0, 23)
        & minute.is_between(0, 59)
        & second.is_between(0, 59)
    )

    def safe(part: pl.Expr, default: int) -> pl.Expr:
        return pl.when(valid).then(part).otherwise(default)

    if dtype == "date":
        value = pl.date(safe(year, 2000), safe(month, 1), safe(day, 1))
    else:
        value = pl.datetime(
            safe(year, 2000),
            safe(month, 1),
            safe(day, 1),
            safe(hour, 0),
            safe(minute, 0),
            safe(second, 0),
            time_unit="us",
        )
    return pl.when(valid).then(value).otherwise(pl.lit(None, dtype=DTYPES_POLARS[dtype]))


class TypeMismatch(ValueError):
    """A value that does not fit its column's type (callers turn it into a clear error)."""


def _int64(value: object) -> object:
    if type(value) is int and -(2**63) <= value < 2**63:
        return value
    raise TypeMismatch


def _float64(value: object) -> object:
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise TypeMismatch


def _string(value: object) -> object:
    if type(value) is str:
        return value
    raise TypeMismatch


def _bool(value: object) -> object:
    if type(value) is bool:
        return value
    raise TypeMismatch


def _date(value: object) -> object:
    if type(value) is dt.date:
        return value
    if type(value) is str:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise TypeMismatch from None
    raise TypeMismatch


def _datetime(value: object) -> object:
    if type(value) is dt.datetime and value.tzinfo is None:
        return value
    if type(value) is dt.date:
        return dt.datetime(value.year, value.month, value.day)
    if type(value) is str:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise TypeMismatch from None
        if parsed.tzinfo is None:
            return parsed
    raise TypeMismatch


COERCERS: dict[str, Callable[[object], object]] = {
    "int64": _int64,
    "float64": _float64,
    "string": _string,
    "bool": _bool,
    "date": _date,
    "datetime": _datetime,
}
"""Per type, a function returning a non-null value in that type's Python form, or raising TypeMismatch.

Accepted: int64 from int (not bool); float64 from float or int; string from str; bool from bool; date from
date or ISO text; datetime from naive datetime, date or ISO text.
"""


def run_custom(
    fn: Callable[[dict[str, Any]], Any],
    row: Mapping[str, Any],
    schema: Mapping[str, str],
    rt: FailHandler,
    where: str,
) -> dict[str, Any]:
    """Call trusted custom code on one row; its result must hold exactly the declared columns and types."""
    try:
        result = fn(dict(row))
    except Exception as exc:
        rt.fail(where, None, f"the custom code raised {type(exc).__name__}: {exc}", "fix the code")
        raise
    if not isinstance(result, dict):
        rt.fail(where, None, f"the custom code returned {type(result).__name__}, not a dict", "return a dict")
        raise AssertionError
    out: dict[str, Any] = {}
    for name, dtype in schema.items():
        if name not in result:
            rt.fail(where, name, "the custom code's result lacks a declared column", "return every column")
        value = result[name]
        try:
            out[name] = None if value is None else COERCERS[dtype](value)
        except TypeMismatch:
            rt.fail(
                where,
                name,
                f"wrong type: the custom code returned {type(value).__name__} {value!r:.40} "
                f"for a {dtype} column",
                "return values of the declared type",
            )
    extra = sorted(set(result) - set(schema))
    if extra:
        rt.fail(where, extra[0], "the custom code returned an undeclared column", "declare it in 'columns'")
    return out


def compile_custom(code: str, function: str, where: str) -> Callable[[dict[str, Any]], Any]:
    """Execute a trusted custom step's source in a fresh namespace and return its function."""
    namespace: dict[str, Any] = {"__name__": "tideml_custom"}
    exec(compile(code, f"<flow {where}>", "exec"), namespace)
    fn = namespace.get(function)
    if not callable(fn):
        raise ValueError(f"the code does not define a function {function!r}")
    return fn  # type: ignore[no-any-return]
