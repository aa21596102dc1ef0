"""Workspace settings: `tide.toml` plus `TIDE_<SECTION>_<KEY>` environment overrides, parsed once.

Relative paths and `sqlite:///` URLs with relative paths are resolved against the workspace root, so a
workspace folder can be moved or copied as a whole.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from tideml.errors import ConfigError

__all__ = [
    "CONFIG_FILE",
    "ArtifactsSettings",
    "MetadataSettings",
    "OfflineStoreSettings",
    "OnlineStoreSettings",
    "PipelinesSettings",
    "Settings",
    "default_toml",
    "load_settings",
]

CONFIG_FILE = "tide.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetadataSettings(_Section):
    url: str = Field(default="sqlite:///metadata.db", description="SQLAlchemy URL of the metadata DB")


class ArtifactsSettings(_Section):
    root: str = Field(default="artifacts", description="folder of the content-addressed artifact store")


class OfflineStoreSettings(_Section):
    root: str = Field(default="offline", description="folder of the Parquet offline feature store")


class OnlineStoreSettings(_Section):
    url: str = Field(default="sqlite:///online.db", description="sqlite:///…, redis://… or memory://")


class PipelinesSettings(_Section):
    executor: str = Field(
        default="local", description="local[:N], inline, dask-local[:N] or dask://host:port"
    )


class Settings(_Section):
    """Resolved settings of one workspace; paths are absolute once loaded."""

    metadata: MetadataSettings = MetadataSettings()
    artifacts: ArtifactsSettings = ArtifactsSettings()
    offline_store: OfflineStoreSettings = OfflineStoreSettings()
    online_store: OnlineStoreSettings = OnlineStoreSettings()
    pipelines: PipelinesSettings = PipelinesSettings()

    def as_dict(self) -> dict[str, dict[str, str]]:
        return self.model_dump()


_SECTIONS: dict[str, type[_Section]] = {
    "metadata": MetadataSettings,
    "artifacts": ArtifactsSettings,
    "offline_store": OfflineStoreSettings,
    "online_store": OnlineStoreSettings,
    "pipelines": PipelinesSettings,
}


def default_toml() -> str:
    """The `tide.toml` written by `tide init`: every key with its embedded default and a comment."""
    lines = ["# tideml workspace settings; each key can be overridden by TIDE_<SECTION>_<KEY>.", ""]
    for section, model in _SECTIONS.items():
        lines.append(f"[{section}]")
        for key, field in model.model_fields.items():
            lines.append(f"# {field.description}")
            lines.append(f'{key} = "{field.default}"')
        lines.append("")
    return "\n".join(lines)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for section, model in _SECTIONS.items():
        for key in model.model_fields:
            name = f"TIDE_{section.upper()}_{key.upper()}"
            if name in environ:
                out.setdefault(section, {})[key] = environ[name]
    return out


def _resolve_path(value: str, root: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (root / path).resolve())


def _resolve_sqlite_url(url: str, root: Path) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == "sqlite:///:memory:":
        return url
    return prefix + _resolve_path(url[len(prefix) :], root)


def load_settings(root: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read `root/tide.toml` (missing file: all defaults), apply the environment, resolve paths."""
    environ = os.environ if environ is None else environ
    file = root / CONFIG_FILE
    raw: dict[str, Any] = {}
    if file.exists():
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML ({exc})", obj=str(file), fix="correct the syntax") from exc
    for section, values in _env_overrides(environ).items():
        existing = raw.get(section)
        raw[section] = {**(existing if isinstance(existing, dict) else {}), **values}
    try:
        settings = Settings.model_validate(raw)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            known = ", ".join(f"{s}.{k}" for s, m in _SECTIONS.items() for k in m.model_fields)
            fix = f"remove it; known keys are {known}"
            msg = "unknown key"
        else:
            fix = 'give a string value, e.g. url = "sqlite:///metadata.db"'
            msg = err["msg"].lower()
        raise ConfigError(msg, obj=str(file), field=key, fix=fix) from exc
    return Settings(
        metadata=MetadataSettings(url=_resolve_sqlite_url(settings.metadata.url, root)),
        artifacts=ArtifactsSettings(root=_resolve_path(settings.artifacts.root, root)),
        offline_store=OfflineStoreSettings(root=_resolve_path(settings.offline_store.root, root)),
        online_store=OnlineStoreSettings(url=_resolve_sqlite_url(settings.online_store.url, root)),
        pipelines=settings.pipelines,
    )
