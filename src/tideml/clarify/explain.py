"""Explanations: exact TreeSHAP from XGBoost itself, Kernel SHAP (via `shap`) for any model.

- `TreeShapExplainer`: `Booster.predict(pred_contribs=True)` is exact path-dependent TreeSHAP in the
  margin (log-odds) space; rows sum to the margin. `pred_interactions=True` gives interaction values.
  `explain_record` is the request-path variant for one row.
- `KernelShapExplainer`: Clarify's model-agnostic path. Baseline: explicit rows, per-column medians
  (what the article used) or k-means centres; `num_samples` coalitions per row; optional logit link.
- `Explanation`: local values, expected value, global aggregation (`mean_abs`, `mean_sq`, `median`)
  and Clarify's explanation layout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import xgboost as xgb

from tideml._progress import progress_bar
from tideml.clarify.model import Model, as_model
from tideml.errors import ValidationError

__all__ = [
    "AggMethod",
    "Explanation",
    "KernelShapExplainer",
    "RecordExplanation",
    "TreeShapExplainer",
    "aggregate",
    "kernel_num_samples",
]

AggMethod = Literal["mean_abs", "mean_sq", "median"]
FloatArray = npt.NDArray[np.float64]


def aggregate(values: FloatArray, method: AggMethod = "mean_abs") -> FloatArray:
    """Global value per feature: mean |phi| (default), mean phi^2, or median phi, as Clarify defines them."""
    if method == "mean_abs":
        return np.asarray(np.abs(values).mean(axis=0), dtype=np.float64)
    if method == "mean_sq":
        return np.asarray((values**2).mean(axis=0), dtype=np.float64)
    if method == "median":
        return np.asarray(np.median(values, axis=0), dtype=np.float64)
    raise ValidationError(
        f"unknown aggregation {method!r}",
        obj="methods.shap",
        field="agg_method",
        fix="use mean_abs, mean_sq or median",
    )


@dataclass
class Explanation:
    """Local SHAP values of many rows and how to summarise them."""

    method: Literal["tree_shap", "kernel_shap"]
    feature_names: list[str]
    values: FloatArray
    expected_value: float
    data: FloatArray | None = None
    output: str = "margin"
    interactions: FloatArray | None = None
    row_ids: list[Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def global_values(self, method: AggMethod = "mean_abs") -> dict[str, float]:
        """Feature → aggregated value, in feature order."""
        agg = aggregate(self.values, method)
        return {f: float(v) for f, v in zip(self.feature_names, agg, strict=True)}

    def ranking(self, method: AggMethod = "mean_abs") -> list[str]:
        """Features by decreasing aggregated value (ties broken by feature order)."""
        g = self.global_values(method)
        return sorted(g, key=lambda f: (-abs(g[f]), self.feature_names.index(f)))

    def clarify(self, method: AggMethod = "mean_abs", label: str = "label0") -> dict[str, Any]:
        """`{label0: {global_shap_values, expected_value}}` as Clarify writes it."""
        return {
            label: {"global_shap_values": self.global_values(method), "expected_value": self.expected_value}
        }

    def local_frame(self) -> pd.DataFrame:
        """One row per explained row, one column per feature (Clarify's `explanations_shap/out.csv`)."""
        frame = pd.DataFrame(self.values, columns=self.feature_names)
        if self.row_ids is not None:
            frame.insert(0, "id", self.row_ids)
        return frame

    def additivity_error(self, outputs: FloatArray) -> float:
        """max |Σ phi + expected - output| over rows."""
        return float(np.max(np.abs(self.values.sum(axis=1) + self.expected_value - outputs)))


@dataclass(frozen=True)
class RecordExplanation:
    """One row's explanation: contributions (margin space), bias, margin and the model's output."""

    contributions: dict[str, float]
    expected_value: float
    margin: float
    prediction: float

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The k largest contributions by magnitude."""
        items = sorted(self.contributions.items(), key=lambda kv: -abs(kv[1]))
        return items[:k]


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


class TreeShapExplainer:
    """Exact TreeSHAP for an XGBoost model through XGBoost's own `pred_contribs`."""

    def __init__(self, model: xgb.Booster | Model | str | Any, feature_names: Sequence[str] | None = None):
        m = as_model(model, feature_names=feature_names)
        if m.booster is None:
            raise ValidationError(
                "TreeSHAP needs an XGBoost model",
                obj=f"model {m.name}",
                fix="use KernelShapExplainer for other models",
            )
        self.model = m
        self.booster: xgb.Booster = m.booster
        names = m.feature_names or [f"f{i}" for i in range(self.booster.num_features())]
        self.feature_names: list[str] = list(names)
        self._index = {f: i for i, f in enumerate(self.feature_names)}
        self._categorical = any(t == "c" for t in (self.booster.feature_types or []))
        # A private single-threaded copy for one-row requests: thread start-up dominates one row.
        self._single = self.booster.copy()
        self._single.set_param({"nthread": 1})
        objective = str(self.booster.save_config())
        self._logistic = '"binary:logistic"' in objective or '"reg:logistic"' in objective
        self._expected: float | None = None
        self._names_tuple = list(self.feature_names)
        self._types = self.booster.feature_types

    # -- batch ------------------------------------------------------------------------------------------
    def _dmatrix(self, x: pd.DataFrame | npt.NDArray[Any]) -> xgb.DMatrix:
        if isinstance(x, pd.DataFrame):
            frame = self.model.features_of(x) if self.model.feature_names else x
            return xgb.DMatrix(frame, enable_categorical=True, feature_names=self.feature_names)
        arr = np.asarray(x, dtype=np.float32)
        return xgb.DMatrix(arr, feature_names=self.feature_names, feature_types=self.booster.feature_types)

    @property
    def expected_value(self) -> float:
        """The bias term of TreeSHAP: the expected margin over the training distribution."""
        if self._expected is None:
            row = np.zeros((1, len(self.feature_names)), dtype=np.float32)
            if self._categorical:
                row[:] = np.nan
            contribs = self._single.predict(
                xgb.DMatrix(row, feature_names=self.feature_names, feature_types=self.booster.feature_types),
                pred_contribs=True,
            )
            self._expected = float(contribs[0, -1])
        return self._expected

    def explain(
        self,
        x: pd.DataFrame | npt.NDArray[Any],
        *,
        interactions: bool = False,
        batch_size: int = 10_000,
        progress: bool = True,
        row_ids: Sequence[Any] | None = None,
    ) -> Explanation:
        """SHAP values of every row (margin space); `interactions=True` adds (M+1)^2 values per row."""
        n = len(x)
        values = np.empty((n, len(self.feature_names)), dtype=np.float64)
        bias = 0.0
        inter: FloatArray | None = None
        if interactions:
            inter = np.empty((n, len(self.feature_names) + 1, len(self.feature_names) + 1), dtype=np.float64)
        with progress_bar("TreeSHAP", total=n, enabled=progress and n > 20_000) as bar:
            for start in range(0, n, batch_size):
                part = (
                    x.iloc[start : start + batch_size]
                    if isinstance(x, pd.DataFrame)
                    else x[start : start + batch_size]
                )
                dm = self._dmatrix(part)
                contribs = self.booster.predict(dm, pred_contribs=True)
                values[start : start + len(part)] = contribs[:, :-1]
                bias = float(contribs[0, -1]) if len(part) else bias
                if inter is not None:
                    inter[start : start + len(part)] = self.booster.predict(dm, pred_interactions=True)
                bar.advance(len(part))
        data = None
        if isinstance(x, pd.DataFrame):
            frame = self.model.features_of(x) if self.model.feature_names else x
            data = _numeric_view(frame)
        else:
            data = np.asarray(x, dtype=np.float64)
        self._expected = bias if n else self._expected
        return Explanation(
            "tree_shap",
            list(self.feature_names),
            values,
            bias if n else self.expected_value,
            data=data,
            output="margin (log-odds)" if self._logistic else "margin",
            interactions=inter,
            row_ids=list(row_ids) if row_ids is not None else None,
            settings={"algorithm": "xgboost pred_contribs (exact, path-dependent TreeSHAP)"},
        )

    def interaction_values(self, x: pd.DataFrame | npt.NDArray[Any]) -> FloatArray:
        """SHAP interaction values `[row, M+1, M+1]` (last row/column: bias); compute on samples."""
        return np.asarray(self.booster.predict(self._dmatrix(x), pred_interactions=True), dtype=np.float64)

    def margin(self, x: pd.DataFrame | npt.NDArray[Any]) -> FloatArray:
        """The model's raw margin for each row."""
        return np.asarray(self.booster.predict(self._dmatrix(x), output_margin=True), dtype=np.float64)

    # -- one record ---------------------------------------------------------------------------------------
    def explain_record(
        self, record: Mapping[str, Any] | Sequence[float] | npt.NDArray[Any]
    ) -> RecordExplanation:
        """Explain one row (a mapping feature → value, or values in feature order); request-path fast."""
        if self._categorical:
            frame = pd.DataFrame([dict(record)] if isinstance(record, Mapping) else [list(record)])
            if not isinstance(record, Mapping):
                frame.columns = self.feature_names
            dm = xgb.DMatrix(frame[self.feature_names], enable_categorical=True, nthread=1)
        else:
            row = np.empty((1, len(self.feature_names)), dtype=np.float32)
            if isinstance(record, Mapping):
                row.fill(np.nan)
                for k, v in record.items():
                    i = self._index.get(k)
                    if i is not None:
                        row[0, i] = np.nan if v is None else v
            else:
                row[0, :] = np.asarray(record, dtype=np.float32)
            dm = xgb.DMatrix(row, feature_names=self._names_tuple, feature_types=self._types, nthread=1)
        contribs = self._single.predict(dm, pred_contribs=True)[0]
        phi = contribs[:-1].astype(np.float64)
        bias = float(contribs[-1])
        margin = float(phi.sum() + bias)
        prediction = _sigmoid(margin) if self._logistic else margin
        return RecordExplanation(
            dict(zip(self.feature_names, phi.tolist(), strict=True)), bias, margin, prediction
        )


def _numeric_view(frame: pd.DataFrame) -> FloatArray:
    out = np.empty(frame.shape, dtype=np.float64)
    for j, c in enumerate(frame.columns):
        s = frame[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            out[:, j] = s.cat.codes.to_numpy(dtype=np.float64)
        else:
            out[:, j] = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def kernel_num_samples(n_features: int, num_samples: int | None) -> int:
    """Coalitions per row as Clarify counts them: min(num_samples or 2M + 2048, 2^M - 2)."""
    cap = 2**n_features - 2 if n_features < 62 else 2**62
    wanted = num_samples if num_samples is not None else 2 * n_features + 2048
    return max(1, min(wanted, cap))


class KernelShapExplainer:
    """Kernel SHAP (shap.KernelExplainer) for any model, with Clarify's baseline and sampling options."""

    def __init__(
        self,
        model: Model | Callable[[Any], Any] | xgb.Booster | str,
        data: pd.DataFrame | npt.NDArray[Any] | None = None,
        *,
        baseline: pd.DataFrame | npt.NDArray[Any] | Sequence[Sequence[Any]] | Literal["median"] | None = None,
        num_clusters: int | None = None,
        num_samples: int | None = None,
        use_logit: bool = False,
        seed: int | None = 0,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        import shap

        self.model = as_model(model, feature_names=feature_names)
        names = feature_names or self.model.feature_names
        if names is None and isinstance(data, pd.DataFrame):
            names = list(data.columns)
        if names is None:
            raise ValidationError(
                "feature names are unknown",
                obj="KernelShapExplainer",
                fix="pass feature_names or a DataFrame",
            )
        self.feature_names = list(names)
        background = self._baseline(data, baseline, num_clusters, seed)
        self.baseline = background
        self.num_samples = num_samples
        self.seed = seed
        self.use_logit = use_logit

        def predict(rows: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
            frame = pd.DataFrame(np.asarray(rows, dtype=np.float64), columns=self.feature_names)
            return self.model.predict(frame)

        self._predict = predict
        if num_clusters is not None and data is not None:
            bg: Any = shap.kmeans(self._matrix(data), num_clusters)
        else:
            bg = background
        self._explainer = shap.KernelExplainer(predict, bg, link="logit" if use_logit else "identity")
        self.expected_value = float(np.ravel(self._explainer.expected_value)[0])

    def _matrix(self, x: pd.DataFrame | npt.NDArray[Any] | Sequence[Sequence[Any]]) -> FloatArray:
        if isinstance(x, pd.DataFrame):
            cols = [c for c in self.feature_names if c in x.columns]
            if len(cols) != len(self.feature_names):
                missing = [c for c in self.feature_names if c not in x.columns]
                raise ValidationError(
                    f"missing feature columns {', '.join(missing[:8])}",
                    obj="KernelShapExplainer",
                    fix="pass rows with every model feature",
                )
            return _numeric_view(x[self.feature_names])
        arr = np.asarray(x, dtype=np.float64)
        return arr.reshape(1, -1) if arr.ndim == 1 else arr

    def _baseline(
        self,
        data: pd.DataFrame | npt.NDArray[Any] | None,
        baseline: Any,
        num_clusters: int | None,
        seed: int | None,
    ) -> FloatArray:
        if baseline is None or (isinstance(baseline, str) and baseline == "median"):
            if data is None:
                raise ValidationError(
                    "a median baseline needs data",
                    obj="methods.shap",
                    field="baseline",
                    fix="pass data, or give baseline rows explicitly",
                )
            return np.asarray(np.nanmedian(self._matrix(data), axis=0, keepdims=True), dtype=np.float64)
        if isinstance(baseline, str):
            raise ValidationError(
                f"baseline {baseline!r} is not supported",
                obj="methods.shap",
                field="baseline",
                fix='use "median", inline rows, or a local file read into a frame',
            )
        if isinstance(baseline, Sequence) and baseline and isinstance(baseline[0], Mapping):
            baseline = pd.DataFrame(list(baseline))
        matrix = self._matrix(baseline)
        if matrix.shape[1] != len(self.feature_names):
            raise ValidationError(
                f"baseline rows have {matrix.shape[1]} values for {len(self.feature_names)} features",
                obj="methods.shap",
                field="baseline",
                fix="give one value per model feature, in the model's feature order",
            )
        return matrix

    def explain(
        self,
        x: pd.DataFrame | npt.NDArray[Any],
        *,
        progress: bool = True,
        row_ids: Sequence[Any] | None = None,
    ) -> Explanation:
        """Kernel SHAP values of every row (in the link space: probability, or log-odds with use_logit)."""
        matrix = self._matrix(x)
        nsamples = kernel_num_samples(len(self.feature_names), self.num_samples)
        out = np.empty(matrix.shape, dtype=np.float64)
        state = np.random.get_state()
        try:
            if self.seed is not None:
                np.random.seed(self.seed)
            with progress_bar("Kernel SHAP", total=len(matrix), enabled=progress and len(matrix) > 5) as bar:
                for i in range(len(matrix)):
                    phi = self._explainer.shap_values(matrix[i : i + 1], nsamples=nsamples, silent=True)
                    out[i] = np.asarray(phi, dtype=np.float64).reshape(-1)[: len(self.feature_names)]
                    bar.advance(1)
        finally:
            np.random.set_state(state)
        return Explanation(
            "kernel_shap",
            list(self.feature_names),
            out,
            self.expected_value,
            data=matrix,
            output="log-odds" if self.use_logit else "probability",
            row_ids=list(row_ids) if row_ids is not None else None,
            settings={
                "num_samples": nsamples,
                "baseline_rows": int(self.baseline.shape[0]),
                "use_logit": self.use_logit,
                "seed": self.seed,
            },
        )

    def explain_record(self, record: Mapping[str, Any] | Sequence[float]) -> RecordExplanation:
        """Explain one row with Kernel SHAP (slow: baseline rows x num_samples model calls)."""
        if isinstance(record, Mapping):
            row = np.array([[float(record.get(f, np.nan)) for f in self.feature_names]])
        else:
            row = np.asarray(record, dtype=np.float64).reshape(1, -1)
        e = self.explain(row, progress=False)
        pred = float(self._predict(row)[0])
        contributions = dict(zip(self.feature_names, e.values[0].tolist(), strict=True))
        total = float(e.values[0].sum() + e.expected_value)
        return RecordExplanation(contributions, e.expected_value, total, pred)
