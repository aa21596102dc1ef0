"""The model artifact: an XGBoost UBJSON booster plus a JSON model spec. No pickle anywhere.

The spec pins what a caller needs to score correctly — the feature order and types, the label, the
decision threshold (and per-group thresholds, if any) — and what a reviewer needs to trust it: the
dataset hash, the fitted flows, the hyperparameters, the seed and the metrics. It also records the
booster's sha256, so a spec and a booster that do not belong together are refused on load.

Serialisation is deterministic: the same booster bytes and spec give the same files, byte for byte.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
import polars as pl
import pydantic
import xgboost as xgb
from pydantic import BaseModel, ConfigDict, Field

from tideml.artifacts import atomic_write
from tideml.errors import IntegrityError, NotFound, ValidationError
from tideml.train.data import FeatureType, as_polars, feature_matrix

__all__ = [
    "BOOSTER_FILE",
    "MODEL_FORMAT",
    "SPEC_FILE",
    "FeatureSpec",
    "GroupThresholds",
    "ModelSpec",
    "TrainedModel",
]

MODEL_FORMAT = "tideml.model/1"
SPEC_FILE = "model.json"
BOOSTER_FILE = "model.ubj"
_XGB_TYPES: dict[str, str] = {"int": "int", "float": "float", "bool": "i"}


class FeatureSpec(BaseModel):
    """One model input column: its name and type."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: FeatureType


