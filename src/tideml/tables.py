"""Tables that services read: a frame, a file, or a dataset artifact, resolved to one content hash.

Every service that consumes a table (training, Clarify, monitoring…) resolves it here, so the same rows
are the same lineage artifact whichever service reads them: a sha256 names a Parquet artifact in the
store; a frame or a file is stored as one (CSV is converted), and its hash is the artifact's.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from tideml.errors import ValidationError
from tideml.lineage import ArtifactSpec

if TYPE_CHECKING:
    from tideml.workspace import Workspace

__all__ = [
    "PARQUET",
    "DatasetInput",
    "as_polars",
    "is_artifact_key",
    "parquet_bytes",
    "read_table",
    "resolve_table",
]

PARQUET = "application/vnd.apache.parquet"
_SHA = re.compile(r"(sha256:)?[0-9a-f]{64}")


@dataclass(frozen=True)
class DatasetInput:
    """A resolved table: the rows and the Parquet artifact they were read from (or stored as)."""

    frame: pl.DataFrame
    sha256: str
    name: str

    @property
    def lineage(self) -> ArtifactSpec:
        return ArtifactSpec("Dataset", uri=f"sha256:{self.sha256}", sha256=self.sha256, name=self.name)


def is_artifact_key(source: Any) -> bool:
    """True for `sha256:HEX` / `HEX` strings that are not also the name of an existing file."""
    return isinstance(source, str) and bool(_SHA.fullmatch(source)) and not Path(source).exists()


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    """Deterministic Parquet bytes of a frame (the same rows give the same hash)."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", statistics=False)
    return buffer.getvalue()


def read_table(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read a Parquet (or CSV) file into a polars frame, with a clear error for anything else."""
    file = Path(path)
    if not file.is_file():
        raise ValidationError(
            "no such file", obj=str(file), fix="pass a Parquet dataset file or an artifact sha256"
        )
    try:
        if file.suffix.lower() == ".csv":
            return pl.read_csv(file, infer_schema_length=10_000)
        return pl.read_parquet(file)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ValidationError(
            f"cannot read it as {'CSV' if file.suffix.lower() == '.csv' else 'Parquet'}: {exc}",
            obj=str(file),
            fix="pass a Parquet file (or a CSV with a header row)",
        ) from exc


def as_polars(data: Any) -> pl.DataFrame:
    """A polars frame from a polars frame, a pandas frame or a Parquet/CSV path."""
    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, pl.LazyFrame):
        collected: pl.DataFrame = data.collect()
        return collected
    if isinstance(data, str | os.PathLike):
        return read_table(data)
    if type(data).__module__.startswith("pandas"):
        converted: pl.DataFrame = pl.from_pandas(data)
        return converted
    raise ValidationError(
        f"unsupported data type {type(data).__name__}",
        obj="dataset",
        fix="pass a polars or pandas DataFrame, a Parquet/CSV path or a dataset artifact sha256",
    )


def resolve_table(ws: Workspace, source: Any, *, name: str | None = None) -> DatasetInput:
    """A frame, a Parquet/CSV path or a dataset artifact sha256 → rows + artifact (stored if new)."""
    if is_artifact_key(source):
        key = str(source).removeprefix("sha256:")
        path = ws.artifacts.local_path(key)
        try:
            frame = pl.read_parquet(path)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise ValidationError(
                f"the artifact is not a Parquet table ({exc})",
                obj=f"artifact {key}",
                fix="pass the sha256 of a dataset artifact (Parquet)",
            ) from exc
        return DatasetInput(frame, key, name or f"dataset {key[:12]}")
    if isinstance(source, str | Path):
        path = Path(source)
        frame = read_table(path)
        if path.suffix.lower() == ".parquet":
            ref = ws.put_artifact(path, PARQUET)
        else:  # a CSV is stored as the Parquet table that was actually read
            ref = ws.put_artifact(parquet_bytes(frame), PARQUET)
        return DatasetInput(frame, ref.sha256, name or path.name)
    frame = as_polars(source)
    ref = ws.put_artifact(parquet_bytes(frame), PARQUET)
    return DatasetInput(frame, ref.sha256, name or "dataframe")
