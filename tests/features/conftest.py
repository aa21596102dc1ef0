"""Fixtures of the feature-store tests: a workspace, its FeatureStore, and each online backend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tideml.features import FeatureStore
from tideml.features.online import OnlineStore, open_online_store
from tideml.workspace import Workspace

REDIS_URL = "redis://127.0.0.1:6379/15"


def _redis_cleanup(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix.replace("*", "\\*") + "*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix no other test (or test process) uses; its keys are removed afterwards."""
    prefix = f"tidetest:{uuid.uuid4().hex[:12]}:"
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"Redis must answer at {REDIS_URL} (.ci/run starts it): {exc}")
    yield prefix
    _redis_cleanup(prefix)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis), "memory"])
def online_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of each online backend in turn (Redis: the real server, a unique key prefix)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'online.db'}"
    if request.param == "redis":
        prefix: str = request.getfixturevalue("redis_prefix")
        return f"{REDIS_URL}?prefix={prefix}"
    return "memory://"


@pytest.fixture
def online_store(online_url: str) -> Iterator[OnlineStore]:
    store = open_online_store(online_url)
    yield store
    store.close()


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    with Workspace.init(tmp_path / "ws") as workspace:
        yield workspace


@pytest.fixture
def fs(ws: Workspace) -> Iterator[FeatureStore]:
    store = FeatureStore(ws)
    yield store
    store.close()
