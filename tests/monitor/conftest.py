"""Fixtures of the monitor tests: generated auto-claims populations and a small fraud model.

The model uses the numeric raw columns only, so a window of raw claims (strings included) is both what
the monitor checks and what the model scores, and TreeSHAP runs on it directly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl
import pytest
import xgboost as xgb
from tests_monitor_support import MODEL_FEATURES

from tideml.datasets.drift import AutoclaimsDrift, drifted_autoclaims_frames

THRESHOLD = 0.05

Make = Callable[..., pl.DataFrame]


def _claims(n: int, seed: int, drift: AutoclaimsDrift | None = None) -> pl.DataFrame:
    customers, claims = drifted_autoclaims_frames(policies=n, seed=seed, drift=drift)
    return customers.join(claims, on="policy_id").drop("policy_id")


@pytest.fixture(scope="session")
def make_claims() -> Make:
    """`make_claims(n, seed, drift=None)`: one row per policy, customers and claims joined, with `fraud`."""
    return _claims


@pytest.fixture(scope="session")
def fraud_model() -> xgb.Booster:
    """A small XGBoost model trained on 20,000 generated policies (seed 101)."""
    train = _claims(20_000, 101)
    dm = xgb.DMatrix(
        train.select(MODEL_FEATURES).to_numpy(), label=train["fraud"].to_numpy(), feature_names=MODEL_FEATURES
    )
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.2, "seed": 0, "nthread": 1}
    return xgb.train(params, dm, num_boost_round=60)


@pytest.fixture(scope="session")
def score(fraud_model: xgb.Booster) -> Callable[[pl.DataFrame], np.ndarray]:
    """Fraud probabilities of the model for a frame of raw claims."""

    def predict(frame: pl.DataFrame) -> np.ndarray:
        return np.asarray(
            fraud_model.inplace_predict(frame.select(MODEL_FEATURES).to_numpy()), dtype=np.float64
        )

    return predict


@pytest.fixture(scope="session")
def reference(score: Callable[[pl.DataFrame], np.ndarray]) -> pl.DataFrame:
    """Held-out reference data (seed 102, never trained on) with the model's probability."""
    frame = _claims(20_000, 102)
    return frame.with_columns(pl.Series("probability", score(frame)))


def as_capture(
    frame: pl.DataFrame, probabilities: np.ndarray, prefix: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(window with inference ids and probabilities, labels keyed by inference id) of a frame of claims."""
    ids = [f"{prefix}-{i}" for i in range(frame.height)]
    window = frame.drop("fraud").with_columns(
        pl.Series("inference_id", ids), pl.Series("probability", probabilities)
    )
    labels = pl.DataFrame({"inference_id": ids, "label": frame["fraud"]})
    return window, labels


@pytest.fixture(scope="session")
def capture_of() -> Callable[[pl.DataFrame, np.ndarray, str], tuple[pl.DataFrame, pl.DataFrame]]:
    """`capture_of(frame, probabilities, prefix)` → (window, labels)."""
    return as_capture
