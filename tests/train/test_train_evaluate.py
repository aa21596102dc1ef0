"""Evaluation arithmetic checked against brute force and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, roc_auc_score

from tideml.errors import ValidationError
from tideml.train import (
    CostMatrix,
    ThresholdSpec,
    bootstrap_auc_interval,
    calibration_bins,
    choose_threshold,
    classification_metrics,
    evaluate,
    weighted_auc,
)


def _scores(n: int, seed: int, signal: float = 1.0, rate: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(np.int64)
    y[:2] = [0, 1]
    p = 1 / (1 + np.exp(-(signal * y + rng.normal(size=n) - 2.5)))
    return y, np.round(p, 3)  # rounding makes ties


@settings(max_examples=50, deadline=None)
@given(n=st.integers(10, 300), seed=st.integers(0, 10_000))
def test_weighted_auc_equals_sklearn_with_ties_and_integer_weights(n: int, seed: int) -> None:
    y, p = _scores(n, seed)
    assert weighted_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    w = np.random.default_rng(seed).integers(0, 4, n)
    if (w * y).sum() and (w * (1 - y)).sum():
        repeated = np.repeat(np.arange(n), w)
        assert weighted_auc(y, p, w) == pytest.approx(roc_auc_score(y[repeated], p[repeated]), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(20, 200), seed=st.integers(0, 10_000))
def test_max_f1_threshold_is_the_brute_force_optimum(n: int, seed: int) -> None:
    y, p = _scores(n, seed, signal=2.0)
    choice = choose_threshold(y, p, ThresholdSpec())

    def f1(flag: np.ndarray) -> float:
        tp = int((flag & (y == 1)).sum())
        return 2 * tp / (int(flag.sum()) + int(y.sum()))

    best = max(f1(p >= t) for t in np.unique(p))
    assert choice.validation_score == pytest.approx(best)
    assert f1_score(y, p >= choice.value) == pytest.approx(best)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(20, 200), seed=st.integers(0, 10_000), fn=st.floats(0.5, 50), fp=st.floats(0.1, 5))
def test_min_cost_threshold_is_the_brute_force_optimum(n: int, seed: int, fn: float, fp: float) -> None:
    y, p = _scores(n, seed, signal=1.5)
    rng = np.random.default_rng(seed)
    amounts = rng.uniform(100, 10_000, n)
    for costs, amt in (
        (CostMatrix(false_negative=fn, false_positive=fp, true_positive=0.3), None),
        (CostMatrix(false_positive=500.0, true_positive=500.0), amounts),
    ):
        spec = ThresholdSpec(strategy="min_cost", costs=costs, amount_column="x" if amt is not None else None)
        fn_cost = amt if amt is not None else np.full(n, costs.false_negative)

        def total(flag: np.ndarray, c: CostMatrix = costs, f: np.ndarray = fn_cost) -> float:
            return float(
                np.where(
                    flag, np.where(y == 1, c.true_positive, c.false_positive), np.where(y == 1, f, 0.0)
                ).sum()
            )

        candidates = [total(p >= t) for t in np.unique(p)] + [total(np.zeros(n, dtype=bool))]
        choice = choose_threshold(y, p, spec, amounts=amt)
        assert choice.validation_score * n == pytest.approx(min(candidates))
        assert total(p >= choice.value) == pytest.approx(min(candidates))


def test_min_cost_flags_nothing_when_misses_are_cheap() -> None:
    y, p = _scores(200, 1)
    spec = ThresholdSpec(strategy="min_cost", costs=CostMatrix(false_negative=0.01, false_positive=5))
    choice = choose_threshold(y, p, spec)
    assert not (p >= choice.value).any()


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_data() -> None:
    y, p = _scores(600, 2, signal=1.5, rate=0.2)
    low, high = bootstrap_auc_interval(y, p, resamples=400, seed=1)
    assert low < roc_auc_score(y, p) < high
    assert (low, high) == bootstrap_auc_interval(y, p, resamples=400, seed=1)
    y4, p4 = _scores(6000, 2, signal=1.5, rate=0.2)
    low4, high4 = bootstrap_auc_interval(y4, p4, resamples=400, seed=1)
    assert (high4 - low4) < 0.6 * (high - low)  # about 1/sqrt(10) as wide


def test_cluster_bootstrap_moves_an_entitys_rows_together() -> None:
    y, p = _scores(300, 3, signal=1.5, rate=0.2)
    # each entity appears 4 times: a row bootstrap would pretend there are 4x as many independent rows
    yy, pp, ent = np.repeat(y, 4), np.repeat(p, 4), np.repeat(np.arange(300), 4)
    rows = bootstrap_auc_interval(yy, pp, resamples=400, seed=0)
    clusters = bootstrap_auc_interval(yy, pp, resamples=400, seed=0, entities=ent)
    single = bootstrap_auc_interval(y, p, resamples=400, seed=0)
    assert clusters[1] - clusters[0] == pytest.approx(single[1] - single[0], rel=0.25)
    assert rows[1] - rows[0] < 0.7 * (clusters[1] - clusters[0])


def test_calibration_of_true_probabilities() -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(1, 15, 200_000)
    y = (rng.random(p.size) < p).astype(np.int64)
    bins = calibration_bins(y, p, bins=10)
    assert sum(b.count for b in bins) == p.size
    for b in bins:
        assert b.observed_rate == pytest.approx(b.mean_predicted, abs=0.01)


def test_metrics_at_a_threshold_match_counts() -> None:
    y, p = _scores(500, 5, signal=2.0)
    m = classification_metrics(y, p, 0.2)
    flagged = p >= 0.2
    c = m.confusion
    assert (c.tp, c.fp, c.fn, c.tn) == (
        int((flagged & (y == 1)).sum()),
        int((flagged & (y == 0)).sum()),
        int((~flagged & (y == 1)).sum()),
        int((~flagged & (y == 0)).sum()),
    )
    assert m.f1 == pytest.approx(f1_score(y, flagged))
    assert m.accuracy == pytest.approx((c.tp + c.tn) / 500)
    per_row = classification_metrics(y, p, np.full(500, 0.2))
    assert per_row.confusion == c and per_row.threshold is None


def test_evaluate_picks_on_validation_and_reports_on_test() -> None:
    yv, pv = _scores(800, 6, signal=2.0)
    yt, pt = _scores(800, 7, signal=2.0)
    ev = evaluate(yv, pv, yt, pt, ThresholdSpec(), bootstrap_resamples=100)
    assert ev.threshold.value == choose_threshold(yv, pv, ThresholdSpec()).value
    assert ev.test.roc_auc == pytest.approx(roc_auc_score(yt, pt))
    assert ev.test.f1 == pytest.approx(f1_score(yt, pt >= ev.threshold.value))
    assert any(s.threshold == ev.threshold.value for s in ev.sweep)
    assert ev.roc_curve.x[0] == 0.0 and ev.roc_curve.y[-1] == 1.0


def test_single_class_is_refused() -> None:
    with pytest.raises(ValidationError, match="both positive and negative"):
        classification_metrics(np.zeros(10), np.linspace(0, 1, 10), 0.5)
