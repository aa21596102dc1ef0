"""Per-feature statistics of a frame, in Model Monitor's `statistics.json` layout.

`compute_statistics` profiles every column in one pass of Polars expressions (sorted numeric columns and
value counts, computed in parallel) and NumPy on the sorted arrays: completeness, mean/sum/std/min/max, ten
equal-width buckets and a KLL-style quantile sketch for numbers, frequencies for strings. Numeric columns
with few distinct values also keep their exact frequencies (the tideml extension `distribution.categorical`
under `numerical_statistics`), so drift on them is measured per value.

The same function profiles the baseline (types inferred) and a monitoring window (types taken from the
baseline, counting values that do not match them), so the checks compare two `DatasetStatistics` and never
need the baseline's raw rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl
import pydantic

from tideml.errors import ValidationError
from tideml.monitor._jsonfile import read_json, validate_json
from tideml.monitor.sketch import DEFAULT_K, QuantileSketch

__all__ = [
    "DISCRETE_MAX",
    "MAX_CATEGORIES",
    "NUMERIC_TYPES",
    "Bucket",
    "DatasetStatistics",
    "FeatureStatistics",
    "InferredType",
    "compute_statistics",
    "infer_type",
    "load_statistics",
]

InferredType = Literal["Integral", "Fractional", "String", "Unknown"]
NUMERIC_TYPES: tuple[str, ...] = ("Integral", "Fractional")
DISCRETE_MAX = 20
MAX_CATEGORIES = 1000
N_BUCKETS = 10
FloatArray = npt.NDArray[np.float64]
_FIX = "regenerate it with `tide monitor baseline`, or correct the field by hand"


@dataclass(frozen=True)
class Bucket:
    """One equal-width histogram bucket of a numeric feature."""

    lower_bound: float
    upper_bound: float
    count: int


@dataclass
class FeatureStatistics:
    """Statistics of one column. Numeric fields are None for String features and vice versa."""

    name: str
    inferred_type: InferredType
    num_present: int
    num_missing: int
    mean: float | None = None
    sum: float | None = None
    std_dev: float | None = None
    min: float | None = None
    max: float | None = None
    buckets: list[Bucket] = field(default_factory=list)
    sketch: QuantileSketch | None = None
    frequencies: dict[Any, int] | None = None
    distinct_count: int | None = None
    num_type_mismatch: int = 0

    @property
    def is_numeric(self) -> bool:
        """Integral or Fractional."""
        return self.inferred_type in NUMERIC_TYPES

    @property
    def is_discrete(self) -> bool:
        """Numeric with at most `DISCRETE_MAX` distinct values, or a String: compared value by value."""
        if self.inferred_type == "String":
            return True
        return self.is_numeric and self.frequencies is not None and len(self.frequencies) <= DISCRETE_MAX

    @property
    def completeness(self) -> float:
        """Share of rows with a value (1.0 for an empty dataset)."""
        total = self.num_present + self.num_missing
        return self.num_present / total if total else 1.0

    @property
    def other_count(self) -> int:
        """Present values not covered by `frequencies` (the tail beyond `MAX_CATEGORIES`)."""
        if self.frequencies is None:
            return 0
        return max(self.num_present - self.num_type_mismatch - sum(self.frequencies.values()), 0)

    # -- managed layout --------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """One entry of `statistics.json`'s `features`."""
        common = {"num_present": self.num_present, "num_missing": self.num_missing}
        if self.inferred_type == "String":
            buckets = [{"value": str(v), "count": int(c)} for v, c in (self.frequencies or {}).items()]
            return {
                "name": self.name,
                "inferred_type": "String",
                "string_statistics": {
                    "common": common,
                    "distinct_count": int(self.distinct_count or 0),
                    "distribution": {"categorical": {"buckets": buckets}},
                },
            }
        if not self.is_numeric:
            return {"name": self.name, "inferred_type": self.inferred_type}
        stats: dict[str, Any] = {"common": common}
        if self.num_present - self.num_type_mismatch > 0 and self.mean is not None:
            stats |= {
                "mean": self.mean,
                "sum": self.sum,
                "std_dev": self.std_dev,
                "min": self.min,
                "max": self.max,
            }
            distribution: dict[str, Any] = {
                "kll": {
                    "buckets": [
                        {"lower_bound": b.lower_bound, "upper_bound": b.upper_bound, "count": b.count}
                        for b in self.buckets
                    ],
                    "sketch": self.sketch.to_json() if self.sketch is not None else {"data": []},
                }
            }
            if self.distinct_count is not None:
                stats["distinct_count"] = self.distinct_count
            if self.frequencies is not None and len(self.frequencies) <= DISCRETE_MAX:
                distribution["categorical"] = {
                    "buckets": [{"value": _num(v), "count": int(c)} for v, c in self.frequencies.items()]
                }
            stats["distribution"] = distribution
        return {"name": self.name, "inferred_type": self.inferred_type, "numerical_statistics": stats}


