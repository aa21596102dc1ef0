"""tideml: the whole machine-learning lifecycle for tabular data, self-hosted, in one package.

The error classes load with the package; `Workspace`, `Settings` and the artifact store load on first
use (PEP 562), so `import tideml` (and every `tide` command) does not pay for SQLAlchemy, Alembic and
pydantic until something needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tideml._lazy import lazy_attributes
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

# Public names imported on first access: name -> submodule that defines it.
__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "ArtifactRef": "artifacts",
        "ArtifactStore": "artifacts",
        "Settings": "config",
        "load_settings": "config",
        "Workspace": "workspace",
    },
)
