"""The CLI as a user runs it: a real `tide` process, exit codes and stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def tide(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    code = "import sys; from tideml.cli import main; sys.argv[0] = 'tide'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=60
    )


def test_init_and_info_json(tmp_path: Path) -> None:
    r = tide("init", "ws", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "initialised workspace" in r.stdout
    info = tide("workspace", "info", "--workspace", "ws", "--json", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["settings"]["metadata"]["url"] == f"sqlite:///{tmp_path / 'ws' / 'metadata.db'}"
    assert data["metadata"]["backend"] == "sqlite"


def test_bad_toml_is_one_line_naming_the_key(tmp_path: Path) -> None:
    assert tide("init", cwd=tmp_path).returncode == 0  # ./tide-workspace
    (tmp_path / "tide-workspace" / "tide.toml").write_text('[artifacts]\nroot = "a"\nrooot = "b"\n')
    r = tide("workspace", "info", cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert "artifacts.rooot" in r.stderr and "unknown key" in r.stderr


def test_missing_workspace_exit_code_and_message(tmp_path: Path) -> None:
    r = tide("workspace", "info", "-w", "nowhere", cwd=tmp_path)
    assert r.returncode == 3
    assert "tide init" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("bad_key", ["../../etc/passwd", "abc"])
def test_artifacts_cli_refuses_unsafe_keys(tmp_path: Path, bad_key: str) -> None:
    tide("init", "ws", cwd=tmp_path)
    r = tide("artifacts", "cat", bad_key, "-w", "ws", cwd=tmp_path)
    assert r.returncode == 2 and "not a sha256 key" in r.stderr and "Traceback" not in r.stderr


def test_artifacts_put_cat_verify_and_corruption(tmp_path: Path) -> None:
    tide("init", "ws", cwd=tmp_path)
    (tmp_path / "f.json").write_text('{"x": 1}')
    put = tide("artifacts", "put", "f.json", "-w", "ws", "--json", cwd=tmp_path)
    ref = json.loads(put.stdout)
    assert ref["media_type"] == "application/json" and ref["size"] == 8
    assert tide("artifacts", "cat", ref["sha256"], "-w", "ws", cwd=tmp_path).stdout == '{"x": 1}'
    ok = tide("artifacts", "verify", "-w", "ws", "--json", cwd=tmp_path)
    assert json.loads(ok.stdout) == {"checked": 1, "corrupt": []}
    obj = tmp_path / "ws" / "artifacts" / "objects" / ref["sha256"][:2] / ref["sha256"]
    obj.write_text('{"x": 2}')
    bad = tide("artifacts", "verify", "-w", "ws", "--json", cwd=tmp_path)
    assert bad.returncode == 5 and json.loads(bad.stdout)["corrupt"] == [ref["sha256"]]
    cat = tide("artifacts", "cat", ref["sha256"], "-w", "ws", cwd=tmp_path)
    assert cat.returncode == 5 and "does not match its sha256" in cat.stderr


def test_usage_error_is_not_a_traceback(tmp_path: Path) -> None:
    r = tide("workspace", "info", "--nope", cwd=tmp_path)
    assert r.returncode == 2 and "No such option" in r.stderr and "Traceback" not in r.stderr