@dataclass
class DatasetStatistics:
    """`statistics.json`: the item count and one `FeatureStatistics` per column, in column order."""

    item_count: int
    features: dict[str, FeatureStatistics]

    def to_json(self) -> dict[str, Any]:
        """The managed layout (`version`, `dataset.item_count`, `features`)."""
        return {
            "version": 0.0,
            "dataset": {"item_count": self.item_count},
            "features": [f.to_json() for f in self.features.values()],
        }

    @classmethod
    def from_json(
        cls, data: Any, *, path: Path | str = "statistics.json", text: str | None = None
    ) -> DatasetStatistics:
        """Validate and read a `statistics.json` document (errors name the file, line and field)."""
        doc = validate_json(_StatisticsDoc, data, path=path, text=text, what="statistics file", fix=_FIX)
        features: dict[str, FeatureStatistics] = {}
        for i, f in enumerate(doc.features):
            if f.name in features:
                raise ValidationError(
                    f"feature {f.name!r} appears twice", obj=str(path), field=f"features[{i}].name", fix=_FIX
                )
            features[f.name] = f.to_statistics(str(path), i)
        return cls(item_count=doc.dataset.item_count, features=features)


def _num(v: Any) -> int | float:
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


# -- validation models of the file ---------------------------------------------------------------------
class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")  # "provision for custom stats"


class _Common(_Strict):
    num_present: int = pydantic.Field(ge=0)
    num_missing: int = pydantic.Field(ge=0)


class _KllBucket(_Strict):
    lower_bound: float
    upper_bound: float
    count: float = pydantic.Field(ge=0)


class _Sketch(_Strict):
    parameters: dict[str, float] = pydantic.Field(default_factory=dict)
    data: list[list[float]] = pydantic.Field(default_factory=list)


class _Kll(_Strict):
    buckets: list[_KllBucket] = pydantic.Field(default_factory=list)
    sketch: _Sketch = pydantic.Field(default_factory=_Sketch)


class _CatBucket(_Strict):
    value: str | float
    count: int = pydantic.Field(ge=0)


class _Categorical(_Strict):
    buckets: list[_CatBucket] = pydantic.Field(default_factory=list)


class _NumDistribution(_Strict):
    kll: _Kll | None = None
    categorical: _Categorical | None = None


class _NumStats(_Strict):
    common: _Common
    mean: float | None = None
    sum: float | None = None
    std_dev: float | None = pydantic.Field(None, ge=0)
    min: float | None = None
    max: float | None = None
    distinct_count: int | None = pydantic.Field(None, ge=0)
    distribution: _NumDistribution | None = None


class _StrDistribution(_Strict):
    categorical: _Categorical | None = None


class _StrStats(_Strict):
    common: _Common
    distinct_count: int | None = pydantic.Field(None, ge=0)
    distribution: _StrDistribution | None = None


