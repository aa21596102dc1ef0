"""Fixtures of the training tests: the article's data as a model-ready frame, generated data, workspaces.

The wrangling flows and the feature store build the real model-ready dataset; until they are wired end to
end, `model_ready` joins raw claims and customers on `policy_id` and one-hot encodes the categoricals,
which is all the trainer needs (numeric features, a 0/1 label and an entity key).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tideml.workspace import Workspace

ARTICLE_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "aws-autoclaims"
CATEGORICALS = (
    "driver_relationship",
    "incident_type",
    "collision_type",
    "incident_severity",
    "authorities_contacted",
    "police_report_available",
    "policy_state",
    "policy_liability",
    "customer_gender",
    "customer_education",
)
# Small, fast and deterministic: one thread (pytest runs two workers on two cores), a light bootstrap.
FAST: dict[str, Any] = {"n_jobs": 1, "bootstrap_resamples": 200}


def model_ready(customers: pl.DataFrame, claims: pl.DataFrame) -> pl.DataFrame:
    """Join on policy_id, drop the zip code, one-hot the categoricals (lower-case snake names)."""
    frame = claims.join(customers, on="policy_id", how="inner").drop("customer_zip").sort("policy_id")
    frame = frame.with_columns(
        pl.col(c).cast(pl.String).str.to_lowercase().str.replace_all(r"[^a-z0-9]+", "_") for c in CATEGORICALS
    )
    return frame.to_dummies(list(CATEGORICALS), separator="_")


@pytest.fixture(scope="session")
def article_frame() -> pl.DataFrame:
    """The article's 5,000 policies, model-ready ('N/A' and 'None' kept as categories)."""
    if not (ARTICLE_DATA / "claims.csv").exists():
        pytest.fail(f"the article's raw data is expected at {ARTICLE_DATA}")
    customers = pl.read_csv(ARTICLE_DATA / "customers.csv", infer_schema_length=10_000, null_values=[])
    claims = pl.read_csv(ARTICLE_DATA / "claims.csv", infer_schema_length=10_000, null_values=[])
    return model_ready(customers, claims)


@pytest.fixture(scope="session")
def generated() -> Callable[[int, int], pl.DataFrame]:
    """Generated policies, model-ready, with the true probability in `fraud_probability`."""
    from tideml.datasets import autoclaims_frames

    def make(policies: int, seed: int = 0) -> pl.DataFrame:
        customers, claims = autoclaims_frames(policies=policies, seed=seed, with_probability=True)
        return model_ready(customers, claims)

    return make


@pytest.fixture
def fast() -> dict[str, Any]:
    return dict(FAST)


@pytest.fixture
def any_ws(metadata_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A workspace on each metadata backend (SQLite, the real PostgreSQL)."""
    monkeypatch.setenv("TIDE_METADATA_URL", metadata_url)
    with Workspace.init(tmp_path / "ws") as ws:
        yield ws


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    with Workspace.init(tmp_path / "ws") as workspace:
        yield workspace
