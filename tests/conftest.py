"""Shared fixtures: real PostgreSQL and Redis servers (never mocks), the article's data by path."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tideml.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
ARTICLE_DATA = REPO.parent / "shared" / "data" / "aws-autoclaims"
POSTGRES_URL = os.environ.get("TIDE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TIDE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's TIDE_* settings."""
    for name in list(os.environ):
        if name.startswith("TIDE_") and not name.startswith("TIDE_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture
def article_data() -> Path:
    if not (ARTICLE_DATA / "claims.csv").exists():
        pytest.fail(f"the article's raw data is expected at {ARTICLE_DATA}")
    return ARTICLE_DATA


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"tide_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL must answer at {POSTGRES_URL} (.ci/run starts it): {exc}")
    url = sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The metadata DB URL of each supported backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'metadata.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    """A fresh workspace on embedded defaults (SQLite, local folders)."""
    with Workspace.init(tmp_path / "ws") as ws:
        yield ws


@pytest.fixture
def any_workspace(tmp_path: Path, metadata_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A fresh workspace whose metadata DB is each supported backend in turn."""
    monkeypatch.setenv("TIDE_METADATA_URL", metadata_url)
    with Workspace.init(tmp_path / "ws") as ws:
        yield ws
