"""tideml: the whole machine-learning lifecycle for tabular data, self-hosted, in one package."""

from tideml.artifacts import ArtifactRef, ArtifactStore
from tideml.config import Settings, load_settings
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
