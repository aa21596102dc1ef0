"""tideml: the whole machine-learning lifecycle for tabular data, self-hosted, in one package.

The error classes load with the package; `Workspace`, `Settings` and the artifact store load on first
use (PEP 562), so `import tideml` (and every `tide` command) does not pay for SQLAlchemy, Alembic and
pydantic until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tideml.errors import (
    ConfigError,
    Conflict,
    IntegrityError,
    NotFound,
    StoreUnavailable,
    TideError,
    UnsafePath,
    ValidationError,
)

if TYPE_CHECKING:
    from tideml.artifacts import ArtifactRef, ArtifactStore
    from tideml.config import Settings, load_settings
    from tideml.workspace import Workspace

__version__ = "0.1.0"

__all__ = [
    "ArtifactRef",
    "ArtifactStore",
    "ConfigError",
    "Conflict",
    "IntegrityError",
    "NotFound",
    "Settings",
    "StoreUnavailable",
    "TideError",
    "UnsafePath",
    "ValidationError",
    "Workspace",
    "__version__",
    "load_settings",
]

# Public names imported on first access: name -> module that defines it.
_LAZY: dict[str, str] = {
    "ArtifactRef": "tideml.artifacts",
    "ArtifactStore": "tideml.artifacts",
    "Settings": "tideml.config",
    "load_settings": "tideml.config",
    "Workspace": "tideml.workspace",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
