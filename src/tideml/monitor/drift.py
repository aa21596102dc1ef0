"""Per-feature drift between a baseline and a window, computed from their statistics alone.

Every comparison reports all five measures that apply — PSI, Kolmogorov-Smirnov (statistic and p-value),
Wasserstein-1 (raw and divided by the baseline's standard deviation), Jensen-Shannon distance (natural
log) and the χ² homogeneity test — plus L∞ for value-by-value features. One of them decides the violation:

- numeric (more than 20 distinct values): with min(n_baseline, n_window) <= `small_sample_size` (1000),
  the KS test, p < significance_level / m; above it, Wasserstein / std_baseline > comparison_threshold (0.1);
- discrete numeric (at most 20 values) or String: the χ² test, p < significance_level / m; above,
  Jensen-Shannon distance > the (categorical) comparison threshold (0.1).

m is the number of features compared in the run (Bonferroni), so the chance that an undrifted window
raises any drift violation stays below `significance_level`. The managed methods keep their meaning:
`Simple` compares the KS distance with `comparison_threshold`, `Robust` also requires the KS test to be
significant, `LInfinity` compares the largest change of a value's share, `ChiSquared` is the χ² test.

Numeric CDFs come from the two quantile sketches (exact up to `k` values, rank error below ~2/k above),
so a 1M-row window costs one sort per column; value-by-value features use exact frequency tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tideml.monitor._jsonfile import json_safe
from tideml.monitor._stats_math import chi2_sf, ks_pvalue
from tideml.monitor.constraints import Constraints, DistributionConstraints, FeatureConstraint
from tideml.monitor.statistics import DatasetStatistics, FeatureStatistics

__all__ = [
    "DriftMeasures",
    "FeatureDrift",
    "FeatureKind",
    "compare_features",
    "jensen_shannon",
    "measure",
    "psi",
]

FloatArray = npt.NDArray[np.float64]
FeatureKind = Literal["numeric", "discrete", "categorical"]
PSI_EPS = 1e-4
N_BINS = 10
_OTHER = "__other__"


# -- elementary measures on two probability vectors -----------------------------------------------------
def psi(p_base: FloatArray, p_win: FloatArray, eps: float = PSI_EPS) -> float:
    """Population stability index Σ (w - b) ln(w / b), empty bins clipped to `eps`."""
    b = np.clip(p_base, eps, None)
    w = np.clip(p_win, eps, None)
    return float(np.sum((w - b) * np.log(w / b)))


def jensen_shannon(p: FloatArray, q: FloatArray) -> float:
    """Jensen-Shannon distance (square root of the divergence, natural log; 0..sqrt(ln 2))."""
    m = 0.5 * (p + q)

    def kl(a: FloatArray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / m[mask])))

    return float(math.sqrt(max(0.5 * kl(p) + 0.5 * kl(q), 0.0)))


def _chi2(count_b: FloatArray, count_w: FloatArray) -> tuple[float, float, int]:
    """χ² homogeneity test of two count vectors; bins with expected window count < 5 are pooled."""
    n_b, n_w = float(count_b.sum()), float(count_w.sum())
    if n_b <= 0 or n_w <= 0:
        return 0.0, 1.0, 0
    total = n_b + n_w
    share = (count_b + count_w) / total
    expected_small = np.minimum(share * n_b, share * n_w)
    order = np.argsort(expected_small, kind="stable")
    groups: list[list[int]] = []
    pool: list[int] = []
    pooled = 0.0
    for i in order:
        if expected_small[i] >= 5 and not pool:
            groups.append([int(i)])
            continue
        pool.append(int(i))
        pooled += float(expected_small[i])
        if pooled >= 5:
            groups.append(pool)
            pool, pooled = [], 0.0
    if pool:
        if groups:
            groups[0] = groups[0] + pool  # the smallest formed group absorbs the remainder
        else:
            groups.append(pool)
    if len(groups) < 2:
        return 0.0, 1.0, 0
    cb = np.array([count_b[g].sum() for g in groups])
    cw = np.array([count_w[g].sum() for g in groups])
    sh = (cb + cw) / total
    eb, ew = sh * n_b, sh * n_w
    stat = float(np.sum((cb - eb) ** 2 / eb) + np.sum((cw - ew) ** 2 / ew))
    df = len(groups) - 1
    return stat, chi2_sf(stat, df), df


@dataclass
class DriftMeasures:
    """All measures of one comparison (None where a measure does not apply)."""

    psi: float
    jensen_shannon: float
    chi2: float
    chi2_pvalue: float
    chi2_df: int
    ks: float | None = None
    ks_pvalue: float | None = None
    wasserstein: float | None = None
    wasserstein_normed: float | None = None
    linf: float | None = None


def _discrete_vectors(b: FeatureStatistics, w: FeatureStatistics) -> tuple[list[Any], FloatArray, FloatArray]:
    fb = b.frequencies or {}
    fw = w.frequencies or {}
    if b.is_numeric:
        keys: list[Any] = sorted(set(fb) | set(fw), key=float)
    else:
        keys = list(fb) + [v for v in fw if v not in fb]
    cb = np.array([fb.get(k, 0) for k in keys], dtype=np.float64)
    cw = np.array([fw.get(k, 0) for k in keys], dtype=np.float64)
    if b.other_count or w.other_count:
        keys.append(_OTHER)
        cb = np.append(cb, b.other_count)
        cw = np.append(cw, w.other_count)
    return keys, cb, cw


def _measure_discrete(b: FeatureStatistics, w: FeatureStatistics) -> DriftMeasures:
    keys, cb, cw = _discrete_vectors(b, w)
    pb = cb / max(cb.sum(), 1.0)
    pw = cw / max(cw.sum(), 1.0)
    chi2, p, df = _chi2(cb, cw)
    out = DriftMeasures(
        psi=psi(pb, pw),
        jensen_shannon=jensen_shannon(pb, pw),
        chi2=chi2,
        chi2_pvalue=p,
        chi2_df=df,
        linf=float(np.max(np.abs(pb - pw))) if pb.size else 0.0,
    )
    if b.is_numeric and _OTHER not in keys and len(keys) > 0:
        xs = np.array(keys, dtype=np.float64)
        gap = np.abs(np.cumsum(pb) - np.cumsum(pw))
        out.ks = float(gap.max())
        out.ks_pvalue = ks_pvalue(out.ks, cb.sum(), cw.sum())
        out.wasserstein = float(np.sum(gap[:-1] * np.diff(xs)))
        out.wasserstein_normed = _normed(out.wasserstein, b)
    return out


def _normed(w: float, b: FeatureStatistics) -> float:
    std = b.std_dev or 0.0
    if std > 0:
        return w / std
    return 0.0 if w == 0 else math.inf


def _measure_numeric(b: FeatureStatistics, w: FeatureStatistics) -> DriftMeasures:
    sb, sw = b.sketch, w.sketch
    assert sb is not None and sw is not None
    grid = np.union1d(sb.values, sw.values)
    fb, fw = sb.cdf(grid), sw.cdf(grid)
    gap = np.abs(fb - fw)
    ks = float(gap.max()) if gap.size else 0.0
    wasserstein = float(np.sum(gap[:-1] * np.diff(grid))) if grid.size > 1 else 0.0
    edges = np.unique(sb.quantile(np.linspace(0.0, 1.0, N_BINS + 1)[1:-1]))
    cum_b = np.concatenate([[0.0], sb.cdf(edges), [1.0]])
    cum_w = np.concatenate([[0.0], sw.cdf(edges), [1.0]])
    pb, pw = np.diff(cum_b), np.diff(cum_w)
    n_b, n_w = sb.n, sw.n
    chi2, p, df = _chi2(pb * n_b, pw * n_w)
    return DriftMeasures(
        psi=psi(pb, pw),
        jensen_shannon=jensen_shannon(pb, pw),
        chi2=chi2,
        chi2_pvalue=p,
        chi2_df=df,
        ks=ks,
        ks_pvalue=ks_pvalue(ks, n_b, n_w),
        wasserstein=wasserstein,
        wasserstein_normed=_normed(wasserstein, b),
    )


def kind_of(b: FeatureStatistics) -> FeatureKind:
    """How a feature is compared: numeric (CDF), discrete numeric or categorical (value by value)."""
    if b.inferred_type == "String":
        return "categorical"
    return "discrete" if b.is_discrete else "numeric"


def measure(b: FeatureStatistics, w: FeatureStatistics) -> DriftMeasures | None:
    """Every drift measure between a baseline feature and a window feature (None if either is empty)."""
    present_b = b.num_present - b.num_type_mismatch
    present_w = w.num_present - w.num_type_mismatch
    if present_b <= 0 or present_w <= 0:
        return None
    kind = kind_of(b)
    if kind == "numeric":
        if b.sketch is None or w.sketch is None:
            return None
        return _measure_numeric(b, w)
    if kind == "discrete" and w.frequencies is None:
        # the window has too many distinct values for a table: compare its CDF with the baseline's
        if b.sketch is None or w.sketch is None:
            return None
        return _measure_numeric(b, w)
    return _measure_discrete(b, w)


# -- decisions ------------------------------------------------------------------------------------------
@dataclass
class FeatureDrift:
    """The drift of one feature: its measures, the method that decided and the verdict."""

    name: str
    kind: FeatureKind
    n_baseline: int
    n_window: int
    measures: DriftMeasures | None
    method: str
    statistic: float | None
    threshold: float
    drifted: bool
    compared: bool = True
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def description(self) -> str:
        """The violation text, in the managed service's wording plus the method."""
        if self.method.endswith("_test"):
            return (
                f"Baseline drift test {self.method}: p-value {self.statistic:.3g} is below the adjusted "
                f"significance level {self.threshold:.3g}"
            )
        return (
            f"Baseline drift distance: {self.statistic:.4g} exceeds threshold: {self.threshold:.4g} "
            f"({self.method})"
        )

    def to_json(self) -> dict[str, Any]:
        """Everything, JSON-ready (infinities as strings)."""
        out: dict[str, Any] = json_safe(asdict(self))
        return out


