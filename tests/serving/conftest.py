"""Serving fixtures: a real XGBoost model on the article's data, registered, approved, with online features.

The article's raw claims and customers go through the example flows (`examples/autoclaims/flows`: the
one-hot and ordinal encodings of the article), the model trains on the joined features, and per test a
fresh workspace gets the model (spec + UBJSON booster artifacts), a registry version approved and
aliased `production`, the fitted claims flow as an artifact, and the `claims` / `customers` online
groups (without the label) in the workspace's real online store.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import xgboost as xgb
from fastapi.testclient import TestClient

from tideml.features import FeatureStore
from tideml.serving.app import create_app
from tideml.serving.runtime import EndpointRuntime
from tideml.serving.service import Endpoints
from tideml.train.model import TrainedModel
from tideml.workspace import Workspace
from tideml.wrangle import FittedFlow, Flow

REPO = Path(__file__).resolve().parents[2]
ARTICLE = REPO.parent / "shared" / "data" / "aws-autoclaims"
FLOWS = REPO / "examples" / "autoclaims" / "flows"
REDIS_URL = os.environ.get("TIDE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
GROUP = "autoclaims-fraud"
ONLINE_ROWS = 400  # policies put in the online store per test (the model trains on all 5,000)


@dataclass
class ArticleModel:
    """Everything built once per session from the article's data."""

    claims_flow: FittedFlow
    claims_flow_json: bytes
    claims: pl.DataFrame  # transformed, label dropped: what the online group holds
    customers: pl.DataFrame
    raw_claims: dict[int, dict[str, Any]]  # raw claim rows by policy id (label included, as in the file)
    features: list[str]
    policy_ids: np.ndarray
    matrix: np.ndarray  # float32, rows in policy_ids order, columns in feature order
    models: list[TrainedModel]  # v1 and a different v2

    def row(self, policy_id: int) -> np.ndarray:
        return self.matrix[int(np.searchsorted(self.policy_ids, policy_id))]

    def expected(self, policy_id: int, version: int = 1) -> float:
        booster = self.models[version - 1].booster
        return float(
            booster.predict(xgb.DMatrix(self.row(policy_id)[None, :], feature_names=self.features))[0]
        )


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="session")
def article_model() -> ArticleModel:
    claims_flow = Flow.load(FLOWS / "claims.flow.json").fit(ARTICLE / "claims.csv", run_time=1_700_000_000.0)
    customers_flow = Flow.load(FLOWS / "customers.flow.json").fit(
        ARTICLE / "customers.csv", run_time=1_700_000_000.0
    )
    claims_all = claims_flow.transform(ARTICLE / "claims.csv", run_time=1_700_000_000.0)
    customers = customers_flow.transform(ARTICLE / "customers.csv", run_time=1_700_000_000.0)
    assert isinstance(claims_all, pl.DataFrame) and isinstance(customers, pl.DataFrame)
    joined = claims_all.join(customers.drop("event_time"), on="policy_id").sort("policy_id")
    skip = {"policy_id", "fraud", "event_time"}
    features = [c for c in joined.columns if c not in skip]
    x = joined.select([pl.col(c).cast(pl.Float32) for c in features]).to_numpy().astype(np.float32)
    y = joined["fraud"].to_numpy()
    flow_json = claims_flow.to_json().encode()
    models = []
    for version, params in enumerate(({"max_depth": 4, "eta": 0.3}, {"max_depth": 3, "eta": 0.2}), start=1):
        full = {"objective": "binary:logistic", "seed": 0, "nthread": 1, **params}
        booster = xgb.train(
            full, xgb.DMatrix(x, y, feature_names=features), num_boost_round=40 if version == 1 else 25
        )
        types = ["float" if joined.schema[f].is_float() else "int" for f in features]
        models.append(
            TrainedModel.build(
                booster,
                label="fraud",
                entity="policy_id",
                features=[{"name": f, "type": t} for f, t in zip(features, types, strict=True)],
                threshold=0.25 if version == 1 else 0.4,
                threshold_strategy="fixed",
                params=full,
                seed=0,
                best_iteration=booster.num_boosted_rounds() - 1,
                fitted_flow_ids=[f"sha256:{_sha(flow_json)}"],
            )
        )
    raw = pl.read_csv(ARTICLE / "claims.csv")
    raw_claims = {int(r["policy_id"]): r for r in raw.iter_rows(named=True)}
    return ArticleModel(
        claims_flow=claims_flow,
        claims_flow_json=flow_json,
        claims=claims_all.drop("fraud").sort("policy_id"),
        customers=customers.sort("policy_id"),
        raw_claims=raw_claims,
        features=features,
        policy_ids=joined["policy_id"].to_numpy(),
        matrix=x,
        models=models,
    )