class _Feature(_Strict):
    name: str = pydantic.Field(min_length=1)
    inferred_type: InferredType
    numerical_statistics: _NumStats | None = None
    string_statistics: _StrStats | None = None

    def to_statistics(self, path: str, index: int) -> FeatureStatistics:
        where = f"features[{index}]"
        if self.inferred_type in NUMERIC_TYPES:
            ns = self.numerical_statistics
            if ns is None:
                raise ValidationError(
                    f"a {self.inferred_type} feature needs numerical_statistics",
                    obj=path,
                    field=f"{where}.numerical_statistics",
                    fix=_FIX,
                )
            kll = ns.distribution.kll if ns.distribution else None
            cat = ns.distribution.categorical if ns.distribution else None
            sketch = None
            if kll is not None and kll.sketch.data:
                sketch = QuantileSketch.from_json(kll.sketch.model_dump(), count=ns.common.num_present)
            freq = None
            if cat is not None:
                freq = {float(b.value): b.count for b in cat.buckets}
            return FeatureStatistics(
                name=self.name,
                inferred_type=self.inferred_type,
                num_present=ns.common.num_present,
                num_missing=ns.common.num_missing,
                mean=ns.mean,
                sum=ns.sum,
                std_dev=ns.std_dev,
                min=ns.min,
                max=ns.max,
                buckets=[
                    Bucket(b.lower_bound, b.upper_bound, int(b.count)) for b in (kll.buckets if kll else [])
                ],
                sketch=sketch,
                frequencies=freq,
                distinct_count=ns.distinct_count,
            )
        if self.inferred_type == "String":
            ss = self.string_statistics
            if ss is None:
                raise ValidationError(
                    "a String feature needs string_statistics",
                    obj=path,
                    field=f"{where}.string_statistics",
                    fix=_FIX,
                )
            cat = ss.distribution.categorical if ss.distribution else None
            freq_s = {str(b.value): b.count for b in cat.buckets} if cat is not None else {}
            return FeatureStatistics(
                name=self.name,
                inferred_type="String",
                num_present=ss.common.num_present,
                num_missing=ss.common.num_missing,
                frequencies=freq_s,
                distinct_count=ss.distinct_count if ss.distinct_count is not None else len(freq_s),
            )
        common = self.numerical_statistics or self.string_statistics
        present = common.common.num_present if common else 0
        missing = common.common.num_missing if common else 0
        return FeatureStatistics(self.name, "Unknown", present, missing)


class _Dataset(_Strict):
    item_count: int = pydantic.Field(ge=0)


class _StatisticsDoc(_Strict):
    version: float = 0.0
    dataset: _Dataset
    features: list[_Feature]


def load_statistics(path: str | Path) -> DatasetStatistics:
    """Read and validate a `statistics.json` file."""
    p = Path(path)
    data, text = read_json(
        p, what="statistics file", fix="pass the statistics.json that `tide monitor baseline` wrote"
    )
    return DatasetStatistics.from_json(data, path=p, text=text)


# -- computing -----------------------------------------------------------------------------------------
def infer_type(dtype: pl.DataType) -> InferredType:
    """Model Monitor's type of a Polars dtype: Integral, Fractional, String or Unknown."""
    if dtype.is_integer() or dtype == pl.Boolean:
        return "Integral"
    if dtype.is_float() or dtype.is_decimal():
        return "Fractional"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum | pl.Categorical):
        return "String"
    return "Unknown"


def _numeric_expr(name: str, dtype: pl.DataType, target: InferredType) -> tuple[pl.Expr, pl.Expr]:
    """(conforming values as Float64 with nulls elsewhere, count of present raw values)."""
    col = pl.col(name)
    present = col.is_not_null()
    if dtype.is_float():
        present = present & col.is_not_nan()
    if dtype.is_numeric() or dtype == pl.Boolean:
        value = col.cast(pl.Float64)
    elif dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum | pl.Categorical):
        value = col.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    else:
        value = pl.lit(None, dtype=pl.Float64)
    value = value.fill_nan(None)
    if target == "Integral":
        value = pl.when(value == value.floor()).then(value)
    return value, present.sum()