def _pick(override: Any, default: Any) -> Any:
    return default if override is None else override


def _resolve(
    kind: FeatureKind, small: bool, dc: DistributionConstraints, fc: FeatureConstraint | None
) -> tuple[str, float]:
    """(method, distance threshold) for one feature; p-value methods end in `_test`."""
    ov = fc.monitoringConfigOverrides if fc is not None else None
    cat_threshold = float(
        _pick(ov.categorical_comparison_threshold if ov else None, dc.categorical_comparison_threshold)
    )
    num_threshold = float(_pick(ov.comparison_threshold if ov else None, dc.comparison_threshold))
    if kind == "categorical":
        method: str = _pick(ov.categorical_drift_method if ov else None, dc.categorical_drift_method)
        threshold = cat_threshold
    else:
        method = _pick(ov.comparison_method if ov else None, dc.comparison_method)
        threshold = num_threshold
    if method == "Auto":
        if kind == "numeric":
            return ("ks_test", threshold) if small else ("wasserstein_normed", threshold)
        return ("chi2_test", threshold) if small else ("jensen_shannon", threshold)
    table = {
        "Simple": "ks_distance",
        "Robust": "ks_robust",
        "KS": "ks_test",
        "PSI": "psi",
        "Wasserstein": "wasserstein_normed",
        "JensenShannon": "jensen_shannon",
        "LInfinity": "linf",
        "ChiSquared": "chi2_test",
    }
    return table[method], threshold


