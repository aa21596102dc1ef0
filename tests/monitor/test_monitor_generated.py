"""What the monitor must show on generated auto-claims data: no drift → no violation, a drifted population
→ the expected violations naming the features, and a false-alarm rate of the default drift tests <= 5%."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest

from tideml.datasets.drift import AutoclaimsDrift, drifted_autoclaims_frames
from tideml.monitor import compare_features, compute_statistics, run_checks, suggest_baseline
from tideml.monitor.checks import check_data_quality

THRESHOLD = 0.05


@pytest.fixture(scope="module")
def baseline(reference: pl.DataFrame):  # type: ignore[no-untyped-def]
    return suggest_baseline(
        reference, label_column="fraud", prediction_column="probability", threshold=THRESHOLD
    )


def test_a_window_without_drift_raises_no_violation(baseline, make_claims, score, capture_of) -> None:  # type: ignore[no-untyped-def]
    claims = make_claims(5000, 201)
    window, labels = capture_of(claims, score(claims), "ok")
    result = run_checks(baseline, window, labels=labels)
    assert result.violations == [], [v.to_json() for v in result.violations]
    assert result.rows == 5000
    assert {d.method for d in result.drift} == {
        "wasserstein_normed",
        "jensen_shannon",
    }  # 5000 rows: distances
    assert result.model_quality is not None and result.model_quality.statistics is not None
    assert result.model_quality.join is not None and result.model_quality.join.matched == 5000


def test_a_drifted_window_raises_the_expected_violations_naming_the_features(
    baseline, make_claims, score, capture_of
) -> None:  # type: ignore[no-untyped-def]
    drift = AutoclaimsDrift(
        extra_insurers=0.6, new_state="UT", new_state_share=0.2, fraud_pattern=1.0, seed=5
    )
    claims = make_claims(5000, 202, drift)
    window, labels = capture_of(claims, score(claims), "drift")
    result = run_checks(baseline, window, labels=labels)
    found = {(v.constraint_check_type, v.subject) for v in result.violations}
    assert ("categorical_values_check", "policy_state") in found
    assert ("baseline_drift_check", "policy_state") in found
    assert ("baseline_drift_check", "num_insurers_past_5_years") in found
    assert ("baseline_drift_check", "probability") in found  # prediction drift
    assert ("LessThanThreshold", "auc") in found  # the changed fraud pattern costs AUC
    drifted = {d.name for d in result.drift if d.drifted}
    assert drifted == {"policy_state", "num_insurers_past_5_years", "probability"}
    state = next(v for v in result.violations if v.constraint_check_type == "categorical_values_check")
    assert "'UT'" in state.description
    prediction = next(v for v in result.violations if v.subject == "probability")
    assert prediction.description.startswith("Prediction drift")
    auc = result.model_quality.metric("auc") if result.model_quality else None
    assert auc is not None and auc < 0.5


def test_only_the_changed_feature_drifts(baseline, make_claims, score, capture_of) -> None:  # type: ignore[no-untyped-def]
    claims = make_claims(3000, 203, AutoclaimsDrift(new_state="UT", new_state_share=0.3, seed=1))
    window, _ = capture_of(claims, score(claims), "state")
    result = run_checks(baseline, window)
    assert {v.subject for v in result.violations} == {"policy_state"}
    assert {v.constraint_check_type for v in result.violations} == {
        "categorical_values_check",
        "baseline_drift_check",
    }


def test_false_alarm_rate_over_100_undrifted_windows_is_at_most_5_percent(reference, make_claims) -> None:  # type: ignore[no-untyped-def]
    features = reference.drop("fraud", "probability")
    base = suggest_baseline(features)
    types = base.types
    pool = make_claims(100 * 300, 204).drop("fraud")
    started = time.perf_counter()
    alarms = 0
    quality = 0
    for i in range(100):
        window = pool.slice(i * 300, 300)
        stats = compute_statistics(window, types=types)
        drift = compare_features(base.statistics, stats, base.constraints)
        assert {d.method for d in drift} <= {"ks_test", "chi2_test"}  # 300 rows: the statistical tests
        alarms += any(d.drifted for d in drift)
        quality += bool(check_data_quality(base.constraints, stats, window_columns=window.columns))
    print(f"false alarms: drift {alarms}/100, data quality {quality}/100")
    assert alarms <= 5, f"{alarms} of 100 undrifted windows raised a drift violation"
    assert quality <= 5
    assert time.perf_counter() - started < 20


def test_default_tests_detect_a_moderate_shift_in_small_windows(reference, make_claims) -> None:  # type: ignore[no-untyped-def]
    base = suggest_baseline(reference.drop("fraud", "probability"))
    pool = make_claims(20 * 500, 205, AutoclaimsDrift(extra_insurers=0.5, seed=2)).drop("fraud")
    caught = 0
    for i in range(20):
        stats = compute_statistics(pool.slice(i * 500, 500), types=base.types)
        drift = {d.name: d for d in compare_features(base.statistics, stats, base.constraints)}
        caught += drift["num_insurers_past_5_years"].drifted
    assert caught >= 18  # power: a real shift is found in (nearly) every window


def test_drifted_population_changes_what_it_says(make_claims) -> None:  # type: ignore[no-untyped-def]
    from tideml.datasets import oracle_auc

    plain_c, plain_l = drifted_autoclaims_frames(policies=20_000, seed=9, with_probability=True)
    drift = AutoclaimsDrift(
        extra_insurers=0.5, new_state="UT", new_state_share=0.1, fraud_pattern=1.0, seed=3
    )
    c, claims = drifted_autoclaims_frames(policies=20_000, seed=9, drift=drift, with_probability=True)
    assert c["num_insurers_past_5_years"].mean() > plain_c["num_insurers_past_5_years"].mean() + 0.3
    assert c["num_insurers_past_5_years"].max() == 5
    share = float((c["policy_state"] == "UT").mean())
    assert 0.08 < share < 0.12
    # labels are redrawn from the new probability: the new pattern is what predicts them
    assert oracle_auc(claims) > 0.7
    collision = (claims["incident_type"] == "Collision").to_numpy()
    old_rate = plain_l["fraud"].to_numpy()[collision].mean()
    new_rate = claims["fraud"].to_numpy()[collision].mean()
    assert new_rate > 1.5 * old_rate
    # no drift, no change: the identity drift returns the same frames
    same_c, same_l = drifted_autoclaims_frames(policies=1000, seed=9, drift=AutoclaimsDrift())
    base_c, base_l = drifted_autoclaims_frames(policies=1000, seed=9)
    assert same_c.equals(base_c) and same_l.equals(base_l)


def test_relabelling_keeps_labels_bernoulli_of_the_new_probability() -> None:
    drift = AutoclaimsDrift(extra_insurers=1.0, seed=4)
    _, claims = drifted_autoclaims_frames(policies=200_000, seed=11, drift=drift, with_probability=True)
    p = claims["fraud_probability"].to_numpy()
    y = claims["fraud"].to_numpy()
    expected, observed = p.sum(), y.sum()
    assert abs(observed - expected) < 4 * np.sqrt((p * (1 - p)).sum())


def test_drift_settings_are_validated() -> None:
    from tideml.errors import ValidationError

    with pytest.raises(ValidationError, match="extra_insurers"):
        AutoclaimsDrift(extra_insurers=1.5)
    with pytest.raises(ValidationError, match="new_state"):
        AutoclaimsDrift(new_state_share=0.2)
