"""The drift measures against SciPy (a test-only oracle), the sketch's accuracy, and the test selection."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from tideml.monitor import QuantileSketch, compute_statistics, suggest_constraints
from tideml.monitor.constraints import Constraints
from tideml.monitor.drift import compare_features, jensen_shannon, measure, psi


def _stats(values: dict[str, object]):  # type: ignore[no-untyped-def]
    return compute_statistics(pl.DataFrame(values))


def test_numeric_measures_match_scipy_on_exact_samples() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 1500)
    b = rng.normal(0.3, 1.2, 800)
    m = measure(_stats({"x": a}).features["x"], _stats({"x": b}).features["x"])
    assert m is not None
    ref = stats.ks_2samp(a, b)
    assert m.ks == pytest.approx(ref.statistic, abs=1e-12)
    assert m.ks_pvalue == pytest.approx(ref.pvalue, rel=0.25)  # asymptotic vs exact
    assert m.wasserstein == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)
    assert m.wasserstein_normed == pytest.approx(stats.wasserstein_distance(a, b) / a.std(), rel=1e-9)


def test_sketched_baseline_measures_stay_close_to_exact() -> None:
    rng = np.random.default_rng(1)
    a = rng.lognormal(0, 1, 200_000)  # sketched: 200k values in at most 2048 items
    b = rng.lognormal(0.05, 1, 50_000)
    sa, sb = _stats({"x": a}).features["x"], _stats({"x": b}).features["x"]
    assert sa.sketch is not None and not sa.sketch.exact and sa.sketch.values.size <= 2048
    m = measure(sa, sb)
    assert m is not None
    assert m.ks == pytest.approx(stats.ks_2samp(a, b).statistic, abs=2e-3)
    assert m.wasserstein == pytest.approx(stats.wasserstein_distance(a, b), rel=0.05)


def test_categorical_measures_match_scipy() -> None:
    a = ["a"] * 500 + ["b"] * 300 + ["c"] * 200
    b = ["a"] * 200 + ["b"] * 250 + ["c"] * 150 + ["d"] * 40
    m = measure(_stats({"s": a}).features["s"], _stats({"s": b}).features["s"])
    assert m is not None
    p = np.array([0.5, 0.3, 0.2, 0.0])
    q = np.array([200, 250, 150, 40]) / 640
    assert m.jensen_shannon == pytest.approx(jensenshannon(p, q), abs=1e-12)
    table = np.array([[500, 300, 200, 0], [200, 250, 150, 40]])
    chi2, pvalue, dof, _ = stats.chi2_contingency(table, correction=False)
    assert m.chi2 == pytest.approx(chi2) and m.chi2_df == dof
    assert m.chi2_pvalue == pytest.approx(pvalue, rel=1e-6, abs=1e-300)
    assert m.linf == pytest.approx(float(np.max(np.abs(p - q))))
    assert m.ks is None and m.wasserstein is None


def test_rare_categories_are_pooled_for_the_chi2_test() -> None:
    a = ["a"] * 900 + ["b"] * 95 + ["c"] * 3 + ["d"] * 2
    b = ["a"] * 90 + ["b"] * 10
    m = measure(_stats({"s": a}).features["s"], _stats({"s": b}).features["s"])
    assert m is not None and m.chi2_df == 1  # c and d (expected < 5 in the window) pooled with b


def test_psi_and_js_values() -> None:
    p = np.array([0.25, 0.25, 0.5])
    q = np.array([0.5, 0.25, 0.25])
    expected = (0.5 - 0.25) * np.log(2) + 0 + (0.25 - 0.5) * np.log(0.5)
    assert psi(p, q) == pytest.approx(expected)
    assert psi(p, p) == 0.0
    assert jensen_shannon(p, p) == 0.0
    assert jensen_shannon(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(np.sqrt(np.log(2)))


def test_discrete_numeric_features_are_compared_value_by_value() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(1, 6, 5000)
    b = np.minimum(rng.integers(1, 6, 5000) + (rng.random(5000) < 0.5), 5)
    sa = _stats({"n": a}).features["n"]
    assert sa.is_discrete and sa.frequencies is not None and len(sa.frequencies) == 5
    m = measure(sa, _stats({"n": b}).features["n"])
    assert m is not None and m.ks == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    assert m.wasserstein == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 20_000),
    k=st.sampled_from([64, 256, 1024]),
    seed=st.integers(0, 2**32 - 1),
)
def test_sketch_weights_sum_to_n_and_its_cdf_is_within_its_bound(n: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = np.sort(rng.normal(size=n) * rng.choice([1.0, 1000.0]))
    sketch = QuantileSketch.from_sorted(data, k=k, seed=seed)
    assert sketch.n == n
    assert sketch.values.size <= k + 64
    probes = np.quantile(data, np.linspace(0, 1, 21))
    exact = np.searchsorted(data, probes, side="right") / n
    assert np.max(np.abs(sketch.cdf(probes) - exact)) <= 4.0 / k + 1e-12
    if n <= k:
        assert sketch.exact and np.array_equal(sketch.values, data)
    again = QuantileSketch.from_json(json.loads(json.dumps(sketch.to_json())), count=n)
    assert np.allclose(again.values, sketch.values, rtol=1e-9, atol=0) and again.n == n


def test_sketch_levels_written_top_first_are_read_by_their_count() -> None:
    data = np.sort(np.random.default_rng(3).normal(size=10_000))
    sketch = QuantileSketch.from_sorted(data, k=256)
    doc = sketch.to_json()
    doc["data"] = doc["data"][::-1]
    assert QuantileSketch.from_json(doc, count=10_000).n == 10_000


def _constraints(method: str | None = None, cat: str | None = None, **extra: object) -> Constraints:
    dc: dict[str, object] = dict(extra)
    if method:
        dc["comparison_method"] = method
    if cat:
        dc["categorical_drift_method"] = cat
    return Constraints.model_validate(
        {
            "features": [
                {"name": "x", "inferred_type": "Fractional"},
                {"name": "s", "inferred_type": "String"},
            ],
            "monitoring_config": {"distribution_constraints": dc},
        }
    )


def test_method_selection_by_type_and_sample_size() -> None:
    rng = np.random.default_rng(4)
    base = _stats({"x": rng.normal(size=5000), "s": rng.choice(["a", "b"], 5000)})
    small = _stats({"x": rng.normal(size=300), "s": rng.choice(["a", "b"], 300)})
    large = _stats({"x": rng.normal(size=3000), "s": rng.choice(["a", "b"], 3000)})
    cons = _constraints()
    got = {d.name: (d.method, d.threshold) for d in compare_features(base, small, cons)}
    assert got == {"x": ("ks_test", 0.01 / 2), "s": ("chi2_test", 0.01 / 2)}  # Bonferroni over 2 features
    got = {d.name: d.method for d in compare_features(base, large, cons)}
    assert got == {"x": "wasserstein_normed", "s": "jensen_shannon"}
    managed = {d.name: d.method for d in compare_features(base, large, _constraints("Simple", "LInfinity"))}
    assert managed == {"x": "ks_distance", "s": "linf"}
    chosen = {d.name: d.method for d in compare_features(base, small, _constraints("PSI", "PSI"))}
    assert chosen == {"x": "psi", "s": "psi"}


def test_a_per_feature_override_wins() -> None:
    rng = np.random.default_rng(5)
    base = _stats({"x": rng.normal(size=5000), "s": rng.choice(["a", "b"], 5000)})
    win = _stats({"x": rng.normal(0.3, 1, 3000), "s": rng.choice(["a", "b"], 3000)})
    cons = _constraints()
    cons.features[0].monitoringConfigOverrides.comparison_threshold = 0.5
    drift = {d.name: d for d in compare_features(base, win, cons)}
    assert drift["x"].threshold == 0.5 and not drift["x"].drifted
    assert compare_features(base, win, _constraints())[0].drifted


def test_suggest_constraints_domains_and_completeness() -> None:
    frame = pl.DataFrame({"s": ["a", None, "b", "a"] * 25, "x": [1.0, 2.0, None, 4.0] * 25})
    cons = suggest_constraints(compute_statistics(frame))
    s, x = cons.feature("s"), cons.feature("x")
    assert s is not None and x is not None
    assert s.completeness == pytest.approx(0.70) and x.completeness == pytest.approx(0.70)
    assert s.string_constraints is not None and s.string_constraints.domains == ["a", "b"]


def test_window_values_of_the_wrong_type_are_counted() -> None:
    base = compute_statistics(pl.DataFrame({"n": [1, 2, 3, 4]}))
    window = pl.DataFrame({"n": ["1", "2", "x", "4.5", None]})
    stats_w = compute_statistics(window, types={"n": "Integral"})
    f = stats_w.features["n"]
    assert (f.num_present, f.num_missing, f.num_type_mismatch) == (4, 1, 2)
    from tideml.monitor import check_data_quality

    cons = suggest_constraints(base)
    found = {v.constraint_check_type for v in check_data_quality(cons, stats_w, window_columns=["n"])}
    assert found == {"data_type_check", "completeness_check"}