@dataclass
class Served:
    """A workspace with the article model registered, approved, aliased and its features online."""

    ws: Workspace
    article: ArticleModel
    spec_sha: list[str]
    flow_sha: str
    ids: list[int]
    apps: list[tuple[EndpointRuntime, TestClient]]

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(self.ws)

    def register(self, version: int, *, approve: bool = True, alias: str | None = None) -> None:
        """Register model v`version` (1 or 2) as the group's next version."""
        v = self.ws.registry.register(GROUP, self.spec_sha[version - 1], metrics={"test_auc": 0.8})
        if approve:
            self.ws.registry.approve(v.ref, actor="reviewer")
        if alias:
            self.ws.registry.set_alias(GROUP, alias, v.version)

    def client(
        self, name: str = "fraud", *, seed: int = 0, **runtime_kw: Any
    ) -> tuple[EndpointRuntime, TestClient]:
        """An in-process app (ASGI transport) for a deployed endpoint; closed at teardown."""
        runtime = EndpointRuntime(self.ws, name, seed=seed, warm_explainer_after=None, **runtime_kw)
        client = TestClient(create_app(runtime), raise_server_exceptions=False)
        client.__enter__()  # runs the lifespan: starts capture and the poller
        self.apps.append((runtime, client))
        return runtime, client

    def deploy(self, name: str = "fraud", model: str | None = f"{GROUP}@production", **kw: Any) -> Any:
        return self.endpoints.deploy(name, None if "variants" in kw else model, **kw)


def _store_model(ws: Workspace, model: TrainedModel) -> str:
    spec_bytes, booster_bytes = model.to_bytes()
    ws.put_artifact(booster_bytes, "application/ubjson")
    return ws.put_artifact(spec_bytes, "application/json").sha256


def _setup(ws: Workspace, article: ArticleModel) -> Served:
    shas = [_store_model(ws, m) for m in article.models]
    flow_sha = ws.put_artifact(article.claims_flow_json, "application/json").sha256
    fs = FeatureStore(ws)
    ids = article.policy_ids[:ONLINE_ROWS].tolist()
    fs.ingest(
        "claims",
        article.claims.head(ONLINE_ROWS),
        record_identifier="policy_id",
        event_time="event_time",
        progress=False,
    )
    fs.ingest(
        "customers",
        article.customers.head(ONLINE_ROWS),
        record_identifier="policy_id",
        event_time="event_time",
        progress=False,
    )
    fs.close()
    served = Served(ws, article, shas, flow_sha, [int(i) for i in ids], [])
    served.register(1, alias="production")
    return served


@pytest.fixture
def served(workspace: Workspace, article_model: ArticleModel) -> Iterator[Served]:
    """The article model served from a fresh SQLite workspace (SQLite online store)."""
    s = _setup(workspace, article_model)
    yield s
    for runtime, client in s.apps:
        client.__exit__(None, None, None)
        runtime.close()


@pytest.fixture
def redis_served(
    tmp_path: Path, article_model: ArticleModel, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Served]:
    """The same, with the online store on the real Redis server under a unique key prefix."""
    import redis

    prefix = f"tidetest:serving:{uuid.uuid4().hex[:12]}:"
    monkeypatch.setenv("TIDE_ONLINE_STORE_URL", f"{REDIS_URL}?prefix={prefix}")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"Redis must answer at {REDIS_URL}: {exc}")
    ws = Workspace.init(tmp_path / "ws-redis")
    s = _setup(ws, article_model)
    yield s
    for runtime, test_client in s.apps:
        test_client.__exit__(None, None, None)
        runtime.close()
    ws.close()
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


@pytest.fixture
def make_served(article_model: ArticleModel) -> Callable[[Workspace], Served]:
    return lambda ws: _setup(ws, article_model)
