"""Tail probabilities the drift tests need, in plain Python (no SciPy dependency).

- `kolmogorov_sf(λ)`: P(K > λ) of the Kolmogorov distribution, the asymptotic law of sqrt(n_e) D.
- `ks_pvalue(d, n1, n2)`: two-sample KS p-value with Stephens' small-sample correction.
- `chi2_sf(x, df)`: P(χ²_df > x) via the regularised upper incomplete gamma function (Numerical Recipes'
  series and Lentz continued fraction).
"""

from __future__ import annotations

import math

__all__ = ["chi2_sf", "kolmogorov_sf", "ks_pvalue"]


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam) = 2 Σ_{j>=1} (-1)^(j-1) exp(-2 j² lam²)."""
    if lam <= 0.0:
        return 1.0
    if lam < 0.2:
        return 1.0  # the series converges slowly here and the value is 1 to 1e-10
    total = 0.0
    sign = 1.0
    previous = 0.0
    for j in range(1, 101):
        term = sign * math.exp(-2.0 * j * j * lam * lam)
        total += term
        if abs(term) <= 1e-12 * abs(total) or abs(term) <= 1e-300 or abs(term) == previous:
            break
        previous = abs(term)
        sign = -sign
    return min(max(2.0 * total, 0.0), 1.0)


def ks_pvalue(d: float, n1: float, n2: float) -> float:
    """Two-sample Kolmogorov-Smirnov p-value of statistic `d` for sample sizes n1, n2."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    ne = n1 * n2 / (n1 + n2)
    root = math.sqrt(ne)
    return kolmogorov_sf((root + 0.12 + 0.11 / root) * d)


def _gamma_p_series(a: float, x: float) -> float:
    term = 1.0 / a
    total = term
    ap = a
    for _ in range(10_000):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * 1e-15:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_q_fraction(a: float, x: float) -> float:
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < tiny:
            d = tiny
        c = b + an / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def chi2_sf(x: float, df: float) -> float:
    """P(χ²_df > x)."""
    if df <= 0:
        return 1.0
    if x <= 0:
        return 1.0
    a, half = df / 2.0, x / 2.0
    if half < a + 1.0:
        return min(max(1.0 - _gamma_p_series(a, half), 0.0), 1.0)
    return min(max(_gamma_q_fraction(a, half), 0.0), 1.0)
