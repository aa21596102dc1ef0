"""Reading a flow's sources as LazyFrames, inferring their schemas, and writing files atomically."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from tideml.artifacts import atomic_write, file_sha256
from tideml.errors import NotFound, ValidationError
from tideml.wrangle.spec import CsvSource, FeatureGroupSource, Source
from tideml.wrangle.types import DType, Schema, dtype_of, polars_schema

__all__ = [
    "SourceInput",
    "atomic_outputs",
    "atomic_write_text",
    "file_sha256",
    "infer_schema",
    "scan_source",
]

SourceInput = Any
"""A Polars DataFrame or LazyFrame, a pandas DataFrame, or a path to a CSV / Parquet file."""

_CSV_INFER_ROWS = 10_000


def _is_path(value: object) -> bool:
    return isinstance(value, str | os.PathLike)


def scan_source(
    flow: str,
    name: str,
    spec: Source,
    value: SourceInput | None,
    schema: Mapping[str, DType] | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> pl.LazyFrame:
    """The source as a LazyFrame: files are scanned (streaming), frames wrapped.

    `schema` (the fitted or declared input schema) is used to read CSV columns with their known types,
    so that a later file whose type inference would differ is read the same way.
    """
    lf = _scan(flow, name, spec, value, schema, base_dir)
    if isinstance(spec, FeatureGroupSource) and spec.features:
        lf = lf.select(spec.features)
    return lf


def _scan(
    flow: str,
    name: str,
    spec: Source,
    value: SourceInput | None,
    schema: Mapping[str, DType] | None,
    base_dir: str | os.PathLike[str] | None,
) -> pl.LazyFrame:
    obj = f"flow {flow!r} source {name!r}"
    if value is None:
        path = getattr(spec, "path", None)
        if path is None:
            raise ValidationError(
                "no input given for the source", obj=obj, fix=f"pass it, e.g. --input {name}=PATH"
            )
        value = Path(base_dir or ".") / path
    if isinstance(value, pl.LazyFrame):
        return value
    if isinstance(value, pl.DataFrame):
        return value.lazy()
    if not _is_path(value):
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            return pl.from_pandas(value).lazy()
        raise ValidationError(
            f"cannot read a {type(value).__name__} as a source",
            obj=obj,
            fix="pass a Polars or pandas DataFrame, a LazyFrame, or a path to a CSV or Parquet file",
        )
    path = Path(value)
    if "*" not in str(path) and not path.exists():
        raise NotFound(f"no file at {path}", obj=obj, fix="check the path")
    # The file's suffix decides the reader, so a CSV-kind source can be fed Parquet (and back).
    suffix = path.suffix.lower()
    kind = "csv" if suffix == ".csv" else "parquet" if suffix in (".parquet", ".pq") else spec.kind
    if kind == "csv":
        separator = spec.separator if isinstance(spec, CsvSource) else ","
        nulls = spec.null_values if isinstance(spec, CsvSource) else []
        known = dict(schema) if schema is not None else (spec.columns or None)
        return pl.scan_csv(
            path,
            separator=separator,
            null_values=nulls or None,
            schema_overrides=polars_schema(known) if known else None,
            infer_schema_length=_CSV_INFER_ROWS,
            empty_string_is_null=True,
        )
    return pl.scan_parquet(path)


def infer_schema(flow: str, name: str, lf: pl.LazyFrame, declared: Mapping[str, DType] | None) -> Schema:
    """The input schema of a source: the declared columns, or every column of the data."""
    obj = f"flow {flow!r} source {name!r}"
    try:
        have = lf.collect_schema()
    except pl.exceptions.PolarsError as exc:
        raise ValidationError(f"cannot read the source: {str(exc).splitlines()[0]}", obj=obj) from None
    if declared is not None:
        for column in declared:
            if column not in have:
                raise ValidationError(
                    "unknown column: declared in the flow but not in the input", obj=obj, field=column
                )
        return dict(declared)
    schema: Schema = {}
    for column, dtype in have.items():
        mapped = dtype_of(dtype)
        if mapped is None:
            raise ValidationError(
                f"the column's type {dtype} is not supported",
                obj=obj,
                field=column,
                fix="declare the source's `columns` (with supported types) to leave it out",
            )
        schema[column] = mapped
    return schema


def atomic_write_text(path: Path, text: str) -> Path:
    """Write text to a temp file beside `path` and rename it into place."""
    return atomic_write(path, text)


@contextmanager
def atomic_outputs(targets: Mapping[str, Path]) -> Iterator[dict[str, Path]]:
    """Temp paths for several outputs; all are renamed into place only if the block succeeds."""
    temps = {}
    for key, target in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        temps[key] = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        yield temps
    except BaseException:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        raise
    for key, tmp in temps.items():
        os.replace(tmp, targets[key])
