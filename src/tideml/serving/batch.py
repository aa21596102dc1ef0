"""Batch transform: score a Parquet file with a registered model, streaming, into a Parquet file.

The input is read in record batches (never whole), each batch is scored by the same compiled trees the
endpoint uses (vectorised), and written to a temporary file that replaces the output only when every
batch succeeded. The output keeps the input's non-feature columns (the entity id, typically) and adds
`probability`, `decision` and `model_version`. Only Approved versions run unless overridden, and the
run is recorded in lineage (input file -> output file, with the model).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tideml._progress import progress_bar
from tideml.artifacts import file_sha256
from tideml.errors import PolicyViolation, ValidationError
from tideml.lineage import ArtifactSpec
from tideml.serving.model import ServingModel, load_serving_model

if TYPE_CHECKING:
    from tideml.workspace import Workspace

__all__ = ["BatchTransformReport", "batch_transform", "score_parquet"]


@dataclass(frozen=True)
class BatchTransformReport:
    """What a batch transform did."""

    model_version: str
    input: str
    output: str
    rows: int
    batches: int
    positives: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _thresholds(model: ServingModel, matrix: npt.NDArray[np.float32]) -> float | npt.NDArray[np.float64]:
    if model.group_column is None:
        return model.threshold
    return np.array(
        [model.threshold_for([None if np.isnan(v) else float(v) for v in row]) for row in matrix],
        dtype=np.float64,
    )


def score_parquet(
    model: ServingModel,
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    batch_rows: int = 65_536,
    keep: list[str] | None = None,
    progress: bool = True,
) -> tuple[int, int, int]:
    """Stream `source` through `model` into `target` (atomically); returns (rows, batches, positives)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    src = Path(source)
    if not src.is_file():
        raise ValidationError("no such file", obj=str(src), field="input", fix="pass a Parquet file")
    try:
        reader = pq.ParquetFile(src)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ValidationError(
            f"not a Parquet file ({exc})", obj=str(src), field="input", fix="pass a Parquet file"
        ) from exc
    columns = reader.schema_arrow.names
    missing = [f for f in model.features if f not in columns]
    if missing:
        raise ValidationError(
            f"{len(missing)} model feature column(s) missing: {', '.join(missing[:8])}",
            obj=str(src),
            field=missing[0],
            fix="pass a file with every feature of the model (same names)",
        )
    features = set(model.features)
    keep = [c for c in columns if c not in features and c != model.label] if keep is None else keep
    for c in keep:
        if c not in columns:
            raise ValidationError(
                "no such column",
                obj=str(src),
                field=c,
                fix=f"keep columns of the input: {', '.join(columns[:10])}",
            )
        if c in ("probability", "decision", "model_version"):
            raise ValidationError(
                "clashes with an output column",
                obj=str(src),
                field=c,
                fix="rename it or leave it out of keep",
            )
    for f in model.features:
        t = reader.schema_arrow.field(f).type
        if not (
            pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t)
        ):
            raise ValidationError(
                f"has type {t}, not a number", obj=str(src), field=f, fix="encode it with the model's flow"
            )
    dst = Path(target)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    rows = batches = positives = 0
    writer: Any = None
    try:
        with progress_bar("Scoring", total=reader.metadata.num_rows, enabled=progress) as bar:
            for batch in reader.iter_batches(batch_size=batch_rows, columns=[*model.features, *keep]):
                matrix = np.empty((batch.num_rows, len(model.features)), dtype=np.float32)
                for j, f in enumerate(model.features):
                    col = pc.cast(batch.column(f), pa.float32())
                    matrix[:, j] = col.to_numpy(zero_copy_only=False)
                probs = model.predict_matrix(matrix)
                decisions = (probs >= _thresholds(model, matrix)).astype(np.int8)
                out = pa.table(
                    {
                        **{c: batch.column(c) for c in keep},
                        "probability": pa.array(probs, pa.float64()),
                        "decision": pa.array(decisions, pa.int8()),
                        "model_version": pa.array([model.ref] * batch.num_rows, pa.string()),
                    }
                )
                if writer is None:
                    writer = pq.ParquetWriter(tmp, out.schema, compression="zstd")
                writer.write_table(out)
                rows += batch.num_rows
                batches += 1
                positives += int(decisions.sum())
                bar.advance(batch.num_rows)
        if writer is None:  # an empty input still yields a valid (empty) output
            empty = pa.table(
                {
                    **{c: pa.array([], reader.schema_arrow.field(c).type) for c in keep},
                    "probability": pa.array([], pa.float64()),
                    "decision": pa.array([], pa.int8()),
                    "model_version": pa.array([], pa.string()),
                }
            )
            pq.write_table(empty, tmp)
        else:
            writer.close()
            writer = None
        os.replace(tmp, dst)
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return rows, batches, positives


def batch_transform(
    ws: Workspace,
    model: str,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    batch_rows: int = 65_536,
    keep: list[str] | None = None,
    override_approval: bool = False,
    progress: bool = True,
) -> BatchTransformReport:
    """Score a Parquet file with a registry model (`group@production`, `group/3`) into a Parquet file."""
    version = ws.registry.get_version(model)
    if version.status != "Approved" and not override_approval:
        raise PolicyViolation(
            f"model {version.ref} is {version.status}; only Approved versions run batch transforms",
            obj=f"model {model}",
            field="model",
            fix="approve it, or pass override_approval=True (--override-approval; recorded in lineage)",
        )
    loaded = load_serving_model(
        ws.artifacts, group=version.group, version=version.version, model_sha256=version.model_sha256
    )
    src, dst = Path(input).resolve(), Path(output).resolve()
    params = {
        "model": version.ref,
        "override_approval": version.status != "Approved",
        "batch_rows": batch_rows,
    }
    started = time.perf_counter()
    with ws.lineage.action("serving.batch_transform", parameters=params) as act:
        if src.is_file():
            act.input(ArtifactSpec("File", src.as_uri(), sha256=file_sha256(src), name=src.name))
        act.input(ArtifactSpec("Model", version.lineage_uri, name=version.ref))
        rows, batches, positives = score_parquet(
            loaded, src, dst, batch_rows=batch_rows, keep=keep, progress=progress
        )
        act.output(ArtifactSpec("File", dst.as_uri(), sha256=file_sha256(dst), name=dst.name))
        act.set(rows=rows, positives=positives)
    return BatchTransformReport(
        version.ref, str(src), str(dst), rows, batches, positives, time.perf_counter() - started
    )
