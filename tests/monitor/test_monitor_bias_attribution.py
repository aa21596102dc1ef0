"""Bias drift (through tideml.clarify) and feature-attribution drift (NDCG of mean |SHAP| rankings)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from tideml.datasets import autoclaims_frames
from tideml.monitor import BiasDriftConfig, BiasFacet, attribution_drift, ndcg, run_checks, suggest_baseline


def test_ndcg_follows_the_managed_formula() -> None:
    base = {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}
    assert ndcg(base, base) == 1.0
    live = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}  # reversed ranking
    dcg = 1 / math.log2(2) + 2 / math.log2(3) + 3 / math.log2(4) + 4 / math.log2(5)
    idcg = 4 / math.log2(2) + 3 / math.log2(3) + 2 / math.log2(4) + 1 / math.log2(5)
    assert ndcg(base, live) == pytest.approx(dcg / idcg)
    assert ndcg(base, {"a": 10.0, "b": 9.0, "c": 8.0, "d": 7.0}) == 1.0  # only the ranking matters
    result = attribution_drift(base, live, threshold=0.9)
    assert result.ndcg < 0.9
    [v] = result.violations
    assert v.to_json() == {
        "label": "label0",
        "metric_name": "ndcg",
        "constraint_check_type": "feature_attribution_drift_check",
        "description": v.description,
    }
    assert attribution_drift(base, base).violations == []


def test_attribution_drift_is_found_when_minor_features_take_over(
    reference, make_claims, score, capture_of, fraud_model
) -> None:  # type: ignore[no-untyped-def]
    from tests_monitor_support import MODEL_FEATURES

    base = suggest_baseline(
        reference,
        label_column="fraud",
        prediction_column="probability",
        threshold=0.05,
        model=fraud_model,
        attribution_features=MODEL_FEATURES,
        attribution_sample=1000,
    )
    same = make_claims(2000, 501)
    ok = run_checks(base, capture_of(same, score(same), "a")[0], model=fraud_model)
    assert ok.attribution is not None and ok.attribution.ndcg > 0.95
    assert not any(v.monitor == "attribution" for v in ok.violations)
    # the five least important features jump between their extremes: they now drive the explanations
    baseline_values = ok.attribution.baseline
    minor = sorted(baseline_values, key=lambda f: baseline_values[f])[:5]
    rng = np.random.default_rng(0)
    shifted = make_claims(2000, 502)
    shifted = shifted.with_columns(
        [
            pl.Series(
                f, np.where(rng.random(shifted.height) < 0.5, reference[f].min(), reference[f].max())
            ).cast(shifted[f].dtype)
            for f in minor
        ]
    )
    bad = run_checks(base, capture_of(shifted, score(shifted), "b")[0], model=fraud_model)
    assert bad.attribution is not None and bad.attribution.ndcg < 0.9
    [violation] = [v for v in bad.violations if v.monitor == "attribution"]
    assert violation.constraint_check_type == "feature_attribution_drift_check"
    top_now = max(bad.attribution.window, key=lambda f: bad.attribution.window[f])  # type: ignore[union-attr]
    assert top_now in minor


def test_bias_drift_names_the_facet_and_metric(score, capture_of) -> None:  # type: ignore[no-untyped-def]
    def claims(n: int, seed: int, odds: float) -> pl.DataFrame:
        c, cl = autoclaims_frames(policies=n, seed=seed, female_fraud_odds_ratio=odds)
        return c.join(cl, on="policy_id").drop("policy_id")

    ref = claims(20_000, 601, 0.3)
    ref = ref.with_columns(pl.Series("probability", score(ref)))
    config = BiasDriftConfig(
        facets=[BiasFacet(name="customer_gender", value_or_threshold=["Female"])],
        pre_training=["CI", "DPL"],
        post_training=["DPPL"],
        tolerance=0.02,
    )
    base = suggest_baseline(
        ref, label_column="fraud", prediction_column="probability", threshold=0.05, bias=config
    )
    assert base.bias is not None and "pre_training_bias_metrics" in base.bias
    same = claims(8000, 602, 0.3)
    window, labels = capture_of(same, score(same), "s")
    ok = run_checks(base, window, labels=labels)
    assert ok.bias is not None and ok.bias.violations == []
    assert {c["metric_name"] for c in ok.bias.comparisons} == {"CI", "DPL", "DPPL"}
    # the gender gap reverses: women now commit fraud 10x as often as comparable men (4x: a gap of about
    # the baseline's size with the other sign, which the managed rule accepts and rule="change" does not)
    shifted = claims(8000, 603, 10.0)
    window, labels = capture_of(shifted, score(shifted), "t")
    bad = run_checks(base, window, labels=labels)
    found = [v.to_json() for v in bad.violations if v.monitor == "bias"]
    assert found and all(v["facet"] == "customer_gender" and v["facet_value"] == "Female" for v in found)
    assert {v["metric_name"] for v in found} == {"DPL"}
    assert all(v["constraint_check_type"] == "bias_drift_check" for v in found)
    reversed_gap = claims(8000, 604, 4.0)
    window, labels = capture_of(reversed_gap, score(reversed_gap), "u")
    assert not any(v.monitor == "bias" for v in run_checks(base, window, labels=labels).violations)
    base.settings.bias = config.model_copy(update={"rule": "change"})
    flagged = run_checks(base, window, labels=labels).violations
    assert "DPL" in {v.metric_name for v in flagged if v.monitor == "bias"}


def test_bias_drift_without_labels_is_skipped_with_a_note(reference, make_claims, score, capture_of) -> None:  # type: ignore[no-untyped-def]
    config = BiasDriftConfig(facets=[BiasFacet(name="customer_gender", value_or_threshold=["Female"])])
    base = suggest_baseline(
        reference.head(5000),
        label_column="fraud",
        prediction_column="probability",
        threshold=0.05,
        bias=config,
    )
    claims = make_claims(500, 604)
    window, _ = capture_of(claims, score(claims), "n")
    result = run_checks(base, window)
    assert result.bias is None and any("bias drift skipped" in n for n in result.notes)
    assert np.isfinite(result.rows)
