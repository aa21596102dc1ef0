"""A fast evaluator for XGBoost binary models, built from the model's own JSON.

XGBoost's per-call overhead for one row is several hundred microseconds; a request path that scores one
claim cannot afford it. At load time each tree becomes nested Python `if` statements, compiled once into
one function, so scoring a row costs a few microseconds. Batches use a vectorised NumPy walk.

Exactness: XGBoost compares float32 features against float32 thresholds (`x < threshold` goes left,
a missing value follows `default_left`), sums leaf values and adds the base margin. We round inputs to
float32 the same way (one `array('f', …)` call), so probabilities match `Booster.predict` to ~1e-7.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from tideml.errors import ValidationError

__all__ = ["CompiledTrees", "sigmoid"]

_MAX_CODEGEN_NODES = 400_000  # beyond this, compile time and code size outgrow the gain


@dataclass(frozen=True)
class _Tree:
    left: npt.NDArray[np.int64]
    right: npt.NDArray[np.int64]
    feature: npt.NDArray[np.int64]
    threshold: npt.NDArray[np.float32]
    default_left: npt.NDArray[np.bool_]

    @property
    def leaf_value(self) -> npt.NDArray[np.float32]:
        return self.threshold  # XGBoost stores a leaf's value in split_conditions


def sigmoid(m: float) -> float:
    """1 / (1 + e^-m) without overflow for very negative margins."""
    if m < -700.0:
        return math.exp(m)  # 1 / (1 + e^-m) == e^m to double precision here
    return 1.0 / (1.0 + math.exp(-m))


def _parse_base_score(text: str) -> float:
    return float(re.sub(r"[\[\]]", "", text))


def _error(msg: str, fix: str) -> ValidationError:
    return ValidationError(msg, obj="model", field="trees", fix=fix)


class CompiledTrees:
    """A binary:logistic XGBoost model compiled for single-row and batch scoring."""

    def __init__(self, model_json: dict[str, Any], *, n_trees: int | None = None) -> None:
        learner = model_json["learner"]
        objective = learner["objective"]["name"]
        if objective != "binary:logistic":
            raise _error(f"objective {objective!r} is not supported", "train with objective binary:logistic")
        booster = learner["gradient_booster"]
        if booster.get("name", "gbtree") != "gbtree":
            raise _error(f"booster {booster.get('name')!r} is not supported", "use the gbtree booster")
        trees_json = booster["model"]["trees"]
        if n_trees is not None:
            trees_json = trees_json[:n_trees]
        self.feature_names: list[str] = list(learner.get("feature_names") or [])
        self.num_features = int(learner["learner_model_param"]["num_feature"])
        base = _parse_base_score(learner["learner_model_param"]["base_score"])
        self.base_margin = math.log(base / (1.0 - base))
        self.trees: list[_Tree] = []
        for t in trees_json:
            if any(t.get("split_type", [])):
                raise _error("categorical splits are not supported", "one-hot categorical features instead")
            self.trees.append(
                _Tree(
                    left=np.asarray(t["left_children"], dtype=np.int64),
                    right=np.asarray(t["right_children"], dtype=np.int64),
                    feature=np.asarray(t["split_indices"], dtype=np.int64),
                    threshold=np.asarray(t["split_conditions"], dtype=np.float32),
                    default_left=np.asarray(t["default_left"], dtype=bool),
                )
            )
        nodes = sum(len(t.left) for t in self.trees)
        self._row_margin = self._compile() if nodes <= _MAX_CODEGEN_NODES else self._walk_row

    @classmethod
    def from_json_bytes(cls, raw: bytes, *, n_trees: int | None = None) -> CompiledTrees:
        return cls(orjson.loads(raw), n_trees=n_trees)

    @classmethod
    def from_booster(cls, booster: Any, *, n_trees: int | None = None) -> CompiledTrees:
        """From an `xgboost.Booster` (serialised to JSON once)."""
        return cls.from_json_bytes(bytes(booster.save_raw(raw_format="json")), n_trees=n_trees)

    # -- code generation ---------------------------------------------------------------------------
    def _compile(self) -> Callable[[Sequence[float]], float]:
        """Emit `def margin(x): …` with one nested if/else block per tree; only numbers are emitted."""
        lines = ["def margin(x):", f"    m = {self.base_margin!r}"]

        def emit(tree: _Tree, node: int, indent: str) -> None:
            if tree.left[node] == -1:
                lines.append(f"{indent}m += {float(tree.leaf_value[node])!r}")
                return
            f, thr = int(tree.feature[node]), float(tree.threshold[node])
            # NaN fails every comparison, so the missing branch is the one the comparison cannot reach.
            cond = f"not (x[{f}] >= {thr!r})" if tree.default_left[node] else f"x[{f}] < {thr!r}"
            lines.append(f"{indent}if {cond}:")
            emit(tree, int(tree.left[node]), indent + "    ")
            lines.append(f"{indent}else:")
            emit(tree, int(tree.right[node]), indent + "    ")

        for tree in self.trees:
            emit(tree, 0, "    ")
        lines.append("    return m")
        namespace: dict[str, Any] = {}
        exec(compile("\n".join(lines), "<tideml-trees>", "exec"), namespace)
        fn: Callable[[Sequence[float]], float] = namespace["margin"]
        return fn

    def _walk_row(self, x: Sequence[float]) -> float:
        m = self.base_margin
        for t in self.trees:
            node = 0
            while t.left[node] != -1:
                v = x[int(t.feature[node])]
                go_left = bool(t.default_left[node]) if math.isnan(v) else v < t.threshold[node]
                node = int(t.left[node] if go_left else t.right[node])
            m += float(t.leaf_value[node])
        return m

    # -- scoring -----------------------------------------------------------------------------------
    def margin_row(self, values: Sequence[float | None]) -> float:
        """The raw margin of one row given in feature order (None or NaN = missing)."""
        if len(values) != self.num_features:
            raise ValidationError(
                f"expected {self.num_features} features, got {len(values)}",
                obj="model input",
                field="features",
                fix="pass the features in the model's order",
            )
        row = array("f", [math.nan if v is None else v for v in values])  # float32, as XGBoost sees it
        return self._row_margin(row)

    def predict_proba_row(self, values: Sequence[float | None]) -> float:
        """P(label = 1) for one row."""
        return sigmoid(self.margin_row(values))

    def predict_proba(self, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """P(label = 1) for a 2-D array of rows (vectorised over rows, tree by tree)."""
        data = np.asarray(x, dtype=np.float32)
        if data.ndim != 2 or data.shape[1] != self.num_features:
            raise ValidationError(
                f"expected shape (n, {self.num_features}), got {data.shape}",
                obj="model input",
                field="features",
                fix="pass the features in the model's order",
            )
        margin = np.full(len(data), self.base_margin, dtype=np.float64)
        rows = np.arange(len(data))
        for t in self.trees:
            node = np.zeros(len(data), dtype=np.int64)
            active = t.left[node] != -1
            while active.any():
                idx = rows[active]
                n = node[idx]
                v = data[idx, t.feature[n]]
                go_left = np.where(np.isnan(v), t.default_left[n], v < t.threshold[n])
                node[idx] = np.where(go_left, t.left[n], t.right[n])
                active = t.left[node] != -1
            margin += t.leaf_value[node]
        # The same scalar sigmoid as the row path, so batch and record answers are bit-identical.
        return np.array([sigmoid(m) for m in margin.tolist()], dtype=np.float64)
