"""A registered model made ready for the request path: spec, compiled trees, threshold, explanations.

The artifact is the one `tideml.train` stores: a JSON `ModelSpec` (features in order with types, the
threshold and per-group thresholds, the booster's sha256, label, entity, fitted flows) whose booster is
a separate UBJSON artifact. Loading follows the spec and checks every link: the artifact store verifies
each file's hash, the booster must parse, and its feature count and names must match the spec. Anything
wrong raises `IntegrityError` with a message that says which file and what to do, so a corrupt model
stops an endpoint at start instead of answering wrongly.

Nothing here imports xgboost: the trees are evaluated by `CompiledTrees`; XGBoost is loaded lazily, once,
only for `explain` (its own TreeSHAP, `pred_contribs`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import orjson
import pydantic
from pydantic import BaseModel, ConfigDict, Field

from tideml.errors import IntegrityError, NotFound
from tideml.serving.treeeval import CompiledTrees
from tideml.serving.ubjson import decode_ubjson

__all__ = [
    "ArtifactReader",
    "ModelFeature",
    "ServingModel",
    "ServingSpec",
    "load_serving_model",
    "read_model_artifacts",
]

_SPEC_FORMAT = "tideml.model/1"
_BATCH_VECTORISE = 16  # from this many rows on, the vectorised walk beats one compiled call per row


class ArtifactReader(Protocol):
    """What loading needs from the artifact store: verified bytes by sha256."""

    def get(self, key: str) -> bytes: ...


class ModelFeature(BaseModel):
    """One model input: its name and type (int, float or bool)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    type: str = "float"