class GroupThresholds(BaseModel):
    """Per-group decision thresholds: rows whose `column` (as text) equals a key use that key's threshold;
    other rows use `default` (or the model's single threshold if `default` is null)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    column: str
    thresholds: dict[str, float]
    default: float | None = None


class ModelSpec(BaseModel):
    """Everything about a trained model except the trees (which are in the UBJSON booster)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["tideml.model/1"] = "tideml.model/1"
    label: str
    entity: str
    positive_class: int = 1
    features: list[FeatureSpec] = Field(min_length=1)
    threshold: float = Field(ge=0.0, le=1.0)
    threshold_strategy: str
    group_thresholds: GroupThresholds | None = None
    dataset_sha256: str | None = None
    fitted_flow_ids: list[str] = Field(default_factory=list)
    params: dict[str, Any]
    seed: int
    num_trees: int = Field(ge=1)
    best_iteration: int = Field(ge=0)
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    mitigation: dict[str, Any] | None = None
    booster_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    xgboost_version: str

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def to_json_bytes(self) -> bytes:
        """Canonical JSON: sorted keys, two-space indent, trailing newline."""
        body: bytes = orjson.dumps(
            self.model_dump(mode="json"),
            option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY,
        )
        return body + b"\n"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class TrainedModel:
    """A booster and its spec; scores frames with the pinned feature order and applies the threshold."""

    def __init__(self, booster: xgb.Booster, spec: ModelSpec) -> None:
        self.booster = booster
        self.spec = spec

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def build(cls, booster: xgb.Booster, **spec_fields: Any) -> TrainedModel:
        """Attach a spec to a fitted booster; `booster_sha256`, tree count and version are filled in."""
        raw = bytes(booster.save_raw("ubj"))
        spec = ModelSpec(
            booster_sha256=_sha256(raw),
            num_trees=booster.num_boosted_rounds(),
            xgboost_version=xgb.__version__,
            **spec_fields,
        )
        return cls(booster, spec)

    def with_spec(self, **changes: Any) -> TrainedModel:
        """The same booster with some spec fields replaced (e.g. per-group thresholds)."""
        data = self.spec.model_dump()
        data.update(changes)
        return TrainedModel(self.booster, ModelSpec.model_validate(data))

    # -- bytes -------------------------------------------------------------------------------------
    def booster_bytes(self) -> bytes:
        """The booster as UBJSON."""
        return bytes(self.booster.save_raw("ubj"))

    def to_bytes(self) -> tuple[bytes, bytes]:
        """(spec JSON, booster UBJSON); deterministic for the same model."""
        return self.spec.to_json_bytes(), self.booster_bytes()

    @classmethod
    def from_bytes(cls, spec_bytes: bytes, booster_bytes: bytes, *, name: str = "model") -> TrainedModel:
        """Load from the two byte strings, refusing a corrupt or mismatched pair with IntegrityError."""
        try:
            data = orjson.loads(spec_bytes)
        except orjson.JSONDecodeError as exc:
            raise IntegrityError(
                f"the model spec is not valid JSON ({exc})",
                obj=f"{name}/{SPEC_FILE}",
                fix="the file is corrupt; restore it or retrain the model",
            ) from exc
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise IntegrityError(
                f"not a tideml model spec (format {found!r}, expected {MODEL_FORMAT!r})",
                obj=f"{name}/{SPEC_FILE}",
                field="format",
                fix="load a model.json written by tideml.train",
            )
        try:
            spec = ModelSpec.model_validate(data)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            raise IntegrityError(
                f"the model spec is invalid: {first['msg']}",
                obj=f"{name}/{SPEC_FILE}",
                field=".".join(str(p) for p in first["loc"]) or None,
                fix="the file is corrupt or was edited; restore it or retrain the model",
            ) from exc
        actual = _sha256(booster_bytes)
        if actual != spec.booster_sha256:
            raise IntegrityError(
                f"the booster's sha256 is {actual[:12]}…, the spec expects {spec.booster_sha256[:12]}…",
                obj=f"{name}/{BOOSTER_FILE}",
                field="booster_sha256",
                fix="the booster is corrupt or from another model; load a matching model.json/model.ubj pair",
            )
        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(booster_bytes))
        except xgb.core.XGBoostError as exc:
            raise IntegrityError(
                f"XGBoost cannot read the booster: {str(exc).splitlines()[0]}",
                obj=f"{name}/{BOOSTER_FILE}",
                fix="restore the file or retrain the model",
            ) from exc
        model = cls(booster, spec)
        model._check_consistent(name)
        return model

    def _check_consistent(self, name: str) -> None:
        names = self.booster.feature_names
        if self.booster.num_features() != len(self.spec.features) or (
            names is not None and tuple(names) != self.spec.feature_names
        ):
            raise IntegrityError(
                f"the booster has {self.booster.num_features()} features, the spec "
                f"{len(self.spec.features)} (or their names differ)",
                obj=name,
                field="features",
                fix="load the model.json written together with this booster",
            )
        if self.booster.num_boosted_rounds() != self.spec.num_trees:
            raise IntegrityError(
                f"the booster has {self.booster.num_boosted_rounds()} rounds, the spec {self.spec.num_trees}",
                obj=name,
                field="num_trees",
                fix="load the model.json written together with this booster",
            )

    # -- files -------------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write `model.json` and `model.ubj` into `folder` (atomically, one file at a time)."""
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        spec_bytes, booster_bytes = self.to_bytes()
        atomic_write(target / BOOSTER_FILE, booster_bytes)
        atomic_write(target / SPEC_FILE, spec_bytes)
        return target

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> TrainedModel:
        """Read a folder written by `save`; IntegrityError if either file is corrupt or they do not match."""
        source = Path(folder)
        for file in (SPEC_FILE, BOOSTER_FILE):
            if not (source / file).is_file():
                raise NotFound(
                    f"no {file} in {source}", obj="model", fix="pass the folder TrainedModel.save wrote"
                )
        return cls.from_bytes(
            (source / SPEC_FILE).read_bytes(), (source / BOOSTER_FILE).read_bytes(), name=str(source)
        )

    # -- scoring -----------------------------------------------------------------------------------
    def predict_proba(self, data: Any) -> npt.NDArray[np.float64]:
        """Fraud probability per row of a frame (polars/pandas/Parquet path) holding the features by name."""
        frame = as_polars(data)
        X, _ = feature_matrix(frame, self.spec.feature_names, obj="scoring data")
        return self.predict_matrix(X)

    def predict_matrix(self, X: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Fraud probability per row of a matrix whose columns are already in the spec's feature order."""
        if X.ndim != 2 or X.shape[1] != len(self.spec.features):
            raise ValidationError(
                f"expected {len(self.spec.features)} columns, got {X.shape[1] if X.ndim == 2 else X.shape}",
                obj="scoring data",
                fix="pass the features in the model spec's order",
            )
        out = self.booster.inplace_predict(np.ascontiguousarray(X, dtype=np.float32), validate_features=False)
        return np.asarray(out, dtype=np.float64)

    def thresholds_for(self, frame: pl.DataFrame) -> float | npt.NDArray[np.float64]:
        """The threshold of each row: per-group if the model has them, else the single threshold."""
        groups = self.spec.group_thresholds
        if groups is None:
            return self.spec.threshold
        if groups.column not in frame.columns:
            raise ValidationError(
                "the per-group threshold column is missing",
                obj="scoring data",
                field=groups.column,
                fix="include the group column (it chooses each row's threshold)",
            )
        keys = frame[groups.column].cast(pl.String).fill_null("").to_list()
        fallback = self.spec.threshold if groups.default is None else groups.default
        return np.array([groups.thresholds.get(k, fallback) for k in keys], dtype=np.float64)

    def predict(self, data: Any) -> npt.NDArray[np.int64]:
        """1 where the probability reaches the row's decision threshold, else 0."""
        frame = as_polars(data)
        scores = self.predict_proba(frame)
        return (scores >= self.thresholds_for(frame)).astype(np.int64)

    def __repr__(self) -> str:
        return (
            f"TrainedModel({len(self.spec.features)} features, {self.spec.num_trees} trees, "
            f"threshold={self.spec.threshold:.4f}, booster={self.spec.booster_sha256[:12]})"
        )