def _decide(
    method: str, m: DriftMeasures, threshold: float, alpha: float
) -> tuple[float | None, float, bool]:
    if method == "ks_test":
        if m.ks_pvalue is None:
            return m.chi2_pvalue, alpha, m.chi2_pvalue < alpha
        return m.ks_pvalue, alpha, m.ks_pvalue < alpha
    if method == "chi2_test":
        return m.chi2_pvalue, alpha, m.chi2_pvalue < alpha
    if method in ("ks_distance", "ks_robust"):
        value = m.ks if m.ks is not None else m.linf
        if value is None:
            return None, threshold, False
        drifted = value > threshold
        if method == "ks_robust":
            p = m.ks_pvalue if m.ks_pvalue is not None else m.chi2_pvalue
            drifted = drifted and p < alpha
        return value, threshold, drifted
    value_map = {
        "psi": m.psi,
        "wasserstein_normed": m.wasserstein_normed,
        "jensen_shannon": m.jensen_shannon,
        "linf": m.linf,
    }
    value = value_map.get(method)
    if value is None:  # e.g. Wasserstein asked for a string feature
        value = m.jensen_shannon
    return value, threshold, value > threshold


def compare_features(
    baseline: DatasetStatistics,
    window: DatasetStatistics,
    constraints: Constraints,
    *,
    features: Sequence[str] | None = None,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[FeatureDrift]:
    """Drift of every feature present in both, decided as `constraints.monitoring_config` says."""
    dc = constraints.monitoring_config.distribution_constraints
    names = [
        n
        for n in (features if features is not None else list(baseline.features))
        if n in baseline.features and n in window.features
    ]
    rows: list[tuple[str, FeatureKind, DriftMeasures | None, FeatureConstraint | None, bool]] = []
    for name in names:
        b, w = baseline.features[name], window.features[name]
        fc = constraints.feature(name)
        enabled = dc.perform_comparison == "Enabled"
        if fc is not None and fc.monitoringConfigOverrides.perform_comparison is not None:
            enabled = fc.monitoringConfigOverrides.perform_comparison == "Enabled"
        if b.inferred_type == "Unknown":
            enabled = False
        rows.append((name, kind_of(b), measure(b, w) if enabled else None, fc, enabled))
    compared = sum(1 for r in rows if r[2] is not None)
    alpha = (
        dc.significance_level / compared
        if dc.multiple_testing == "bonferroni" and compared
        else dc.significance_level
    )
    out: list[FeatureDrift] = []
    for name, kind, m, fc, enabled in rows:
        b, w = baseline.features[name], window.features[name]
        n_b = b.num_present - b.num_type_mismatch
        n_w = w.num_present - w.num_type_mismatch
        small = min(n_b, n_w) <= dc.small_sample_size
        method, threshold = _resolve(kind, small, dc, fc)
        if m is None:
            note = "comparison disabled" if not enabled else "no values to compare"
            out.append(FeatureDrift(name, kind, n_b, n_w, None, method, None, threshold, False, False, note))
            continue
        statistic, limit, drifted = _decide(method, m, threshold, alpha)
        out.append(
            FeatureDrift(
                name,
                kind,
                n_b,
                n_w,
                m,
                method,
                statistic,
                limit,
                drifted,
                extra=dict((extra or {}).get(name, {})),
            )
        )
    return out
