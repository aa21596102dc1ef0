"""Models as Clarify sees them: something that scores rows. An XGBoost Booster (object or JSON/UBJSON
file) or any predict function; no dependency on `tideml.train`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import xgboost as xgb

from tideml.errors import NotFound, ValidationError

__all__ = ["THRESHOLD_ATTRIBUTES", "Model", "as_model", "load_booster"]

PredictFn = Callable[[Any], Any]
# Booster attributes that may carry the validated decision threshold (tideml.train writes one of them).
THRESHOLD_ATTRIBUTES = ("decision_threshold", "threshold")


def load_booster(path: str | Path) -> xgb.Booster:
    """Load an XGBoost model file (.json or .ubj); never pickle."""
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"no model file at {p}", obj="model", fix="pass an XGBoost .json or .ubj model file")
    if p.suffix.lower() not in (".json", ".ubj", ".ubjson"):
        raise ValidationError(
            f"{p.name} is not an XGBoost JSON/UBJSON model",
            obj="model",
            fix="save the model with booster.save_model('model.json') (or .ubj); pickles are never loaded",
        )
    booster = xgb.Booster()
    try:
        booster.load_model(str(p))
    except xgb.core.XGBoostError as exc:
        raise ValidationError(
            f"cannot load {p.name}: {str(exc).splitlines()[0]}",
            obj="model",
            fix="pass a model saved by XGBoost's save_model",
        ) from None
    return booster


class Model:
    """A scoring model: `predict(frame) -> scores` (probability of the positive class for classifiers)."""

    def __init__(
        self,
        *,
        booster: xgb.Booster | None = None,
        predict_fn: PredictFn | None = None,
        feature_names: Sequence[str] | None = None,
        name: str = "model",
        threshold: float | None = None,
    ) -> None:
        if (booster is None) == (predict_fn is None):
            raise ValidationError(
                "give exactly one of a booster or a predict function", obj="model", fix="pass one of them"
            )
        self.booster = booster
        self.predict_fn = predict_fn
        names = feature_names if feature_names is not None else (booster.feature_names if booster else None)
        self.feature_names: list[str] | None = list(names) if names is not None else None
        self.name = name
        self._threshold = threshold

    @property
    def decision_threshold(self) -> float | None:
        """The validated decision threshold (given, or stored as a booster attribute), if any."""
        if self._threshold is not None:
            return self._threshold
        if self.booster is None:
            return None
        for attr in THRESHOLD_ATTRIBUTES:
            value = self.booster.attr(attr)
            if value is not None:
                try:
                    return float(value)
                except ValueError:
                    continue
        return None

    def features_of(self, frame: pd.DataFrame, exclude: Sequence[str] = ()) -> pd.DataFrame:
        """The model's input columns, in the model's order."""
        if self.feature_names is not None:
            missing = [c for c in self.feature_names if c not in frame.columns]
            if missing:
                raise ValidationError(
                    f"the data lacks {len(missing)} model feature(s): {', '.join(missing[:8])}",
                    obj=f"model {self.name}",
                    field="features",
                    fix="pass data with the columns the model was trained on (same names)",
                )
            return frame[self.feature_names]
        cols = [c for c in frame.columns if c not in set(exclude)]
        if self.booster is not None and len(cols) != self.booster.num_features():
            raise ValidationError(
                f"the model expects {self.booster.num_features()} features, the data has {len(cols)}",
                obj=f"model {self.name}",
                field="features",
                fix="list the label and other non-feature columns in excluded_columns",
            )
        return frame[cols]

    def predict(self, x: pd.DataFrame | npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """Scores for every row (for XGBoost: the objective's output, e.g. a probability)."""
        if self.booster is not None:
            if isinstance(x, pd.DataFrame) and any(isinstance(t, pd.CategoricalDtype) for t in x.dtypes):
                dm = xgb.DMatrix(x, enable_categorical=True)
                return np.asarray(self.booster.predict(dm), dtype=np.float64)
            arr = x.to_numpy(dtype=np.float32) if isinstance(x, pd.DataFrame) else np.asarray(x, np.float32)
            return np.asarray(self.booster.inplace_predict(arr, validate_features=False), dtype=np.float64)
        assert self.predict_fn is not None
        out = np.asarray(self.predict_fn(x), dtype=np.float64)
        if out.ndim == 2 and out.shape[1] == 2:
            out = out[:, 1]
        return out


def as_model(obj: Any, *, feature_names: Sequence[str] | None = None, name: str | None = None) -> Model:
    """A `Model` from a Booster, an XGBoost sklearn estimator, a model file path, or a predict function."""
    if isinstance(obj, Model):
        return obj
    if isinstance(obj, xgb.Booster):
        return Model(booster=obj, feature_names=feature_names, name=name or "booster")
    if isinstance(obj, str | Path):
        return Model(booster=load_booster(obj), feature_names=feature_names, name=name or Path(obj).name)
    inner = getattr(obj, "booster", None)
    if isinstance(inner, xgb.Booster):  # a trained-model wrapper (e.g. tideml.train's) with a spec
        spec = getattr(obj, "spec", None)
        names = feature_names or getattr(spec, "feature_names", None)
        threshold = getattr(spec, "threshold", None)
        return Model(
            booster=inner,
            feature_names=list(names) if names is not None else None,
            name=str(name or type(obj).__name__),
            threshold=float(threshold) if isinstance(threshold, int | float) else None,
        )
    get_booster = getattr(obj, "get_booster", None)
    if callable(get_booster):
        return Model(booster=get_booster(), feature_names=feature_names, name=name or type(obj).__name__)
    proba = getattr(obj, "predict_proba", None)
    if callable(proba):
        return Model(predict_fn=proba, feature_names=feature_names, name=name or type(obj).__name__)
    if callable(obj):
        return Model(
            predict_fn=obj, feature_names=feature_names, name=str(name or getattr(obj, "__name__", "fn"))
        )
    raise ValidationError(
        f"cannot use a {type(obj).__name__} as a model",
        obj="model",
        fix="pass an xgboost Booster, a .json/.ubj model path, or a function rows -> scores",
    )
