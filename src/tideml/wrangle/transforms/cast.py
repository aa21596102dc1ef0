"""Cast / parse as type: change column types with one conversion table shared by both paths.

Strings are parsed by rules written out here rather than left to a library's leniency: an integer is
`[+-]?[0-9]+` within int64; a float is a decimal or exponent literal, `inf`, `infinity` or `nan` (any
case, optional sign); a boolean is one of true/false/yes/no/1/0 (any case); a date or datetime is
parsed by a strftime-style format built from %Y %m %d %H %M %S and the separators ``-/:. T_,``.
A value that does not parse becomes null (`on_error: null`) or fails the run (`on_error: error`).
Floats are not cast to strings: their shortest text differs between libraries; round or cast to int64.
"""

from __future__ import annotations

import datetime as dt
import math
import re
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
    pdt,
    register,
)
from tideml.wrangle.types import INT64_MAX, INT64_MIN, DType, Schema

__all__ = [
    "BOOL_WORDS",
    "FLOAT_PATTERN",
    "INT_PATTERN",
    "Cast",
    "CastParams",
    "can_fail",
    "cast_function",
    "cast_source",
    "castable",
    "compile_format",
]

INT_PATTERN = r"[+-]?[0-9]+"
FLOAT_PATTERN = (
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])"
)
BOOL_WORDS: dict[str, bool] = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}
_INT_RE = re.compile(INT_PATTERN)
_FLOAT_RE = re.compile(FLOAT_PATTERN)
_DIRECTIVES = {"Y": "([0-9]{4})", "m": "([0-9]{2})", "d": "([0-9]{2})", "H": "([0-9]{2})", "M": "([0-9]{2})"}
_DIRECTIVES["S"] = "([0-9]{2})"
_LITERALS = frozenset("-/:. T_,")
DEFAULT_FORMATS = {"date": "%Y-%m-%d", "datetime": "%Y-%m-%d %H:%M:%S"}


def compile_format(fmt: str, dtype: str) -> tuple[str, list[str]]:
    """A strftime-style format as (regex, fields); raises ValueError naming what is not supported."""
    pattern, fields, i = "", [], 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%":
            if i + 1 >= len(fmt) or fmt[i + 1] not in _DIRECTIVES:
                raise ValueError(f"unsupported directive {fmt[i : i + 2]!r}; use %Y %m %d %H %M %S")
            key = fmt[i + 1]
            if key in fields:
                raise ValueError(f"directive %{key} appears twice")
            pattern += _DIRECTIVES[key]
            fields.append(key)
            i += 2
            continue
        if ch not in _LITERALS:
            raise ValueError(
                f"unsupported character {ch!r}; separators may be any of {''.join(sorted(_LITERALS))}"
            )
        pattern += "\\." if ch == "." else ch
        i += 1
    if not {"Y", "m", "d"} <= set(fields):
        raise ValueError("the format needs %Y, %m and %d")
    if dtype == "date" and set(fields) - {"Y", "m", "d"}:
        raise ValueError("a date format takes only %Y, %m and %d")
    return pattern, fields


def castable(src: DType, dst: DType) -> bool:
    """Whether the conversion table has an entry from `src` to `dst`."""
    if src == dst:
        return True
    table: dict[str, set[str]] = {
        "int64": {"float64", "string", "bool"},
        "float64": {"int64", "bool"},
        "bool": {"int64", "float64", "string"},
        "string": {"int64", "float64", "bool", "date", "datetime"},
        "date": {"datetime", "string"},
        "datetime": {"date", "string"},
    }
    return dst in table[src]


def can_fail(src: DType, dst: DType) -> bool:
    """Whether a non-null value can fail the conversion (parsing text, or a float out of int64 range)."""
    return (src == "string" and dst != "string") or (src == "float64" and dst == "int64")


def cast_source(expr: str, src: DType, dst: DType, fmt: str | None = None) -> str:
    """Polars source converting the column expression `expr` from `src` to `dst` (failures → null)."""
    if src == dst:
        return expr
    if src == "string" and dst == "int64":
        shape = "^(?:" + INT_PATTERN + ")$"
        return f"pl.when({expr}.str.contains({shape!r})).then({expr}.cast(pl.Int64, strict=False))"
    if src == "string" and dst == "float64":
        shape = "^(?:" + FLOAT_PATTERN + ")$"
        return f"pl.when({expr}.str.contains({shape!r})).then({expr}.cast(pl.Float64, strict=False))"
    if src == "string" and dst == "bool":
        return (
            f"{expr}.str.to_lowercase().replace_strict({BOOL_WORDS!r}, default=None, return_dtype=pl.Boolean)"
        )
    if src == "string":
        pattern, fields = compile_format(fmt or DEFAULT_FORMATS[dst], dst)
        return f"parse_temporal({expr}, {pattern!r}, {fields!r}, {dst!r})"
    if src == "float64" and dst == "int64":
        return f"{expr}.cast(pl.Int64, strict=False)"
    return f"{expr}.cast({pdt(dst)})"


def _identity(value: Any) -> Any:
    return value


def _parse_int(value: str) -> int | None:
    if _INT_RE.fullmatch(value):
        number = int(value)
        if INT64_MIN <= number <= INT64_MAX:
            return number
    return None


def _parse_float(value: str) -> float | None:
    return float(value) if _FLOAT_RE.fullmatch(value) else None


def _float_to_int(value: float) -> int | None:
    if math.isfinite(value) and -9223372036854775808.0 <= value < 9223372036854775808.0:
        return int(value)
    return None


