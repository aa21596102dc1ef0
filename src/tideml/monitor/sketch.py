"""A KLL-style quantile sketch: compact, mergeable, and serialisable in Model Monitor's `statistics.json`.

Items at level `h` stand for `2**h` original values. Building from sorted data compacts level by level
(keep every other item from a seeded offset) until at most `k` items remain, leaving the odd item of each
level behind, so the weights always sum to the number of values exactly and the rank error stays below
about `2 n / k`. Small inputs (`n <= k`) are kept exactly.

The layout is Model Monitor's `distribution.kll.sketch`: `{"parameters": {"c": c, "k": k}, "data": [[level 0
items], [level 1 items], ...]}`. Sketches written by other tools are read with the same level weights; when
their weights do not sum to the recorded count, the CDF is normalised by the total weight instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_C", "DEFAULT_K", "QuantileSketch"]

FloatArray = npt.NDArray[np.float64]
DEFAULT_K = 2048
DEFAULT_C = 0.64


@dataclass(frozen=True)
class QuantileSketch:
    """Weighted sorted items summarising a numeric column: `values[i]` stands for `weights[i]` values."""

    values: FloatArray
    weights: FloatArray
    levels: tuple[FloatArray, ...]
    k: int = DEFAULT_K
    c: float = DEFAULT_C

    # -- construction ----------------------------------------------------------------------------------
    @classmethod
    def from_sorted(
        cls, data: FloatArray, *, k: int = DEFAULT_K, c: float = DEFAULT_C, seed: int = 0
    ) -> QuantileSketch:
        """Sketch of already sorted, finite values (the caller sorts once and reuses the array)."""
        rng = np.random.default_rng(seed)
        level = np.asarray(data, dtype=np.float64)
        levels: list[FloatArray] = []
        while level.size > k:
            if level.size % 2:
                # the odd item stays behind at this level; drop the one nearest the middle so the extremes
                # survive to the top level
                mid = level.size // 2
                levels.append(level[mid : mid + 1].copy())
                level = np.concatenate([level[:mid], level[mid + 1 :]])
            else:
                levels.append(np.empty(0, dtype=np.float64))
            level = level[int(rng.integers(0, 2)) :: 2]
        levels.append(np.ascontiguousarray(level))
        return cls._from_levels(levels, k=k, c=c)

    @classmethod
    def _from_levels(cls, levels: Sequence[FloatArray], *, k: int, c: float) -> QuantileSketch:
        parts = [np.asarray(lv, dtype=np.float64) for lv in levels]
        values = np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)
        weights = np.concatenate([np.full(p.size, 2.0**h) for h, p in enumerate(parts)]) if parts else values
        order = np.argsort(values, kind="stable")
        return cls(values[order], weights[order], tuple(parts), k=k, c=c)

    @classmethod
    def from_json(cls, sketch: Mapping[str, Any], *, count: int | None = None) -> QuantileSketch:
        """Read Model Monitor's `kll.sketch` block (already validated to lists of numbers)."""
        params = sketch.get("parameters") or {}
        data = [np.asarray(level, dtype=np.float64) for level in sketch.get("data") or []]
        k = int(params.get("k", DEFAULT_K))
        c = float(params.get("c", DEFAULT_C))
        forward = cls._from_levels(data, k=k, c=c)
        if count is not None and data:
            # Other writers may list the top level first; pick the order whose weights match the count.
            backward = cls._from_levels(data[::-1], k=k, c=c)
            if abs(backward.n - count) < abs(forward.n - count):
                return backward
        return forward

    def to_json(self) -> dict[str, Any]:
        """`{"parameters": {"c", "k"}, "data": [[...], ...]}` with level 0 first."""
        return {
            "parameters": {"c": self.c, "k": self.k},
            "data": [[_compact(float(v)) for v in level] for level in self.levels],
        }

    # -- queries ---------------------------------------------------------------------------------------
    @property
    def n(self) -> float:
        """Total weight (the number of values summarised, for sketches built here)."""
        return float(self.weights.sum())

    @property
    def exact(self) -> bool:
        """True when every item has weight 1 (nothing was compacted)."""
        return len(self.levels) <= 1

    def cdf(self, x: npt.ArrayLike) -> FloatArray:
        """Share of values <= x."""
        total = self.n
        if total == 0:
            return np.zeros(np.shape(x), dtype=np.float64)
        cum = np.concatenate([[0.0], np.cumsum(self.weights)])
        idx = np.searchsorted(self.values, np.asarray(x, dtype=np.float64), side="right")
        return np.asarray(cum[idx] / total, dtype=np.float64)

    def quantile(self, q: npt.ArrayLike) -> FloatArray:
        """Values at the given shares (lower quantile: the smallest item whose CDF reaches q)."""
        qs = np.asarray(q, dtype=np.float64)
        if self.values.size == 0:
            return np.full(qs.shape, np.nan)
        cum = np.cumsum(self.weights) / self.n
        idx = np.minimum(np.searchsorted(cum, qs - 1e-12, side="left"), self.values.size - 1)
        return np.asarray(self.values[idx], dtype=np.float64)


def _compact(v: float) -> int | float:
    """Whole numbers as integers, others to 10 significant digits (the sketch's own error is far larger)."""
    if v.is_integer() and abs(v) < 2**53:
        return int(v)
    return float(f"{v:.10g}")
