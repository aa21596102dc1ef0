"""Bootstrap confidence intervals for every count-based metric, without touching the rows again.

Resampling n rows with replacement gives, per cell of the count table, a multinomial draw of n over the
cell probabilities: the two are the same distribution. So each replicate is one multinomial draw of the
table (milliseconds, whatever n is) and the metrics are evaluated on all replicates at once.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tideml.clarify._arith import Q
from tideml.clarify._pair import Pair

__all__ = ["Interval", "bootstrap_intervals", "resample_cells"]

_MAX_ELEMENTS = 4_000_000  # bound on replicate chunk x selections x cells, to keep memory small


@dataclass(frozen=True)
class Interval:
    """Percentile interval per selection, and the share of replicates where the metric was undefined."""

    low: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    undefined: npt.NDArray[np.float64]


def resample_cells(
    cells: npt.NDArray[np.int64], n_boot: int, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """`n_boot` bootstrap replicates of a count table (multinomial over its cells)."""
    flat = cells.reshape(-1).astype(np.float64)
    n = int(flat.sum())
    if n == 0:
        return np.zeros((n_boot, *cells.shape), dtype=np.int64)
    draws = rng.multinomial(n, flat / n, size=n_boot)
    return draws.reshape((n_boot, *cells.shape)).astype(np.int64)


def bootstrap_intervals(
    cells: npt.NDArray[np.int64],
    positive: npt.NDArray[np.bool_],
    masks: npt.NDArray[np.bool_],
    metrics: Mapping[str, Callable[[Pair], Q]],
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    compat: bool = False,
    has_group_variable: bool = False,
    full_distribution: bool = False,
) -> dict[str, Interval]:
    """Percentile intervals of each metric for each selection (`masks[selection, atom]`)."""
    rng = np.random.default_rng(seed)
    per_rep = max(1, int(masks.shape[0] * cells.size))
    chunk = max(1, min(n_boot, _MAX_ELEMENTS // per_rep))
    m = masks.astype(np.int64)
    values: dict[str, list[npt.NDArray[np.float64]]] = {k: [] for k in metrics}
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        reps = resample_cells(cells, b, rng)  # [b, F, G, L, 2]
        d = np.tensordot(reps, m, axes=([1], [1]))  # [b, G, L, 2, S]
        d = np.moveaxis(d, -1, 1)  # [b, S, G, L, 2]
        total = reps.sum(axis=1)[:, None]  # [b, 1, G, L, 2]
        pair = Pair.from_cells(
            d,
            np.broadcast_to(total, d.shape),
            positive,
            compat=compat,
            has_group_variable=has_group_variable,
            full_distribution=full_distribution,
        )
        for code, fn in metrics.items():
            q = fn(pair)
            values[code].append(np.where(q.code == 0, q.value, np.nan))
        done += b
    alpha = (1.0 - confidence) / 2.0
    out: dict[str, Interval] = {}
    for code, chunks in values.items():
        v = np.concatenate(chunks, axis=0)  # [n_boot, S]
        undefined = np.isnan(v).mean(axis=0)
        with np.errstate(invalid="ignore"), _quiet():
            low = np.nanquantile(v, alpha, axis=0)
            high = np.nanquantile(v, 1.0 - alpha, axis=0)
        out[code] = Interval(low, high, undefined)
    return out


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's 'All-NaN slice' warnings for selections that are always undefined."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