class _GroupThresholds(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    column: str
    thresholds: dict[str, float]


class ServingSpec(BaseModel):
    """The fields of a `tideml.train` model spec that serving uses (others are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    format: str = _SPEC_FORMAT
    features: list[ModelFeature] = Field(min_length=1)
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    group_thresholds: _GroupThresholds | None = None
    label: str | None = None
    entity: str | None = None
    booster_sha256: str | None = None
    fitted_flow_ids: list[str] = Field(default_factory=list)
    num_trees: int | None = None

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)


def _corrupt(
    name: str, what: str, fix: str = "restore the artifact or retrain and re-register the model"
) -> IntegrityError:
    return IntegrityError(what, obj=name, fix=fix)


def _parse_booster(raw: bytes, name: str) -> dict[str, Any]:
    """The booster's JSON document, from either of XGBoost's formats (JSON text or UBJSON)."""
    doc: Any
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        doc = decode_ubjson(raw, name=name)
    if not isinstance(doc, dict) or "learner" not in doc:
        raise _corrupt(name, "not an XGBoost model (no 'learner' section)")
    return doc


def read_model_artifacts(
    artifacts: ArtifactReader, model_sha256: str, *, name: str
) -> tuple[ServingSpec, bytes, dict[str, Any]]:
    """(spec, booster bytes, booster JSON document) of a registered model, every link checked.

    The registered artifact is normally the spec JSON; a bare XGBoost booster (JSON or UBJSON) with
    feature names is accepted too, with a 0.5 threshold and no entity.
    """
    try:
        raw = artifacts.get(model_sha256)
    except NotFound as exc:
        raise _corrupt(
            name, f"the model artifact {model_sha256[:12]}… is missing from the artifact store"
        ) from exc
    parsed: Any = None
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and "learner" not in parsed:
        if parsed.get("format", _SPEC_FORMAT) != _SPEC_FORMAT:
            raise _corrupt(name, f"unknown model format {parsed.get('format')!r}, expected {_SPEC_FORMAT!r}")
        try:
            spec = ServingSpec.model_validate(parsed)
        except pydantic.ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise IntegrityError(
                f"the model spec is invalid: {err['msg']}",
                obj=name,
                field=field or None,
                fix="the spec is corrupt or was edited; restore it or retrain the model",
            ) from exc
        if not spec.booster_sha256:
            raise _corrupt(name, "the model spec names no booster (booster_sha256)")
        try:
            booster_bytes = artifacts.get(spec.booster_sha256)
        except NotFound as exc:
            raise _corrupt(
                name, f"the booster {spec.booster_sha256[:12]}… is missing from the artifact store"
            ) from exc
        doc = _parse_booster(booster_bytes, f"{name} booster")
        return spec, booster_bytes, doc
    doc = parsed if isinstance(parsed, dict) else _parse_booster(raw, name)
    learner = doc.get("learner", {})
    names = learner.get("feature_names") if isinstance(learner, dict) else None
    if not names:
        raise _corrupt(
            name,
            "a bare booster without feature names cannot be served",
            fix="register the model with its tideml model spec (tideml.train does this)",
        )
    spec = ServingSpec(features=[ModelFeature(name=str(n)) for n in names])
    return spec, raw, doc


@dataclass(frozen=True)
class Reason:
    """One explanation term: a feature, its value and its contribution to the log-odds."""

    feature: str
    value: float | None
    contribution: float

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "value": self.value, "contribution": self.contribution}


class ServingModel:
    """One model version, loaded: feature order, trees, thresholds and (lazily) the XGBoost explainer."""

    def __init__(
        self,
        *,
        group: str,
        version: int,
        model_sha256: str,
        spec: ServingSpec,
        booster_bytes: bytes,
        booster_doc: dict[str, Any],
    ) -> None:
        self.group = group
        self.version = version
        self.model_sha256 = model_sha256
        self.spec = spec
        self.ref = f"{group}/{version}"
        self.features: tuple[str, ...] = spec.feature_names
        self.index = {f: i for i, f in enumerate(self.features)}
        self.bool_features = frozenset(f.name for f in spec.features if f.type == "bool")
        self.threshold = float(spec.threshold)
        self.entity = spec.entity
        self.label = spec.label
        self._booster_bytes = booster_bytes
        try:
            self.trees = CompiledTrees(booster_doc)
        except IntegrityError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise _corrupt(
                self.ref, f"the booster is not a valid XGBoost tree model ({type(exc).__name__}: {exc})"
            ) from exc
        if self.trees.num_features != len(self.features):
            raise _corrupt(
                self.ref,
                f"the booster has {self.trees.num_features} features, the spec lists {len(self.features)}",
                fix="the spec and booster do not belong together; re-register the model tideml.train wrote",
            )
        if self.trees.feature_names and tuple(self.trees.feature_names) != self.features:
            raise _corrupt(
                self.ref,
                "the booster's feature names differ from the spec's feature order",
                fix="the spec and booster do not belong together; re-register the model tideml.train wrote",
            )
        if self.label is not None and self.label in self.index:
            raise IntegrityError(
                f"the label {self.label!r} is one of the model's features",
                obj=self.ref,
                field="features",
                fix="retrain without the label as a feature: it is never available at serving time",
            )
        gt = spec.group_thresholds
        self.group_column: int | None = self.index.get(gt.column) if gt is not None else None
        self.group_thresholds: dict[str, float] = dict(gt.thresholds) if gt is not None else {}
        self._explainer: Any = None
        self._explainer_lock = threading.Lock()

    # -- scoring -----------------------------------------------------------------------------------
    def predict_rows(self, rows: Sequence[Sequence[float | None]]) -> list[float]:
        """P(positive) per row; rows are lists in the model's feature order (None = missing)."""
        if len(rows) < _BATCH_VECTORISE:
            return [self.trees.predict_proba_row(r) for r in rows]
        matrix = np.array([[math.nan if v is None else v for v in r] for r in rows], dtype=np.float32)
        return [float(p) for p in self.trees.predict_proba(matrix)]

    def predict_matrix(self, matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """P(positive) per row of a float32 matrix in the model's feature order (NaN = missing)."""
        return self.trees.predict_proba(matrix)

    def threshold_for(self, row: Sequence[float | None]) -> float:
        """The decision threshold of one row (per-group if the model has them)."""
        if self.group_column is None:
            return self.threshold
        value = row[self.group_column]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return self.threshold
        key = str(value)
        if key not in self.group_thresholds and float(value).is_integer():
            key = str(int(value))
        return self.group_thresholds.get(key, self.threshold)

    # -- explanations ------------------------------------------------------------------------------
    def _booster(self) -> Any:
        if self._explainer is None:
            with self._explainer_lock:
                if self._explainer is None:
                    import xgboost as xgb  # only for explanations: importing it costs about a second

                    booster = xgb.Booster()
                    try:
                        booster.load_model(bytearray(self._booster_bytes))
                    except xgb.core.XGBoostError as exc:
                        raise _corrupt(self.ref, f"XGBoost cannot read the booster: {exc}") from exc
                    booster.set_param({"nthread": 1})
                    self._explainer = (xgb, booster)
        return self._explainer

    def warm_explainer(self) -> None:
        """Load XGBoost and the booster now (done in the background at start)."""
        self._booster()

    def contributions(self, matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """XGBoost's exact TreeSHAP values (log-odds), one row per input row; last column is the bias."""
        xgb, booster = self._booster()
        dm = xgb.DMatrix(matrix, missing=np.nan, feature_names=list(self.features), nthread=1)
        out: npt.NDArray[np.float32] = booster.predict(dm, pred_contribs=True, validate_features=False)
        return out

    def explain_rows(self, rows: Sequence[Sequence[float | None]], top_k: int) -> list[list[Reason]]:
        """The top-k reasons (largest |contribution|) of each row."""
        matrix = np.array([[math.nan if v is None else v for v in r] for r in rows], dtype=np.float32)
        contribs = self.contributions(matrix)
        out: list[list[Reason]] = []
        for r, phi in zip(rows, contribs, strict=True):
            terms = phi[:-1]
            order = np.argsort(-np.abs(terms), kind="stable")[:top_k]
            out.append(
                [
                    Reason(self.features[i], None if r[i] is None else float(r[i]), round(float(terms[i]), 6))
                    for i in order
                ]
            )
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.ref,
            "model_sha256": self.model_sha256,
            "features": len(self.features),
            "trees": len(self.trees.trees),
            "threshold": self.threshold,
            "entity": self.entity,
        }

    def __repr__(self) -> str:
        return f"ServingModel({self.ref}, {len(self.features)} features, threshold={self.threshold:.4f})"


def load_serving_model(
    artifacts: ArtifactReader, *, group: str, version: int, model_sha256: str
) -> ServingModel:
    """Load and check one registered model version (IntegrityError if anything is corrupt)."""
    name = f"model {group}/{version}"
    spec, booster_bytes, doc = read_model_artifacts(artifacts, model_sha256, name=name)
    return ServingModel(
        group=group,
        version=version,
        model_sha256=model_sha256,
        spec=spec,
        booster_bytes=booster_bytes,
        booster_doc=doc,
    )
