"""No entity on two sides of a split or fold; stratified; seeded."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tideml.errors import ValidationError
from tideml.train import (
    SplitSpec,
    TrainSpec,
    assert_disjoint_entities,
    build_matrix,
    entity_folds,
    entity_split,
)


def _rows(entities: int, rows_per: int, positive_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    keys = np.repeat(rng.permutation(entities * 7)[:entities], rows_per)
    entity_positive = rng.random(entities) < positive_share
    labels = np.repeat(entity_positive, rows_per) & (rng.random(entities * rows_per) < 0.7)
    labels[::rows_per] |= np.repeat(entity_positive, 1)  # every positive entity has a positive row
    return keys, labels.astype(np.int64)


@settings(max_examples=40, deadline=None)
@given(
    entities=st.integers(60, 400),
    rows_per=st.integers(1, 4),
    share=st.floats(0.05, 0.5),
    seed=st.integers(0, 10_000),
)
def test_no_entity_in_two_splits_and_every_row_used_once(
    entities: int, rows_per: int, share: float, seed: int
) -> None:
    keys, y = _rows(entities, rows_per, share, seed)
    if y.sum() < 3 * rows_per:
        return
    split = entity_split(keys, y, SplitSpec(), seed=seed)
    parts = [set(keys[rows].tolist()) for rows in (split.train, split.validation, split.test)]
    assert parts[0].isdisjoint(parts[1]) and parts[0].isdisjoint(parts[2]) and parts[1].isdisjoint(parts[2])
    everything = np.sort(np.concatenate([split.train, split.validation, split.test]))
    assert np.array_equal(everything, np.arange(keys.size))


def test_stratified_shares_and_fractions() -> None:
    keys, y = _rows(5000, 1, 0.033, 1)
    split = entity_split(keys, y, SplitSpec(test_fraction=0.2, validation_fraction=0.2), seed=3)
    summary = split.summary(y, keys)
    assert summary["test"]["entities"] == pytest.approx(1000, abs=2)
    assert summary["validation"]["entities"] == pytest.approx(1000, abs=2)
    rates = [summary[name]["positive_rate"] for name in ("train", "validation", "test")]
    assert max(rates) - min(rates) < 0.002  # dealt per stratum, so equal up to rounding


def test_seeded_and_seed_sensitive() -> None:
    keys, y = _rows(800, 2, 0.1, 0)
    a = entity_split(keys, y, SplitSpec(), seed=5)
    b = entity_split(keys, y, SplitSpec(), seed=5)
    c = entity_split(keys, y, SplitSpec(), seed=6)
    assert np.array_equal(a.test, b.test) and np.array_equal(a.train, b.train)
    assert not np.array_equal(a.test, c.test)


def test_the_articles_policies_never_cross_splits(article_frame: pl.DataFrame) -> None:
    matrix = build_matrix(article_frame, TrainSpec())
    split = entity_split(matrix.entities, matrix.y, SplitSpec(), seed=0)
    ids = [set(matrix.entities[rows].tolist()) for rows in (split.train, split.validation, split.test)]
    assert sum(len(i) for i in ids) == 5000 == len(set().union(*ids))
    positives = [int(matrix.y[rows].sum()) for rows in (split.train, split.validation, split.test)]
    assert positives == [98, 33, 33]  # 164 frauds dealt 60/20/20


def test_too_few_positives_is_a_clear_error() -> None:
    keys = np.arange(100)
    y = np.zeros(100, dtype=np.int64)
    y[:2] = 1
    with pytest.raises(ValidationError, match="every split needs both") as info:
        entity_split(keys, y, SplitSpec(), seed=0)
    assert info.value.fix is not None and "more entities" in info.value.fix


def test_folds_group_entities_and_balance_positives() -> None:
    keys, y = _rows(1000, 3, 0.1, 4)
    folds = entity_folds(keys, y, 5, seed=0)
    for key in np.unique(keys):
        assert np.unique(folds[keys == key]).size == 1
    per_fold_positive_entities = [np.unique(keys[(folds == f) & (y == 1)]).size for f in range(5)]
    assert max(per_fold_positive_entities) - min(per_fold_positive_entities) <= 1
    sizes = [np.unique(keys[folds == f]).size for f in range(5)]
    assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValidationError, match="cannot fill"):
        entity_folds(keys[:20], np.r_[np.ones(2), np.zeros(18)].astype(np.int64), 5, seed=0)


def test_assert_disjoint_entities_catches_the_articles_leak() -> None:
    keys = np.array([1, 1, 2, 3, 4, 4])
    with pytest.raises(ValidationError, match="appear in two splits"):
        assert_disjoint_entities(keys, np.array([0, 2]), np.array([1, 3]))  # policy 1 on both sides
    assert_disjoint_entities(keys, np.array([0, 1, 2]), np.array([3, 4, 5]))
