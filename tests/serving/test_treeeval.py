"""The compiled tree evaluator gives XGBoost's probabilities to 1e-6, on the article's data too."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from tideml.errors import ValidationError
from tideml.serving.treeeval import CompiledTrees


def article_matrix(article_data: Path) -> tuple[pd.DataFrame, np.ndarray]:
    claims = pd.read_csv(article_data / "claims.csv")
    customers = pd.read_csv(article_data / "customers.csv")
    df = claims.merge(customers, on="policy_id")
    y = df.pop("fraud").to_numpy()
    df = pd.get_dummies(df.drop(columns=["policy_id"]), dtype=float)
    return df.astype(float), y


@pytest.mark.parametrize(
    "params",
    [
        {"max_depth": 3, "eta": 0.2},
        {"max_depth": 6, "eta": 0.1, "min_child_weight": 0.5},
    ],
)
def test_matches_xgboost_on_the_article_data(article_data: Path, params: dict[str, float]) -> None:
    x, y = article_matrix(article_data)
    x.iloc[::11, 3] = np.nan  # missing values take the learned default branch
    booster = xgb.train(
        {"objective": "binary:logistic", "seed": 0, "nthread": 1, **params},
        xgb.DMatrix(x, y, missing=np.nan),
        num_boost_round=60,
    )
    expected = booster.predict(xgb.DMatrix(x, missing=np.nan))
    trees = CompiledTrees.from_booster(booster)
    assert trees.feature_names == list(x.columns)
    batch = trees.predict_proba(x.to_numpy())
    np.testing.assert_allclose(batch, expected, atol=1e-6, rtol=0)
    rows = x.to_numpy()
    single = np.array([trees.predict_proba_row(list(r)) for r in rows[:500]])
    np.testing.assert_allclose(single, expected[:500], atol=1e-6, rtol=0)


def test_thresholds_compare_in_float32_and_none_is_missing() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 4)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    y = (np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) > 0).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 4, "nthread": 1}, xgb.DMatrix(x, y), 30)
    trees = CompiledTrees.from_booster(booster)
    # Values exactly at a threshold, and float64 values that round to it in float32.
    first = trees.trees[0]
    thr = float(first.threshold[0])
    feat = int(first.feature[0])
    probe = np.zeros((3, 4))
    probe[:, feat] = [thr, np.nextafter(np.float32(thr), np.float32(-np.inf)), thr + 1e-12]
    expected = booster.predict(xgb.DMatrix(probe.astype(np.float32)))
    got = [trees.predict_proba_row(list(r)) for r in probe]
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    row: list[float | None] = [None, 0.3, None, -1.0]
    want = booster.predict(xgb.DMatrix(np.array([[np.nan, 0.3, np.nan, -1.0]], dtype=np.float32)))[0]
    assert math.isclose(trees.predict_proba_row(row), float(want), abs_tol=1e-6)


def test_truncation_to_the_best_iteration() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 3))
    y = (x[:, 0] > 0).astype(int)
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, y), 20)
    trees = CompiledTrees.from_booster(booster, n_trees=7)
    expected = booster.predict(xgb.DMatrix(x), iteration_range=(0, 7))
    np.testing.assert_allclose(trees.predict_proba(x), expected, atol=1e-6, rtol=0)


def test_refuses_unsupported_models_and_bad_input() -> None:
    x = np.random.default_rng(2).normal(size=(100, 2))
    reg = xgb.train({"objective": "reg:squarederror"}, xgb.DMatrix(x, x[:, 0]), 3)
    with pytest.raises(ValidationError, match="objective 'reg:squarederror'"):
        CompiledTrees.from_booster(reg)
    clf = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, (x[:, 0] > 0).astype(int)), 3)
    trees = CompiledTrees.from_booster(clf)
    with pytest.raises(ValidationError, match="expected 2 features, got 3"):
        trees.predict_proba_row([1.0, 2.0, 3.0])
    with pytest.raises(ValidationError, match=r"expected shape \(n, 2\)"):
        trees.predict_proba(np.zeros((4, 3)))
