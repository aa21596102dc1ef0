"""TreeSHAP via XGBoost's pred_contribs against shap.TreeExplainer, additivity, interactions, one-record
explanations, and Kernel SHAP additivity with a median baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shap
import xgboost as xgb

from tideml.clarify import KernelShapExplainer, TreeShapExplainer, aggregate
from tideml.clarify.explain import kernel_num_samples
from tideml.errors import ValidationError


@pytest.fixture(scope="module")
def model_and_data() -> tuple[xgb.Booster, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 2000
    x = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"x{i}" for i in range(6)])
    x["flag"] = rng.integers(0, 2, n)
    logit = 1.5 * x["x0"] - x["x1"] * x["x2"] + 0.8 * x["flag"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3, "nthread": 1, "seed": 0},
        xgb.DMatrix(x, label=y),
        40,
    )
    return booster, x


def test_tree_shap_rows_sum_to_margin_and_equal_shap(
    model_and_data: tuple[xgb.Booster, pd.DataFrame],
) -> None:
    booster, x = model_and_data
    explainer = TreeShapExplainer(booster)
    rows = x.iloc[:300]
    e = explainer.explain(rows, progress=False)
    margin = booster.predict(xgb.DMatrix(rows), output_margin=True)
    assert np.max(np.abs(e.values.sum(axis=1) + e.expected_value - margin)) < 1e-5
    reference = shap.TreeExplainer(booster)
    assert np.max(np.abs(reference.shap_values(rows) - e.values)) < 1e-6
    assert e.expected_value == pytest.approx(float(np.ravel(reference.expected_value)[0]), abs=1e-6)
    assert e.expected_value == pytest.approx(explainer.expected_value, abs=1e-6)


def test_interaction_values_sum_to_contributions(model_and_data: tuple[xgb.Booster, pd.DataFrame]) -> None:
    booster, x = model_and_data
    explainer = TreeShapExplainer(booster)
    rows = x.iloc[:20]
    e = explainer.explain(rows, interactions=True, progress=False)
    assert e.interactions is not None and e.interactions.shape == (20, 8, 8)
    assert np.allclose(e.interactions.sum(axis=2)[:, :-1], e.values, atol=1e-5)


def test_one_record_equals_the_batch(model_and_data: tuple[xgb.Booster, pd.DataFrame]) -> None:
    booster, x = model_and_data
    explainer = TreeShapExplainer(booster)
    batch = explainer.explain(x.iloc[:5], progress=False)
    for i in range(5):
        rec = explainer.explain_record(x.iloc[i].to_dict())
        assert np.allclose(list(rec.contributions.values()), batch.values[i], atol=1e-6)
        assert rec.prediction == pytest.approx(
            float(booster.predict(xgb.DMatrix(x.iloc[i : i + 1]))[0]), abs=1e-6
        )
        assert rec.top(2)[0][0] == batch.feature_names[int(np.argmax(np.abs(batch.values[i])))]
    same = explainer.explain_record(x.iloc[0].to_numpy())
    assert same.margin == pytest.approx(explainer.explain_record(x.iloc[0].to_dict()).margin)


def test_tree_shap_with_native_categorical_features() -> None:
    rng = np.random.default_rng(1)
    n = 600
    x = pd.DataFrame(
        {"state": pd.Categorical(rng.choice(["CA", "WA", "AZ"], n)), "amount": rng.normal(size=n)}
    )
    y = ((x["state"] == "WA").to_numpy() | (x["amount"].to_numpy() > 1)).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
        xgb.DMatrix(x, label=y, enable_categorical=True),
        10,
    )
    e = TreeShapExplainer(booster).explain(x.iloc[:50], progress=False)
    margin = booster.predict(xgb.DMatrix(x.iloc[:50], enable_categorical=True), output_margin=True)
    assert e.additivity_error(margin) < 1e-5


def test_kernel_shap_is_additive_with_a_median_baseline(
    model_and_data: tuple[xgb.Booster, pd.DataFrame],
) -> None:
    booster, x = model_and_data
    kernel = KernelShapExplainer(booster, x, baseline="median", num_samples=200, seed=0)
    rows = x.iloc[:4]
    e = kernel.explain(rows, progress=False)
    prediction = booster.predict(xgb.DMatrix(rows))
    assert e.additivity_error(prediction) < 1e-6
    assert kernel.expected_value == pytest.approx(
        float(booster.predict(xgb.DMatrix(x.median().to_frame().T))[0])
    )
    again = KernelShapExplainer(booster, x, baseline="median", num_samples=200, seed=0).explain(
        rows, progress=False
    )
    assert np.array_equal(e.values, again.values)  # seeded


def test_kernel_shap_logit_link_is_additive_in_log_odds(
    model_and_data: tuple[xgb.Booster, pd.DataFrame],
) -> None:
    booster, x = model_and_data
    kernel = KernelShapExplainer(booster, x, num_clusters=3, num_samples=128, use_logit=True, seed=1)
    rows = x.iloc[:3]
    e = kernel.explain(rows, progress=False)
    margin = booster.predict(xgb.DMatrix(rows), output_margin=True)
    assert e.additivity_error(margin) < 1e-6
    assert e.output == "log-odds"


def test_kernel_shap_works_for_any_predict_function() -> None:
    rng = np.random.default_rng(2)
    x = pd.DataFrame(rng.normal(size=(100, 3)), columns=["a", "b", "c"])

    def linear(frame: pd.DataFrame) -> np.ndarray:
        return 2.0 * frame["a"].to_numpy() - frame["b"].to_numpy()

    kernel = KernelShapExplainer(
        linear, x, baseline=[[0.0, 0.0, 0.0]], num_samples=50, feature_names=["a", "b", "c"]
    )
    e = kernel.explain(x.iloc[:2], progress=False)
    # For a linear model with a zero baseline, the exact SHAP value of a feature is coef * value.
    assert np.allclose(e.values[:, 0], 2.0 * x["a"].iloc[:2], atol=1e-8)
    assert np.allclose(e.values[:, 1], -x["b"].iloc[:2], atol=1e-8)
    assert np.allclose(e.values[:, 2], 0.0, atol=1e-8)


def test_aggregation_and_clarify_layout(model_and_data: tuple[xgb.Booster, pd.DataFrame]) -> None:
    booster, x = model_and_data
    e = TreeShapExplainer(booster).explain(x.iloc[:100], progress=False)
    v = e.values
    assert np.allclose(aggregate(v, "mean_abs"), np.abs(v).mean(axis=0))
    assert np.allclose(aggregate(v, "mean_sq"), (v**2).mean(axis=0))
    assert np.allclose(aggregate(v, "median"), np.median(v, axis=0))
    layout = e.clarify("mean_abs")
    assert set(layout) == {"label0"}
    assert set(layout["label0"]) == {"global_shap_values", "expected_value"}
    assert list(layout["label0"]["global_shap_values"]) == list(x.columns)
    assert e.ranking()[0] == "x0"
    with pytest.raises(ValidationError):
        aggregate(v, "max")  # type: ignore[arg-type]


def test_num_samples_follows_clarify() -> None:
    assert kernel_num_samples(10, None) == 2**10 - 2
    assert kernel_num_samples(20, None) == 2 * 20 + 2048
    assert kernel_num_samples(45, 100) == 100
    assert kernel_num_samples(3, 100) == 6


def test_model_files_load_but_pickles_never(
    tmp_path: Path, model_and_data: tuple[xgb.Booster, pd.DataFrame]
) -> None:
    booster, x = model_and_data
    for suffix in ("json", "ubj"):
        path = tmp_path / f"m.{suffix}"
        booster.save_model(str(path))
        e = TreeShapExplainer(str(path)).explain(x.iloc[:3], progress=False)
        assert e.values.shape == (3, 7)
    pkl = tmp_path / "m.pkl"
    pkl.write_bytes(b"\x80\x04.")
    with pytest.raises(ValidationError, match="pickles are never loaded"):
        TreeShapExplainer(str(pkl))