def _temporal_parser(fmt: str, dtype: str) -> Callable[[str], Any]:
    pattern, fields = compile_format(fmt, dtype)
    regex = re.compile(pattern)

    def parse(value: str) -> Any:
        match = regex.fullmatch(value)
        if match is None:
            return None
        part = dict(zip(fields, (int(g) for g in match.groups()), strict=True))
        try:
            if dtype == "date":
                return dt.date(part["Y"], part["m"], part["d"])
            return dt.datetime(
                part["Y"], part["m"], part["d"], part.get("H", 0), part.get("M", 0), part.get("S", 0)
            )
        except ValueError:
            return None

    return parse


def _date_text(value: dt.date) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def _datetime_text(value: dt.datetime) -> str:
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    )


def cast_function(src: DType, dst: DType, fmt: str | None = None) -> Callable[[Any], Any]:
    """The record path's conversion of one non-null value from `src` to `dst` (failure → None)."""
    if src == dst:
        return _identity
    if src == "string":
        if dst == "int64":
            return _parse_int
        if dst == "float64":
            return _parse_float
        if dst == "bool":
            return lambda v: BOOL_WORDS.get(v.lower())
        if dst in ("date", "datetime"):
            return _temporal_parser(fmt or DEFAULT_FORMATS[dst], dst)
        return str
    table: dict[tuple[str, str], Callable[[Any], Any]] = {
        ("int64", "float64"): float,
        ("int64", "string"): str,
        ("int64", "bool"): bool,
        ("float64", "int64"): _float_to_int,
        ("float64", "bool"): bool,
        ("bool", "int64"): int,
        ("bool", "float64"): float,
        ("bool", "string"): lambda v: "true" if v else "false",
        ("date", "datetime"): lambda v: dt.datetime(v.year, v.month, v.day),
        ("date", "string"): _date_text,
        ("datetime", "date"): lambda v: v.date(),
        ("datetime", "string"): _datetime_text,
    }
    return table[(src, dst)]


class CastParams(StepParams):
    """`{"op": "cast", "columns": {"injury_claim": "float64"}, "on_error": "error"}`."""

    op: Literal["cast"] = "cast"
    columns: dict[str, DType] = pydantic.Field(min_length=1, description="Column → target type.")
    on_error: Literal["null", "error"] = pydantic.Field(
        "error", description="A value that cannot be converted: null it, or fail the run."
    )
    formats: dict[str, str] = pydantic.Field(
        default_factory=dict, description="Column → strftime-style format, for strings parsed as dates."
    )

    @pydantic.model_validator(mode="after")
    def _formats_are_supported(self) -> CastParams:
        for column, fmt in self.formats.items():
            target = self.columns.get(column)
            if target not in ("date", "datetime"):
                raise ValueError(f"formats[{column!r}] is given but the column is not cast to date/datetime")
            compile_format(fmt, target)
        return self


@register
class Cast(RowOperator[CastParams, NoState]):
    """Change column types in place, parsing strings where the target is not a string."""

    op = "cast"
    params_model = CastParams
    summary = "cast / parse as type"

    def check(self, schema: Schema) -> None:
        for column, target in self.params.columns.items():
            src = self.ctx.require(schema, column)
            if not castable(src, target):
                raise self.ctx.error(
                    f"wrong type: cannot cast {src} to {target}",
                    column,
                    "floats to strings: round and cast to int64 first; temporal from numbers: use a formula",
                )

    def frame_schema(self, schema: Schema, state: NoState) -> Schema:
        return {name: self.params.columns.get(name, dtype) for name, dtype in schema.items()}

    def _conversions(self, schema: Schema) -> list[tuple[str, DType, DType, str | None]]:
        return [
            (c, schema[c], t, self.params.formats.get(c))
            for c, t in self.params.columns.items()
            if schema[c] != t
        ]

    def frame_source(self, schema: Schema, state: NoState) -> list[str]:
        conversions = self._conversions(schema)
        if not conversions:
            return []
        lines = []
        if self.params.on_error == "error":
            for c, src, dst, fmt in conversions:
                if not can_fail(src, dst):
                    continue
                converted = cast_source(col(c), src, dst, fmt)
                lines.append(
                    f"lf = lf.filter(check_rows({col(c)}.is_not_null() & ({converted}).is_null(), "
                    f"{col(c)}, rt, "
                    f"{self.ctx.where!r}, {c!r}, {f'cannot cast {{value}} to {dst}'!r}, "
                    f"{'fix the value, or cast with on_error: null'!r}))"
                )
        exprs = ", ".join(f"({cast_source(col(c), s, d, f)}).alias({c!r})" for c, s, d, f in conversions)
        lines.append(f"lf = lf.with_columns({exprs})")
        return lines

    def row_function(self, schema: Schema, state: NoState) -> RowFn:
        conversions = [(c, cast_function(s, d, f), d) for c, s, d, f in self._conversions(schema)]
        strict = self.params.on_error == "error"
        where = self.ctx.where

        def cast_row(row: Row, rt: Runtime) -> Row:
            for column, convert, target in conversions:
                value = row[column]
                if value is not None:
                    converted = convert(value)
                    if converted is None and strict:
                        rt.fail(
                            where,
                            column,
                            f"cannot cast {value!r} to {target}",
                            "fix the value, or cast with on_error: null",
                        )
                    row[column] = converted
            return row

        return cast_row