def compute_statistics(
    frame: pl.DataFrame,
    *,
    types: Mapping[str, InferredType] | None = None,
    columns: Sequence[str] | None = None,
    k: int = DEFAULT_K,
    seed: int = 0,
) -> DatasetStatistics:
    """Profile `columns` (default: all) of `frame`; `types` fixes each column's type (else inferred)."""
    names = list(columns) if columns is not None else list(frame.columns)
    schema = frame.schema
    targets = {n: (types or {}).get(n) or infer_type(schema[n]) for n in names}
    numeric = [n for n in names if targets[n] in NUMERIC_TYPES]
    strings = [n for n in names if targets[n] == "String"]
    height = frame.height
    out: dict[str, FeatureStatistics] = {}

    sorted_cols: dict[str, FloatArray] = {}
    present_counts: dict[str, int] = {}
    if numeric:
        exprs: list[pl.Expr] = []
        count_exprs: list[pl.Expr] = []
        for n in numeric:
            value, present_expr = _numeric_expr(n, schema[n], targets[n])
            exprs.append(value.sort(nulls_last=True).alias(n))
            count_exprs.append(present_expr.alias(n))
        sorted_frame = frame.select(exprs)
        counts = frame.select(count_exprs).row(0)
        for n, c in zip(numeric, counts, strict=True):
            series = sorted_frame[n]
            valid = height - series.null_count()
            sorted_cols[n] = series.head(valid).to_numpy().astype(np.float64, copy=False)
            present_counts[n] = int(c or 0)
    string_counts: dict[str, pl.DataFrame] = {}
    string_present: dict[str, int] = {}
    for n in strings:
        col = frame[n]
        if col.dtype != pl.String:
            col = col.cast(pl.String)
        string_present[n] = height - col.null_count()
        string_counts[n] = col.drop_nulls().value_counts(sort=True, name="count")

    for n in names:
        t = targets[n]
        if t in NUMERIC_TYPES:
            x = sorted_cols[n]
            present = present_counts[n]
            out[n] = _numeric_statistics(n, t, x, present, height - present, k=k, seed=seed)
        elif t == "String":
            vc = string_counts[n]
            top = vc.head(MAX_CATEGORIES)
            freq = dict(zip(top[n].to_list(), (int(c) for c in top["count"].to_list()), strict=True))
            present = string_present[n]
            out[n] = FeatureStatistics(
                n, "String", present, height - present, frequencies=freq, distinct_count=vc.height
            )
        else:
            present = height - frame[n].null_count()
            out[n] = FeatureStatistics(n, "Unknown", present, height - present)
    return DatasetStatistics(item_count=height, features=out)


def _numeric_statistics(
    name: str, t: InferredType, x: FloatArray, present: int, missing: int, *, k: int, seed: int
) -> FeatureStatistics:
    n = int(x.size)
    stats = FeatureStatistics(name, t, present, missing, num_type_mismatch=present - n)
    if n == 0:
        return stats
    total = float(x.sum())
    mean = total / n
    lo, hi = float(x[0]), float(x[-1])
    stats.sum = total
    stats.mean = mean
    stats.std_dev = float(math.sqrt(max(float(np.mean((x - mean) ** 2)), 0.0)))
    stats.min, stats.max = lo, hi
    edges = np.linspace(lo, hi, N_BUCKETS + 1)
    cuts = np.searchsorted(x, edges[1:-1], side="left")
    counts = np.diff(np.concatenate([[0], cuts, [n]]))
    stats.buckets = [Bucket(float(edges[i]), float(edges[i + 1]), int(counts[i])) for i in range(N_BUCKETS)]
    change = np.flatnonzero(x[1:] != x[:-1])
    distinct = int(change.size + 1)
    stats.distinct_count = distinct
    if distinct <= MAX_CATEGORIES:
        starts = np.concatenate([[0], change + 1])
        sizes = np.diff(np.concatenate([starts, [n]]))
        stats.frequencies = {float(v): int(c) for v, c in zip(x[starts], sizes, strict=True)}
    stats.sketch = QuantileSketch.from_sorted(x, k=k, seed=seed)
    return stats
