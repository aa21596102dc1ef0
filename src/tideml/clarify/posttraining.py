"""The thirteen post-training bias metrics of Clarify.

All but FT are vectorised arithmetic on per-group confusion counts (`Pair`). FT (the counterfactual flip
test) needs the rows: it fits a k-nearest-neighbours classifier on facet *a* and is computed separately by
`flip_test`, on a capped, seeded sample when asked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.neighbors import KNeighborsClassifier

from tideml.clarify._arith import ALL_FALSE_NEGATIVE, EMPTY_FACET, EMPTY_REST, MESSAGES, Q, flag, ratio, sub
from tideml.clarify._pair import Pair
from tideml.clarify.pretraining import conditional_demographic_disparity

__all__ = [
    "AD",
    "CDDPL",
    "DAR",
    "DCA",
    "DCR",
    "DI",
    "DPPL",
    "DRR",
    "GE",
    "RD",
    "SD",
    "TE",
    "FlipTestResult",
    "flip_test",
]


def DPPL(p: Pair) -> Q:
    """Difference in Positive Proportions in Predicted Labels: q'_a - q'_d."""
    return sub(ratio(p.a.p1, p.a.n, p.compat), ratio(p.d.p1, p.d.n, p.compat), p.compat)


def DI(p: Pair) -> Q:
    """Disparate Impact: q'_d / q'_a."""
    return ratio(p.d.p1 / np.maximum(p.d.n, 1), p.a.p1 / np.maximum(p.a.n, 1), p.compat)


def DCA(p: Pair) -> Q:
    """Difference in Conditional Acceptance: n_a(1)/n'_a(1) - n_d(1)/n'_d(1)."""
    return sub(ratio(p.a.n1, p.a.p1, p.compat), ratio(p.d.n1, p.d.p1, p.compat), p.compat)


def DCR(p: Pair) -> Q:
    """Difference in Conditional Rejection: n_d(0)/n'_d(0) - n_a(0)/n'_a(0) (order d - a)."""
    return sub(ratio(p.d.n0, p.d.p0, p.compat), ratio(p.a.n0, p.a.p0, p.compat), p.compat)


def RD(p: Pair) -> Q:
    """Recall Difference: TP_a/(TP_a+FN_a) - TP_d/(TP_d+FN_d)."""
    a, d = p.a, p.d
    return sub(ratio(a.tp, a.tp + a.fn, p.compat), ratio(d.tp, d.tp + d.fn, p.compat), p.compat)


def SD(p: Pair) -> Q:
    """Specificity Difference: TN_d/(TN_d+FP_d) - TN_a/(TN_a+FP_a) (order d - a)."""
    a, d = p.a, p.d
    return sub(ratio(d.tn, d.tn + d.fp, p.compat), ratio(a.tn, a.tn + a.fp, p.compat), p.compat)


def DAR(p: Pair) -> Q:
    """Difference in Acceptance Rates (precision): TP_a/(TP_a+FP_a) - TP_d/(TP_d+FP_d)."""
    a, d = p.a, p.d
    return sub(ratio(a.tp, a.tp + a.fp, p.compat), ratio(d.tp, d.tp + d.fp, p.compat), p.compat)


def DRR(p: Pair) -> Q:
    """Difference in Rejection Rates (NPV): TN_d/(TN_d+FN_d) - TN_a/(TN_a+FN_a) (order d - a)."""
    a, d = p.a, p.d
    return sub(ratio(d.tn, d.tn + d.fn, p.compat), ratio(a.tn, a.tn + a.fn, p.compat), p.compat)


def AD(p: Pair) -> Q:
    """Accuracy Difference: ACC_a - ACC_d."""
    a, d = p.a, p.d
    return sub(ratio(a.tp + a.tn, a.n, p.compat), ratio(d.tp + d.tn, d.n, p.compat), p.compat)


def TE(p: Pair) -> Q:
    """Treatment Equality: FN_d/FP_d - FN_a/FP_a."""
    a, d = p.a, p.d
    return sub(ratio(d.fn, d.fp, p.compat), ratio(a.fn, a.fp, p.compat), p.compat)


def CDDPL(p: Pair) -> Q:
    """Conditional Demographic Disparity in Predicted Labels."""
    return conditional_demographic_disparity(p, predicted=True)


def GE(p: Pair) -> Q:
    """Generalized entropy index (alpha = 2) over all rows: (1/2n) Σ[(b_i/μ)² - 1], b = ŷ - y + 1."""
    tp, tn, fp, fn = p.a.tp + p.d.tp, p.a.tn + p.d.tn, p.a.fp + p.d.fp, p.a.fn + p.d.fn
    n = tp + tn + fp + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = (tp + tn + 2.0 * fp) / n
        value = ((tp + tn) / mu**2 + 4.0 * fp / mu**2 - n) / (2.0 * n)
    return flag(Q.of(value), (mu == 0) | (n == 0), ALL_FALSE_NEGATIVE)


# -- flip test -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlipTestResult:
    """FT and its parts: F⁺ (d rows the model rejects but their a-neighbours accept), F⁻, n_d, k."""

    value: float | None
    error: str | None
    f_plus: int
    f_minus: int
    n_d: int
    k: int
    sampled: bool


def flip_test(
    features: npt.NDArray[np.float64],
    facet_d: npt.NDArray[np.bool_],
    predicted_positive: npt.NDArray[np.bool_],
    *,
    compat: bool = False,
    standardize: bool = False,
    max_rows: int | None = None,
    seed: int = 0,
) -> FlipTestResult:
    """Counterfactual flip test with a k-NN (k = 5, or 1 when facet *a* has ≤ 9 rows) fitted on facet *a*.

    Default sign (the docs): FT = (F⁺ - F⁻) / n_d with F⁺ = d rows predicted negative whose neighbours in
    *a* are predicted positive. `compat=True` returns smclarify's sign, which is the opposite.
    """
    n = features.shape[0]
    sampled = False
    if max_rows is not None and n > max_rows:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=max_rows, replace=False))
        features, facet_d, predicted_positive = features[idx], facet_d[idx], predicted_positive[idx]
        sampled = True
    n_d = int(facet_d.sum())
    n_a = int((~facet_d).sum())
    if n_d == 0 or n_a == 0:
        code = EMPTY_FACET if n_d == 0 else EMPTY_REST
        return FlipTestResult(None, MESSAGES[code], 0, 0, n_d, 0, sampled)
    x = np.nan_to_num(features, nan=0.0)
    if standardize:
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        x = (x - mean) / np.where(std > 0, std, 1.0)
    k = 5 if n_a > 9 else 1
    knn = KNeighborsClassifier(n_neighbors=k, weights="uniform", p=2, metric="minkowski")
    knn.fit(x[~facet_d], predicted_positive[~facet_d])
    neighbour = knn.predict(x[facet_d]).astype(bool)
    model = predicted_positive[facet_d]
    f_plus = int((~model & neighbour).sum())
    f_minus = int((model & ~neighbour).sum())
    value = (f_minus - f_plus) / n_d if compat else (f_plus - f_minus) / n_d
    return FlipTestResult(value, None, f_plus, f_minus, n_d, k, sampled)
