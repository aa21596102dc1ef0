from __future__ import annotations

from pathlib import Path

import pytest

from tideml import Workspace
from tideml.config import CONFIG_FILE
from tideml.errors import ConfigError, Conflict, NotFound
from tideml.workspace import resolve_workspace_path


def test_init_writes_config_and_opens_with_embedded_defaults(tmp_path: Path) -> None:
    ws = Workspace.init(tmp_path / "ws")
    assert (ws.root / CONFIG_FILE).is_file()
    assert ws.metadata.backend == "sqlite"
    assert (ws.root / "metadata.db").is_file()
    assert set(ws.info()["metadata"]["schema_revisions"]) == ws.metadata.head_revisions()
    ws.close()


def test_init_twice_is_a_conflict_unless_exist_ok(tmp_path: Path) -> None:
    Workspace.init(tmp_path).close()
    with pytest.raises(Conflict, match="exists"):
        Workspace.init(tmp_path)
    Workspace.init(tmp_path, exist_ok=True).close()


def test_resolution_argument_then_env_then_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_workspace_path() == tmp_path / "tide-workspace"
    monkeypatch.setenv("TIDE_WORKSPACE", str(tmp_path / "from-env"))
    assert resolve_workspace_path() == tmp_path / "from-env"
    assert resolve_workspace_path(tmp_path / "arg") == tmp_path / "arg"
    Workspace.init().close()
    assert (tmp_path / "from-env" / CONFIG_FILE).is_file()
    with Workspace.open() as ws:
        assert ws.root == tmp_path / "from-env"


def test_open_without_config_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="tide init"):
        Workspace.open(tmp_path / "missing")


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Workspace.init(tmp_path).close()
    monkeypatch.setenv("TIDE_ARTIFACTS_ROOT", str(tmp_path / "elsewhere"))
    with Workspace.open(tmp_path) as ws:
        assert ws.artifacts.root == tmp_path / "elsewhere"


def test_bad_config_fails_on_open_naming_the_key(tmp_path: Path) -> None:
    Workspace.init(tmp_path).close()
    (tmp_path / CONFIG_FILE).write_text('[online_store]\nurl = "sqlite:///o.db"\nttl = 3\n')
    with pytest.raises(ConfigError, match=r"online_store\.ttl"):
        Workspace.open(tmp_path)


def test_put_artifact_stores_and_indexes(tmp_path: Path) -> None:
    with Workspace.init(tmp_path) as ws:
        ref = ws.put_artifact(b'{"a": 1}', "application/json")
        src = tmp_path / "x.csv"
        src.write_text("a,b\n1,2\n")
        ref2 = ws.put_artifact(src)
        assert ws.artifacts.get(ref.sha256) == b'{"a": 1}'
        assert {r.sha256 for r in ws.metadata.list_blobs()} == {ref.sha256, ref2.sha256}
        assert ref2.media_type == "text/csv"


@pytest.mark.postgres
def test_workspace_on_postgres(tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDE_METADATA_URL", postgres_url)
    with Workspace.init(tmp_path) as ws:
        assert ws.metadata.backend == "postgresql"
        ref = ws.put_artifact(b"on postgres")
        assert [r.sha256 for r in ws.metadata.list_blobs()] == [ref.sha256]
