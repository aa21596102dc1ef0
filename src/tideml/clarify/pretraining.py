"""The eight pre-training bias metrics of Clarify, as vectorised arithmetic on per-group counts.

Each function takes a `Pair` (counts of facet *a* and facet *d*, for any number of selections at once)
and returns a `Q` (values plus per-element error codes). Formulas and signs follow smclarify 0.5 and the
SageMaker docs; `Pair.compat` switches on smclarify's documented quirks.
"""

from __future__ import annotations

import numpy as np

from tideml.clarify._arith import (
    NO_NEGATIVE,
    NO_POSITIVE,
    NO_SHARED_OUTCOME,
    FloatArray,
    Q,
    flag,
    ratio,
    sub,
)
from tideml.clarify._pair import Pair

__all__ = ["CDDL", "CI", "DPL", "JS", "KL", "KS", "LP", "TVD", "conditional_demographic_disparity"]


def CI(p: Pair) -> Q:
    """Class Imbalance: (n_a - n_d) / (n_a + n_d)."""
    return ratio(p.a.n - p.d.n, p.a.n + p.d.n, p.compat)


def DPL(p: Pair) -> Q:
    """Difference in Positive Proportions in Labels: q_a - q_d."""
    return sub(ratio(p.a.n1, p.a.n, p.compat), ratio(p.d.n1, p.d.n, p.compat), p.compat)


def _distributions(p: Pair) -> tuple[FloatArray, FloatArray]:
    """P_a(y) and P_d(y): over [negative, positive] by default, or over every label category."""
    if p.full_distribution:
        ca, cd = p.a.label_distribution, p.d.label_distribution
    else:
        ca = np.stack([p.a.n0, p.a.n1], axis=-1)
        cd = np.stack([p.d.n0, p.d.n1], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pa = ca / ca.sum(axis=-1, keepdims=True)
        pd_ = cd / cd.sum(axis=-1, keepdims=True)
    return pa, pd_


def _shared(p: Pair) -> tuple[FloatArray, FloatArray, np.ndarray]:
    """smclarify's `pdfs_aligned_nonzero`: keep outcomes non-zero in both groups, no renormalising."""
    pa, pd_ = _distributions(p)
    keep = (pa > 0) & (pd_ > 0)
    return np.where(keep, pa, 0.0), np.where(keep, pd_, 0.0), keep


def _xlogy_ratio(x: FloatArray, y: FloatArray) -> FloatArray:
    """x · ln(x / y) with 0 · ln(0 / y) = 0 and x > 0 = y giving +inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = x * np.log(x / y)
    return np.where(x > 0, t, 0.0)


def _distribution_metric(p: Pair, kind: str) -> Q:
    if p.compat:
        pa, pd_, keep = _shared(p)
        empty = ~keep.any(axis=-1)
    else:
        pa, pd_ = _distributions(p)
        empty = np.zeros(pa.shape[:-1], dtype=bool)
    if kind == "KL":
        v = _xlogy_ratio(pa, pd_).sum(axis=-1)
    elif kind == "JS":
        m = 0.5 * (pa + pd_)
        v = 0.5 * (_xlogy_ratio(pa, m).sum(axis=-1) + _xlogy_ratio(pd_, m).sum(axis=-1))
    elif kind == "LP":
        v = np.sqrt(((pa - pd_) ** 2).sum(axis=-1))
    elif kind == "TVD":
        v = 0.5 * np.abs(pa - pd_).sum(axis=-1)
    else:  # KS
        v = np.abs(pa - pd_).max(axis=-1)
    return flag(Q.of(v), empty, NO_SHARED_OUTCOME)


def KL(p: Pair) -> Q:
    """Kullback-Leibler divergence Σ P_a ln(P_a / P_d).

    +inf when P_a(y) > 0 = P_d(y); with `compat`, only outcomes present in both groups count.
    """
    return _distribution_metric(p, "KL")


def JS(p: Pair) -> Q:
    """Jensen-Shannon divergence ½[KL(P_a‖M) + KL(P_d‖M)], M = ½(P_a + P_d)."""
    return _distribution_metric(p, "JS")


def LP(p: Pair) -> Q:
    """L2 norm of P_a - P_d."""
    return _distribution_metric(p, "LP")


def TVD(p: Pair) -> Q:
    """Total variation distance ½ Σ |P_a - P_d|."""
    return _distribution_metric(p, "TVD")


def KS(p: Pair) -> Q:
    """Kolmogorov-Smirnov distance max |P_a - P_d|."""
    return _distribution_metric(p, "KS")


def conditional_demographic_disparity(p: Pair, predicted: bool) -> Q:
    """CDD = (1/n) Σ_i n_i (D_i - A_i), D_i = n_d(0)_i / n(0)_i, A_i = n_d(1)_i / n(1)_i.

    A share whose denominator is 0 counts as 0 (smclarify and the docs agree on this).
    """
    axis_sum = -1 if not predicted else -2  # sum over ŷ (labels) or over y (predictions)
    dg = p.d.by_group.sum(axis=axis_sum).astype(np.float64)  # [..., G, 2] negative / positive
    ag = p.a.by_group.sum(axis=axis_sum).astype(np.float64)
    allg = dg + ag
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(allg > 0, dg / allg, 0.0)  # [..., G, 2]: D_i (rejected), A_i (accepted)
    dd = share[..., 0] - share[..., 1]
    n_g = allg.sum(axis=-1)
    n = n_g.sum(axis=-1)
    value = ratio((n_g * dd).sum(axis=-1), n, p.compat)
    totals = allg.sum(axis=-2)
    value = flag(value, totals[..., 1] == 0, NO_POSITIVE)
    return flag(value, (totals[..., 0] == 0) & (totals[..., 1] > 0), NO_NEGATIVE)


def CDDL(p: Pair) -> Q:
    """Conditional Demographic Disparity in Labels."""
    return conditional_demographic_disparity(p, predicted=False)
