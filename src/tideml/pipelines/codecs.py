"""How step outputs are persisted: JSON, Parquet, bytes or files in the content-addressed store.

Nothing is pickled. Frames (polars, pandas, Arrow) become Parquet, small values canonical JSON, bytes
stay bytes and a returned `Path` is copied in as a file. Each stored output is described by an
`OutputArtifact` (hash, size, media type, codec), which is all a downstream step needs to read it.
"""

from __future__ import annotations

import io
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from tideml.artifacts import ArtifactStore
from tideml.errors import ValidationError
from tideml.pipelines.hashing import JSONValue, to_json_value

__all__ = ["OutputArtifact", "decode", "encode", "read_json", "select"]

PARQUET = "application/vnd.apache.parquet"
JSON = "application/json"
BYTES = "application/octet-stream"


@dataclass(frozen=True)
class OutputArtifact:
    """One stored output: content hash, size, media type and the codec to read it back with."""

    sha256: str
    size: int
    media_type: str
    codec: str  # json | polars | pandas | arrow | bytes | file

    def to_json(self) -> dict[str, JSONValue]:
        return {"sha256": self.sha256, "size": self.size, "media_type": self.media_type, "codec": self.codec}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutputArtifact:
        return cls(str(data["sha256"]), int(data["size"]), str(data["media_type"]), str(data["codec"]))


def _type_name(value: Any) -> str:
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}"


def encode(store: ArtifactStore, value: Any, *, step: str, output: str) -> OutputArtifact:
    """Persist one output value; refuse types that have no safe, stable stored form."""
    name = _type_name(value)
    if name.startswith("polars.") and name.endswith("LazyFrame"):
        value = value.collect()
        name = _type_name(value)
    if name.startswith("polars.") and name.endswith("DataFrame"):
        buf = io.BytesIO()
        value.write_parquet(buf, compression="zstd")
        ref = store.put_bytes(buf.getvalue(), PARQUET)
        return OutputArtifact(ref.sha256, ref.size, PARQUET, "polars")
    if name.startswith("pandas.") and name.endswith("DataFrame"):
        buf = io.BytesIO()
        value.to_parquet(buf, engine="pyarrow", compression="zstd")
        ref = store.put_bytes(buf.getvalue(), PARQUET)
        return OutputArtifact(ref.sha256, ref.size, PARQUET, "pandas")
    if name.startswith("pyarrow.") and name.endswith("Table"):
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(value, buf, compression="zstd")
        ref = store.put_bytes(buf.getvalue(), PARQUET)
        return OutputArtifact(ref.sha256, ref.size, PARQUET, "arrow")
    if isinstance(value, bytes | bytearray | memoryview):
        ref = store.put_bytes(bytes(value), BYTES)
        return OutputArtifact(ref.sha256, ref.size, BYTES, "bytes")
    if isinstance(value, Path):
        if not value.is_file():
            raise ValidationError(
                f"returned path {str(value)!r} is not a file",
                obj=f"step {step}",
                field=f"outputs.{output}",
                fix="return the path of a file the step wrote (zip a folder first)",
            )
        ref = store.put_file(value)
        return OutputArtifact(ref.sha256, ref.size, ref.media_type, "file")
    try:
        data = to_json_value(value, where=f"outputs.{output}")
    except ValidationError as exc:
        raise ValidationError(
            f"cannot persist an output of type {name} ({exc.message})",
            obj=f"step {step}",
            field=f"outputs.{output}",
            fix="return a frame (polars/pandas/Arrow), a JSON-able value, bytes or a Path; never an "
            "object that would need pickle",
        ) from exc
    body = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    ref = store.put_bytes(body, JSON)
    return OutputArtifact(ref.sha256, ref.size, JSON, "json")


def read_json(store: ArtifactStore, sha256: str) -> Any:
    """A stored JSON output's value."""
    return orjson.loads(store.get(sha256))


def select(value: Any, path: tuple[str, ...], *, where: str) -> Any:
    """A field inside a JSON value (`evaluation["test_auc"]`); integer-like keys index lists."""
    for key in path:
        if isinstance(value, Mapping) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.lstrip("-").isdigit() and -len(value) <= int(key) < len(value):
            value = value[int(key)]
        else:
            keys = ", ".join(sorted(value)) if isinstance(value, Mapping) else type(value).__name__
            raise ValidationError(
                f"has no field {key!r}",
                obj=f"input {where}",
                field=".".join(path),
                fix=f"available: {keys}",
            )
    return value


def _frame_kind(annotation: Any) -> str | None:
    """'polars' / 'lazy' / 'pandas' / 'arrow' / 'path' / 'bytes' / 'model' for annotations we honour."""
    if annotation is None or annotation is typing.Any:
        return None
    if annotation is Path:
        return "path"
    if annotation is bytes:
        return "bytes"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model"
    mod = getattr(annotation, "__module__", "") or ""
    qual = getattr(annotation, "__qualname__", "") or ""
    if mod.startswith("polars"):
        return "lazy" if qual == "LazyFrame" else "polars" if qual == "DataFrame" else None
    if mod.startswith("pandas") and qual == "DataFrame":
        return "pandas"
    if mod.startswith("pyarrow") and qual == "Table":
        return "arrow"
    return None


def decode(
    store: ArtifactStore,
    art: OutputArtifact,
    *,
    annotation: Any = None,
    read_as: str = "value",
    path: tuple[str, ...] = (),
    where: str = "input",
) -> Any:
    """Read a stored output back as the consuming step wants it (its annotation, else its codec)."""
    if read_as == "sha256":
        return art.sha256
    if read_as == "path":
        return store.local_path(art.sha256)
    wanted = _frame_kind(annotation)
    if art.codec == "json":
        value = select(read_json(store, art.sha256), path, where=where)
        if wanted == "model" and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return annotation.model_validate(value)
        return value
    if wanted == "path" or (art.codec == "file" and wanted is None):
        return store.local_path(art.sha256)
    if wanted == "bytes" or art.codec == "bytes":
        return store.get(art.sha256)
    if art.media_type == PARQUET:
        return _read_parquet(store, art, wanted or art.codec)
    return store.get(art.sha256)


def _read_parquet(store: ArtifactStore, art: OutputArtifact, kind: str) -> Any:
    file = store.local_path(art.sha256)
    readers: dict[str, Callable[[Path], Any]] = {
        "polars": _polars_read,
        "lazy": _polars_scan,
        "pandas": _pandas_read,
        "arrow": _arrow_read,
    }
    return readers.get(kind, _polars_read)(file)


def _polars_read(file: Path) -> Any:
    import polars as pl

    return pl.read_parquet(file)


def _polars_scan(file: Path) -> Any:
    import polars as pl

    return pl.scan_parquet(file)


def _pandas_read(file: Path) -> Any:
    import pandas as pd

    return pd.read_parquet(file)


def _arrow_read(file: Path) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(file)
