"""Column access over pandas, Polars or a mapping of arrays, and loading of data files.

The metrics only need a few columns as NumPy arrays plus their integer codes, so the input frame is never
copied whole: each column is converted when first asked for and cached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import polars as pl

from tideml.errors import NotFound, ValidationError

__all__ = ["ColumnKind", "Frame", "FrameLike", "load_frame"]

ColumnKind = Literal["bool", "int", "float", "string", "category"]
FrameLike = pd.DataFrame | pl.DataFrame | Mapping[str, Any]


class Frame:
    """Read-only columnar view of a data set (pandas, Polars or a dict of arrays)."""

    def __init__(self, data: FrameLike | Frame, *, name: str = "data") -> None:
        if isinstance(data, Frame):
            self._src: Any = data._src
            self.name: str = data.name
            self.columns: list[str] = list(data.columns)
            self.n_rows: int = data.n_rows
            self._cache: dict[str, pd.Series[Any]] = data._cache
            return
        self.name = name
        self._cache = {}
        if isinstance(data, pd.DataFrame):
            self._src = data
            self.columns = [str(c) for c in data.columns]
            self.n_rows = len(data)
        elif isinstance(data, pl.DataFrame):
            self._src = data
            self.columns = list(data.columns)
            self.n_rows = data.height
        elif isinstance(data, Mapping):
            arrays = {str(k): np.asarray(v) for k, v in data.items()}
            lengths = {len(v) for v in arrays.values()}
            if len(lengths) > 1:
                raise ValidationError(
                    f"columns have different lengths {sorted(lengths)}",
                    obj=name,
                    fix="pass columns of equal length",
                )
            self._src = arrays
            self.columns = list(arrays)
            self.n_rows = lengths.pop() if lengths else 0
        else:
            raise ValidationError(
                f"unsupported data type {type(data).__name__}",
                obj=name,
                fix="pass a pandas or Polars DataFrame, a mapping of column arrays, or a file path",
            )

    def __contains__(self, column: object) -> bool:
        return column in self.columns

    def require(self, column: str, field: str) -> None:
        """Raise a ValidationError naming `field` if the column is missing."""
        if column not in self.columns:
            shown = ", ".join(self.columns[:20]) + (" …" if len(self.columns) > 20 else "")
            raise ValidationError(
                f"column {column!r} is not in the data",
                obj=self.name,
                field=field,
                fix=f"use one of the data's columns: {shown}",
            )

    def series(self, column: str) -> pd.Series[Any]:
        """The column as a pandas Series (converted once, then cached)."""
        cached = self._cache.get(column)
        if cached is not None:
            return cached
        self.require(column, "column")
        if isinstance(self._src, pd.DataFrame):
            s = self._src[column]
            if isinstance(s, pd.DataFrame):
                raise ValidationError(
                    f"column name {column!r} is duplicated", obj=self.name, fix="rename the duplicate column"
                )
        elif isinstance(self._src, pl.DataFrame):
            col = self._src.get_column(column)
            if col.dtype == pl.Categorical or col.dtype == pl.Enum:
                s = pd.Series(col.to_numpy(), name=column, dtype="category")
            elif col.dtype == pl.Boolean and col.null_count() == 0:
                s = pd.Series(col.to_numpy(), name=column, dtype=bool)
            else:
                s = pd.Series(col.to_numpy(), name=column)
        else:
            s = pd.Series(self._src[column], name=column)
        self._cache[column] = s
        return s

    def kind(self, column: str) -> ColumnKind:
        """bool, int, float, string or category, from the column's dtype."""
        s = self.series(column)
        dt = s.dtype
        if isinstance(dt, pd.CategoricalDtype):
            return "category"
        if pd.api.types.is_bool_dtype(dt):
            return "bool"
        if pd.api.types.is_integer_dtype(dt):
            return "int"
        if pd.api.types.is_float_dtype(dt):
            return "float"
        return "string"

    def numeric(self, column: str) -> npt.NDArray[np.float64]:
        """The column as float64 (nulls become NaN); a clear error if it is not numeric."""
        s = self.series(column)
        if self.kind(column) in ("string", "category"):
            try:
                return pd.to_numeric(s, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
            except (ValueError, TypeError) as exc:
                raise ValidationError(
                    f"column {column!r} is not numeric, so a threshold cannot apply to it",
                    obj=self.name,
                    field=column,
                    fix="give category values instead of a threshold, or convert the column to numbers",
                ) from exc
        return s.to_numpy(dtype=np.float64, na_value=np.nan)

    def factorize(self, column: str, *, sort: bool = True) -> tuple[npt.NDArray[np.int64], list[Any]]:
        """Integer codes (nulls → -1) and the distinct values, sorted (or in order of appearance)."""
        s = self.series(column)
        if isinstance(s.dtype, pd.CategoricalDtype):
            codes = s.cat.codes.to_numpy().astype(np.int64)
            cats = list(s.cat.categories)
            if not sort:
                present = pd.unique(codes[codes >= 0])
                remap = np.full(len(cats), -1, dtype=np.int64)
                remap[present] = np.arange(len(present))
                codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
                cats = [cats[i] for i in present]
            else:
                used = np.bincount(codes[codes >= 0], minlength=len(cats)) > 0
                if not used.all():
                    remap = np.cumsum(used) - 1
                    codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
                    cats = [c for c, u in zip(cats, used, strict=True) if u]
            return codes, [_py(c) for c in cats]
        codes_any, uniques = pd.factorize(s, sort=sort, use_na_sentinel=True)
        return np.asarray(codes_any, dtype=np.int64), [_py(u) for u in np.asarray(uniques)]

    def numeric_matrix(self, columns: Sequence[str]) -> npt.NDArray[np.float64]:
        """Several numeric/bool columns as one float64 matrix (rows x columns)."""
        out = np.empty((self.n_rows, len(columns)), dtype=np.float64)
        for j, c in enumerate(columns):
            out[:, j] = self.series(c).to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def select_pandas(self, columns: Sequence[str]) -> pd.DataFrame:
        """The named columns as a pandas DataFrame (category columns stay categorical)."""
        return pd.DataFrame({c: self.series(c) for c in columns})


def _py(value: Any) -> Any:
    """NumPy scalars to plain Python values (for names and JSON)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_frame(
    path: str | Path,
    *,
    dataset_type: str | None = None,
    headers: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Read CSV, Parquet or JSON Lines into Polars; 'N/A' and 'None' stay strings (only empty is null)."""
    p = Path(str(path).removeprefix("file://")).expanduser()
    if str(path).startswith(("s3://", "http://", "https://", "gs://")):
        raise ValidationError(
            f"{path} is a remote URI; tideml reads local files only",
            obj="data",
            field="dataset_uri",
            fix="download the file and pass its local path",
        )
    if not p.is_file():
        raise NotFound(
            f"no file at {p}", obj="data", fix="pass the path of a CSV, Parquet or JSON Lines file"
        )
    kind = (dataset_type or "").lower()
    suffix = p.suffix.lower()
    try:
        if "parquet" in kind or suffix in (".parquet", ".pq"):
            return pl.read_parquet(p)
        if "jsonlines" in kind or suffix in (".jsonl", ".ndjson"):
            return pl.read_ndjson(p)
        first = p.open("r", encoding="utf-8").readline().strip().split(",")
        has_header = headers is None or [h.strip().strip('"') for h in first] == list(headers)
        frame = pl.read_csv(
            p,
            has_header=has_header,
            new_columns=list(headers) if headers is not None and not has_header else None,
            infer_schema_length=10_000,
        )
        return frame
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        raise ValidationError(
            f"cannot read {p}: {exc}",
            obj="data",
            fix="pass a valid CSV (with header), Parquet or JSON Lines file",
        ) from exc
