"""The six column types a flow knows, their Polars and Python forms, and the coercion of input values.

A flow's frames are typed with exactly these names: `int64`, `float64`, `string`, `bool`, `date` and
`datetime` (microseconds, no time zone). Both execution paths agree on them: the batch path holds
`pl.Int64`… columns, the record path holds `int`, `float`, `str`, `bool`, `datetime.date` and
`datetime.datetime` values, and `None` is null on both.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args

import polars as pl

from tideml.errors import ValidationError
from tideml.wrangle.prelude import COERCERS, TypeMismatch

__all__ = [
    "DTYPES",
    "INT64_MAX",
    "INT64_MIN",
    "NUMERIC",
    "DType",
    "Schema",
    "TypeMismatch",
    "coerce_value",
    "dtype_of",
    "epoch_microseconds",
    "is_missing",
    "polars_dtype",
    "polars_schema",
    "python_type_name",
    "value_coercer",
    "wrap_int64",
]

DType = Literal["int64", "float64", "string", "bool", "date", "datetime"]
DTYPES: tuple[DType, ...] = get_args(DType)
NUMERIC: frozenset[str] = frozenset({"int64", "float64"})
Schema = dict[str, DType]
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_POLARS: dict[DType, pl.DataType] = {
    "int64": pl.Int64(),
    "float64": pl.Float64(),
    "string": pl.String(),
    "bool": pl.Boolean(),
    "date": pl.Date(),
    "datetime": pl.Datetime("us"),
}
_EPOCH = dt.datetime(1970, 1, 1)


def polars_dtype(dtype: DType) -> pl.DataType:
    """The Polars type of a flow type."""
    return _POLARS[dtype]


def polars_schema(schema: Mapping[str, DType]) -> dict[str, pl.DataType]:
    """A Polars schema (ordered) for a flow schema."""
    return {name: _POLARS[dtype] for name, dtype in schema.items()}


def dtype_of(dtype: pl.DataType) -> DType | None:
    """The flow type a Polars column is read as, or None when it has none (lists, structs, decimals…)."""
    if dtype.is_integer():
        return "int64"
    if dtype.is_float():
        return "float64"
    if isinstance(dtype, pl.String | pl.Categorical | pl.Enum):
        return "string"
    if isinstance(dtype, pl.Boolean):
        return "bool"
    if isinstance(dtype, pl.Date):
        return "date"
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
        return "datetime"
    return None


def python_type_name(value: object) -> str:
    """A short name of a value's type for error messages."""
    return "null" if value is None else type(value).__name__


def wrap_int64(value: int) -> int:
    """Wrap an integer into int64 two's complement, as Polars integer arithmetic does on overflow."""
    if INT64_MIN <= value <= INT64_MAX:
        return value
    return ((value - INT64_MIN) % 2**64) + INT64_MIN


def is_missing(value: object) -> bool:
    """Null, or a float NaN: what the missing-value and scaling operators treat as no value."""
    return value is None or (type(value) is float and math.isnan(value))


def value_coercer(dtype: DType) -> Callable[[object], object]:
    """A function returning a value in the Python form of `dtype` (None passes), or raising TypeMismatch.

    The rules are `tideml.wrangle.prelude.COERCERS`: int64 from int (not bool); float64 from float or int;
    string from str; bool from bool; date / datetime from their objects or ISO text.
    """
    inner = COERCERS[dtype]

    def coerce(value: object) -> object:
        return None if value is None else inner(value)

    return coerce


def coerce_value(value: object, dtype: DType, *, obj: str, field: str) -> Any:
    """`value` as the Python form of `dtype`, or a ValidationError naming `obj` and `field`."""
    try:
        return value_coercer(dtype)(value)
    except TypeMismatch:
        raise ValidationError(
            f"wrong type: expected {dtype}, got {python_type_name(value)} {value!r:.60}",
            obj=obj,
            field=field,
            fix=f"send a value of type {dtype} (or null)",
        ) from None


def epoch_microseconds(value: dt.datetime) -> int:
    """Microseconds since the Unix epoch of a naive datetime (read as UTC), exactly as Polars stores it."""
    return (value - _EPOCH) // dt.timedelta(microseconds=1)
