"""From a model-ready table to arrays: pinned feature order and types, the label, the entity, checks.

A model-ready table has one row per entity (or several, grouped by the entity column), numeric feature
columns, a 0/1 label and an entity key. String columns are refused with a fix (encode them with a flow);
nulls in features become XGBoost's missing value; nulls in the label are an error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from tideml.errors import ValidationError
from tideml.tables import as_polars, read_table
from tideml.train.spec import TrainSpec

__all__ = [
    "FeatureType",
    "FloatArray",
    "IntArray",
    "ModelMatrix",
    "as_polars",
    "build_matrix",
    "feature_matrix",
    "frame_fingerprint",
    "infer_features",
    "read_table",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
FeatureType = Literal["int", "float", "bool"]


def _feature_type(dtype: pl.DataType) -> FeatureType | None:
    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_integer():
        return "int"
    if dtype.is_float() or dtype.is_decimal():
        return "float"
    return None


def infer_features(frame: pl.DataFrame, spec: TrainSpec) -> tuple[str, ...]:
    """The feature columns: `spec.features`, or every numeric column except label, entity and excluded."""
    if spec.features is not None:
        return spec.features
    skip = {spec.label, spec.entity, *spec.exclude}
    return tuple(name for name in frame.columns if name not in skip and _feature_type(frame.schema[name]))


def feature_matrix(
    frame: pl.DataFrame, features: tuple[str, ...], *, obj: str = "training data"
) -> tuple[npt.NDArray[np.float32], list[FeatureType]]:
    """The float32 feature matrix in `features` order and each column's type; nulls become NaN."""
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise ValidationError(
            f"{len(missing)} feature column(s) missing: {', '.join(missing[:10])}",
            obj=obj,
            field=missing[0],
            fix="pass a frame with every feature the model was trained on (same names)",
        )
    types: list[FeatureType] = []
    for name in features:
        kind = _feature_type(frame.schema[name])
        if kind is None:
            raise ValidationError(
                f"has type {frame.schema[name]}, not a number",
                obj=obj,
                field=name,
                fix="encode it with a flow (one-hot or ordinal) or list it in `exclude`",
            )
        types.append(kind)
    selected = frame.select([pl.col(name).cast(pl.Float32) for name in features])
    matrix = selected.to_numpy(allow_copy=True).astype(np.float32, copy=False)
    return np.ascontiguousarray(matrix), types


@dataclass(frozen=True)
class ModelMatrix:
    """The arrays one training run works on, rows aligned."""

    X: npt.NDArray[np.float32]
    y: IntArray
    entities: npt.NDArray[Any]
    features: tuple[str, ...]
    feature_types: tuple[FeatureType, ...]
    amounts: FloatArray | None = None

    @property
    def rows(self) -> int:
        return int(self.y.shape[0])


def build_matrix(frame: pl.DataFrame, spec: TrainSpec) -> ModelMatrix:
    """Check the frame against the spec and turn it into aligned arrays."""
    for column, role in ((spec.label, "label"), (spec.entity, "entity")):
        if column not in frame.columns:
            raise ValidationError(
                f"the {role} column is missing",
                obj="training data",
                field=column,
                fix=f"set `{role}` in the TrainSpec to one of: {', '.join(frame.columns[:8])}, …",
            )
    if frame.height == 0:
        raise ValidationError("has no rows", obj="training data", fix="pass a non-empty dataset")
    features = infer_features(frame, spec)
    if not features:
        raise ValidationError(
            "no numeric feature columns",
            obj="training data",
            field="features",
            fix="encode the columns with a flow, or name them in TrainSpec.features",
        )
    X, types = feature_matrix(frame, features)
    label = frame[spec.label]
    if label.null_count():
        raise ValidationError(
            f"{label.null_count()} row(s) have no label",
            obj="training data",
            field=spec.label,
            fix="drop them",
        )
    if label.dtype == pl.Boolean:
        label = label.cast(pl.Int64)
    values = set(label.unique().to_list())
    if not values <= {0, 1}:
        shown = sorted(values - {0, 1}, key=str)[:5]
        raise ValidationError(
            f"the label must be 0/1, found {shown}",
            obj="training data",
            field=spec.label,
            fix="encode the label as 1 = positive (fraud), 0 = negative",
        )
    if len(values) < 2:
        raise ValidationError(
            "the label has only one class",
            obj="training data",
            field=spec.label,
            fix="pass data with both positive and negative rows",
        )
    entities = frame[spec.entity]
    if entities.null_count():
        raise ValidationError(
            "entity keys must not be null",
            obj="training data",
            field=spec.entity,
            fix="drop rows without a key",
        )
    amounts: FloatArray | None = None
    amount_column = spec.threshold.amount_column
    if amount_column is not None:
        if amount_column not in frame.columns or _feature_type(frame.schema[amount_column]) is None:
            raise ValidationError(
                "the amount column is missing or not numeric",
                obj="TrainSpec.threshold",
                field="amount_column",
                fix="name a numeric column holding each row's claim amount",
            )
        amounts = frame[amount_column].cast(pl.Float64).fill_null(0.0).to_numpy()
    return ModelMatrix(
        X=X,
        y=label.cast(pl.Int64).to_numpy(),
        entities=entities.to_numpy(),
        features=features,
        feature_types=tuple(types),
        amounts=amounts,
    )


def frame_fingerprint(frame: pl.DataFrame) -> str:
    """A sha256 of a frame's column names, types and values, stable across runs of one environment.

    Used as the dataset hash when training from an in-memory frame that is not (yet) an artifact.
    """
    digest = hashlib.sha256()
    for name in frame.columns:
        series = frame[name]
        digest.update(f"{name}\x00{series.dtype}\x00".encode())
        if series.dtype == pl.String or series.dtype == pl.Categorical:
            for value in series.cast(pl.String).fill_null("\x00null").to_list():
                digest.update(value.encode() + b"\x1f")
        else:
            physical = series.cast(pl.UInt8) if series.dtype == pl.Boolean else series.to_physical()
            digest.update(np.packbits(series.is_null().to_numpy()).tobytes())
            digest.update(np.ascontiguousarray(physical.fill_null(0).to_numpy()).tobytes())
    return digest.hexdigest()
