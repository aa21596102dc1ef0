from __future__ import annotations

from pathlib import Path

import pytest

from tideml.config import CONFIG_FILE, default_toml, load_settings
from tideml.errors import ConfigError


def write(root: Path, text: str) -> None:
    (root / CONFIG_FILE).write_text(text)


def test_defaults_are_embedded_and_resolved_against_the_root(tmp_path: Path) -> None:
    s = load_settings(tmp_path, environ={})
    assert s.metadata.url == f"sqlite:///{tmp_path / 'metadata.db'}"
    assert s.artifacts.root == str(tmp_path / "artifacts")
    assert s.offline_store.root == str(tmp_path / "offline")
    assert s.online_store.url == f"sqlite:///{tmp_path / 'online.db'}"


def test_default_toml_parses_back_to_the_defaults(tmp_path: Path) -> None:
    without_file = load_settings(tmp_path, environ={})
    write(tmp_path, default_toml())
    assert load_settings(tmp_path, environ={}) == without_file


def test_file_values_then_environment_overrides(tmp_path: Path) -> None:
    write(tmp_path, '[artifacts]\nroot = "/data/blobs"\n[online_store]\nurl = "redis://h:6379/0"\n')
    s = load_settings(
        tmp_path, environ={"TIDE_ONLINE_STORE_URL": "memory://", "TIDE_METADATA_URL": "sqlite:///m.db"}
    )
    assert s.artifacts.root == "/data/blobs"
    assert s.online_store.url == "memory://"
    assert s.metadata.url == f"sqlite:///{tmp_path / 'm.db'}"
    assert s.offline_store.root == str(tmp_path / "offline")


def test_postgres_url_is_kept_verbatim(tmp_path: Path) -> None:
    url = "postgresql+psycopg://u@db:5432/tide"
    assert load_settings(tmp_path, environ={"TIDE_METADATA_URL": url}).metadata.url == url


def test_unknown_key_is_named_with_a_fix(tmp_path: Path) -> None:
    write(tmp_path, '[metadata]\nurl = "sqlite:///x.db"\nurll = "oops"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(tmp_path, environ={})
    text = str(err.value)
    assert "metadata.urll" in text and "unknown key" in text and "metadata.url" in text
    assert "\n" not in text


def test_unknown_section_is_named(tmp_path: Path) -> None:
    write(tmp_path, '[metdata]\nurl = "x"\n')
    with pytest.raises(ConfigError, match="metdata"):
        load_settings(tmp_path, environ={})


def test_wrong_type_is_named(tmp_path: Path) -> None:
    write(tmp_path, "[artifacts]\nroot = 3\n")
    with pytest.raises(ConfigError, match=r"artifacts\.root"):
        load_settings(tmp_path, environ={})


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    write(tmp_path, "[metadata\nurl = 1")
    with pytest.raises(ConfigError, match="not valid TOML") as err:
        load_settings(tmp_path, environ={})
    assert CONFIG_FILE in str(err.value)
