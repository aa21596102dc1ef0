"""Fixtures of the pipeline tests: a marks folder that steps record their executions in."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder for `$TIDE_TEST_MARKS`, seen by steps in every process the test starts."""
    folder = tmp_path / "marks"
    folder.mkdir()
    monkeypatch.setenv("TIDE_TEST_MARKS", str(folder))
    return folder
