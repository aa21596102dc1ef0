"""Event times: every accepted form (epoch seconds, ISO-8601 text, datetimes) to UTC microseconds and back.

Offline, event times are Parquet `timestamp[us, UTC]`; online and in API arguments they are plain
integers of microseconds since the epoch. Naive datetimes and ISO strings without an offset are UTC.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime

import polars as pl

from tideml.errors import ValidationError
from tideml.features.spec import FeatureType

__all__ = [
    "MonotonicClock",
    "format_iso",
    "instant_to_us",
    "series_to_event_us",
    "us_to_datetime",
    "us_to_declared_expr",
    "us_to_declared_value",
]

_ISO_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M%#z",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
)
_MIN_US = -(10**16)  # about 1653: far enough back, and keeps Redis' fixed-width keys positive
_MAX_US = 10**16 - 1  # about 2286


def series_to_event_us(series: pl.Series) -> pl.Series:
    """Microseconds since the epoch (Int64) for each value; null where a value cannot be read.

    Numbers (and numeric text) are epoch seconds; other strings are ISO-8601; datetimes and dates are
    taken as given (UTC if naive).
    """
    dtype = series.dtype
    if dtype.is_numeric():
        out = (series.cast(pl.Float64) * 1_000_000).round(0)
        out = pl.select(
            pl.when(out.is_finite() & out.is_between(_MIN_US, _MAX_US)).then(out).otherwise(None)
        ).to_series()
        return out.cast(pl.Int64).alias(series.name)
    if isinstance(dtype, pl.Datetime):
        s = series if dtype.time_zone else series.dt.replace_time_zone("UTC")
        return s.dt.convert_time_zone("UTC").dt.cast_time_unit("us").dt.epoch("us").alias(series.name)
    if dtype == pl.Date:
        return series.cast(pl.Datetime("us")).dt.epoch("us").alias(series.name)
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Categorical | pl.Enum):
        text = series.cast(pl.String).str.strip_chars()
        parsed = [
            text.str.to_datetime(fmt, strict=False, time_zone="UTC", time_unit="us") for fmt in _ISO_FORMATS
        ]
        iso = pl.select(pl.coalesce(parsed)).to_series().dt.epoch("us")
        numeric = series_to_event_us(text.cast(pl.Float64, strict=False))  # epoch seconds as text (CSV)
        return pl.select(pl.coalesce(numeric, iso)).to_series().alias(series.name)
    return pl.Series(series.name, [None] * len(series), dtype=pl.Int64)


def instant_to_us(value: object, *, obj: str, field: str) -> int:
    """One instant (datetime, date, epoch seconds, ISO-8601 text or 'now') as epoch microseconds."""
    if isinstance(value, str) and value.strip().lower() == "now":
        return time.time_ns() // 1000
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int((dt - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)
    if isinstance(value, date):
        return instant_to_us(datetime(value.year, value.month, value.day), obj=obj, field=field)
    if isinstance(value, bool):
        pass
    elif isinstance(value, int | float | str):
        got = series_to_event_us(pl.Series("t", [value]))[0]
        if got is not None:
            return int(got)
    raise ValidationError(
        f"{value!r} is not a point in time",
        obj=obj,
        field=field,
        fix="give epoch seconds, an ISO-8601 time such as 2024-01-31T12:00:00Z, a datetime, or 'now'",
    )


def us_to_datetime(us: int) -> datetime:
    """Epoch microseconds as an aware UTC datetime."""
    return datetime.fromtimestamp(us // 1_000_000, tz=UTC).replace(microsecond=us % 1_000_000)


def format_iso(us: int) -> str:
    """Epoch microseconds as ISO-8601 UTC text (`…Z`), with a fraction only when there is one."""
    dt = us_to_datetime(us)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def us_to_declared_value(us: int, declared: FeatureType) -> int | float | str:
    """The event time in the representation its feature type declares (for online records)."""
    if declared is FeatureType.INTEGRAL:
        return us // 1_000_000
    if declared is FeatureType.FRACTIONAL:
        return us / 1_000_000
    return format_iso(us)


def us_to_declared_expr(column: str, declared: FeatureType) -> pl.Expr:
    """Vectorised `us_to_declared_value` over an Int64 microseconds column."""
    col = pl.col(column)
    if declared is FeatureType.INTEGRAL:
        return col.floordiv(1_000_000).alias(column)
    if declared is FeatureType.FRACTIONAL:
        return (col.cast(pl.Float64) / 1_000_000).alias(column)
    ts = col.cast(pl.Datetime("us", "UTC"))
    whole = ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frac = ts.dt.strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
    return pl.when(col.mod(1_000_000) == 0).then(whole).otherwise(frac).alias(column)


class MonotonicClock:
    """Wall-clock microseconds that never repeat or go backwards within a process.

    `api_invocation_time` breaks ties between writes with equal event times, so two calls in the
    same microsecond must still be ordered.
    """

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self._last = max(time.time_ns() // 1000, self._last + 1)
            return self._last
