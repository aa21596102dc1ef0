"""Bias mitigation: each method's mechanics, and the side-by-side comparison on the article's data."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tideml.errors import ValidationError
from tideml.train import (
    compare_mitigations,
    group_thresholds_on_validation,
    kamiran_calders_weights,
    predicted_positive_rate_gap,
    smote_facet,
)

TRAIN: dict[str, Any] = {"n_jobs": 1, "bootstrap_resamples": 100, "hyperparameters": {"num_round": 150}}


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.random(n) < 0.35
    y = (rng.random(n) < np.where(g, 0.05, 0.15)).astype(np.int64)
    X = np.column_stack([rng.normal(size=n) + y, g.astype(float), rng.normal(size=n)]).astype(np.float32)
    return X, y, g


@settings(max_examples=50, deadline=None)
@given(n=st.integers(50, 2000), seed=st.integers(0, 10_000))
def test_reweighing_makes_facet_and_label_independent(n: int, seed: int) -> None:
    _, y, g = _data(n, seed)
    w = kamiran_calders_weights(y, g)
    for gv in (False, True):
        for label in (0, 1):
            cell = (g == gv) & (y == label)
            if cell.any():
                weighted_joint = w[cell].sum() / n
                assert weighted_joint == pytest.approx((g == gv).mean() * (y == label).mean())
    if all(((g == gv) & (y == label)).any() for gv in (False, True) for label in (0, 1)):
        assert w.sum() == pytest.approx(n)  # an empty cell's expected mass has no row to carry it


def test_article_smote_balances_the_facet_not_the_label() -> None:
    X, y, g = _data(3000, 1)
    X2, y2, added = smote_facet(X, y, g, seed=42, facet_column=1)
    assert added == int((~g).sum() - g.sum())
    assert np.array_equal(X2[: X.shape[0]], X) and np.array_equal(y2[: y.size], y)
    synthetic = X2[X.shape[0] :]
    assert np.all(synthetic[:, 1] == 1.0)  # every synthetic row is in the under-represented facet
    assert int((X2[:, 1] == 1).sum()) == int((X2[:, 1] == 0).sum())
    assert set(np.unique(y2)) <= {0, 1}


def test_label_preserving_smote_balances_each_label_class() -> None:
    X, y, g = _data(3000, 2)
    X2, y2, added = smote_facet(X, y, g, seed=42, label_preserving=True, facet_column=1)
    facet = X2[:, 1] == 1
    for label in (0, 1):
        assert int((facet & (y2 == label)).sum()) == int((~facet & (y2 == label)).sum())
    assert added == X2.shape[0] - X.shape[0] > 0


def test_smote_refuses_an_empty_cell() -> None:
    X, y, g = _data(200, 3)
    y[g] = 0
    with pytest.raises(ValidationError, match="SMOTE needs"):
        smote_facet(X, y, g, label_preserving=True)


def test_parity_thresholds_equalise_flagged_shares_on_validation() -> None:
    rng = np.random.default_rng(0)
    g = rng.random(4000) < 0.4
    p = np.clip(rng.beta(1, 20, 4000) * np.where(g, 0.5, 1.5), 0, 1)
    y = (rng.random(4000) < p).astype(np.int64)
    t_d, t_a = group_thresholds_on_validation(y, p, g, 0.08)
    target = (p >= 0.08).mean()
    assert (p[g] >= t_d).mean() == pytest.approx(target, abs=0.002)
    assert (p[~g] >= t_a).mean() == pytest.approx(target, abs=0.002)
    assert t_d < 0.08 < t_a  # the lower-scored facet gets the lower threshold


def test_dppl_comes_from_clarify_and_matches_the_rates() -> None:
    rng = np.random.default_rng(1)
    g = rng.random(1000) < 0.4
    flagged = rng.random(1000) < np.where(g, 0.05, 0.12)
    y = (rng.random(1000) < 0.1).astype(np.int64)
    rate_d, rate_a, dppl = predicted_positive_rate_gap(y, flagged, g)
    assert rate_d == pytest.approx(flagged[g].mean()) and rate_a == pytest.approx(flagged[~g].mean())
    assert dppl == pytest.approx(rate_a - rate_d)


def test_comparison_on_the_article(article_frame: pl.DataFrame) -> None:
    result = compare_mitigations(article_frame, TRAIN, facet="customer_gender_female", progress=False)
    table = {row.method: row for row in result.rows}
    assert list(table) == ["none", "smote", "smote_label_preserving", "reweighing", "group_thresholds"]
    none, groups = table["none"], table["group_thresholds"]
    # per-group thresholds change decisions, not scores
    assert groups.test_auc == none.test_auc and groups.facet_threshold is not None
    assert (
        table["smote"].synthetic_rows > 0
        and table["smote"].training_rows == 3000 + table["smote"].synthetic_rows
    )
    for row in result.rows:
        assert row.dppl == pytest.approx(row.flagged_rate_other - row.flagged_rate_facet)
        assert 0.6 < row.test_auc < 1.0
    # the per-group model carries its thresholds and applies them when scoring
    model = result.results["group_thresholds"].model
    assert model.spec.group_thresholds is not None and model.spec.mitigation is not None
    frame = article_frame[result.results["none"].split.test.tolist()]
    decisions = model.predict(frame)
    scores = model.predict_proba(frame)
    female = frame["customer_gender_female"].to_numpy() == 1
    expected = scores >= np.where(female, groups.facet_threshold, groups.other_threshold)
    assert np.array_equal(decisions, expected.astype(np.int64))
    assert groups.flagged_rate_facet == pytest.approx(decisions[female].mean())
    # the reweighed model records its weights
    weights = result.results["reweighing"].model.spec.mitigation
    assert weights is not None and set(weights["weights"]) == {
        "facet=1,label=0",
        "facet=1,label=1",
        "facet=0,label=0",
        "facet=0,label=1",
    }


def test_bad_facet_and_method(article_frame: pl.DataFrame) -> None:
    with pytest.raises(ValidationError, match="facet column is missing"):
        compare_mitigations(article_frame, TRAIN, facet="gender", progress=False)
    with pytest.raises(ValidationError, match="every row"):
        compare_mitigations(
            article_frame, TRAIN, facet="customer_gender_female", facet_value=7, progress=False
        )
    with pytest.raises(ValidationError, match="unknown mitigation"):
        compare_mitigations(article_frame, TRAIN, methods=["magic"], progress=False)


def test_smote_searches_neighbours_with_a_tree_only_where_it_prunes() -> None:
    """The KD-tree is chosen by counting its distance computations (the same choice on every run)."""
    from tideml.train.mitigate import _neighbour_search

    rng = np.random.default_rng(0)
    low = rng.normal(size=(20_000, 3))  # a tree prunes well: ~1 % of the rows per query
    high = rng.normal(size=(4_000, 40))  # a tree visits every row: brute force is 30x faster
    assert _neighbour_search(low, 5, seed=0).algorithm == "kd_tree"
    assert _neighbour_search(high, 5, seed=0).algorithm == "auto"
    assert _neighbour_search(low, 5, seed=0).algorithm == _neighbour_search(low, 5, seed=0).algorithm


def test_smote_gives_the_same_rows_whichever_neighbour_search(monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.neighbors import NearestNeighbors

    import tideml.train.mitigate as mitigate

    rng = np.random.default_rng(1)
    X = rng.normal(size=(6_000, 3)).astype(np.float32)
    y = (rng.random(6_000) < 0.1).astype(np.int64)
    in_facet = rng.random(6_000) < 0.3
    tree = mitigate.smote_facet(X, y, in_facet, seed=3)
    monkeypatch.setattr(
        mitigate,
        "_neighbour_search",
        lambda rows, k, seed: NearestNeighbors(n_neighbors=k + 1, algorithm="brute"),
    )
    brute = mitigate.smote_facet(X, y, in_facet, seed=3)
    assert tree[2] == brute[2] > 0
    np.testing.assert_array_equal(tree[0], brute[0])
    np.testing.assert_array_equal(tree[1], brute[1])
