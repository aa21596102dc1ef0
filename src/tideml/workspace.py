"""The Workspace: one object that owns the settings, the metadata DB, the artifact store and the stores.

Resolution of the folder: the `path` argument, then `$TIDE_WORKSPACE`, then `./tide-workspace`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tideml.artifacts import ArtifactRef, ArtifactStore, HashingWriter
from tideml.config import CONFIG_FILE, Settings, default_toml, load_settings
from tideml.errors import Conflict, NotFound, ValidationError
from tideml.lineage import Lineage
from tideml.meta import MetadataStore

if TYPE_CHECKING:
    import polars as pl

    from tideml.clarify.service import ClarifyService
    from tideml.features.service import FeatureStore
    from tideml.monitor.service import MonitorService
    from tideml.pipelines.service import PipelineService
    from tideml.registry import Registry
    from tideml.serving.service import Endpoints
    from tideml.train.service import TrainService
    from tideml.wrangle.service import WrangleService

__all__ = ["DEFAULT_WORKSPACE", "Workspace", "resolve_workspace_path"]

DEFAULT_WORKSPACE = "tide-workspace"


def resolve_workspace_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The workspace folder: argument, then `$TIDE_WORKSPACE`, then `./tide-workspace`."""
    chosen = path if path is not None else os.environ.get("TIDE_WORKSPACE") or DEFAULT_WORKSPACE
    return Path(chosen).expanduser().resolve()


class Workspace:
    """A tideml workspace folder and the stores its `tide.toml` points at."""

    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root
        self.settings = settings

    # -- lifecycle ---------------------------------------------------------------------------------
    @classmethod
    def init(cls, path: str | os.PathLike[str] | None = None, *, exist_ok: bool = False) -> Workspace:
        """Create a workspace folder with a default `tide.toml` and open it (migrating the DB)."""
        root = resolve_workspace_path(path)
        config = root / CONFIG_FILE
        if config.exists() and not exist_ok:
            raise Conflict(
                "a workspace exists here already",
                obj=f"workspace {root}",
                fix="open it with Workspace.open, or choose another folder",
            )
        root.mkdir(parents=True, exist_ok=True)
        if not config.exists():
            tmp = config.with_name(CONFIG_FILE + ".tmp")
            tmp.write_text(default_toml(), encoding="utf-8")
            tmp.replace(config)
        return cls.open(root)

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> Workspace:
        """Open an existing workspace; its metadata DB is migrated to the current schema."""
        root = resolve_workspace_path(path)
        if not (root / CONFIG_FILE).is_file():
            raise NotFound(
                f"no {CONFIG_FILE} in {root}",
                obj="workspace",
                fix=f"create one with `tide init {root}` or set TIDE_WORKSPACE",
            )
        ws = cls(root, load_settings(root))
        ws.metadata  # noqa: B018  -- open (and migrate) now, so a bad URL fails here, not later
        return ws

    def close(self) -> None:
        if "features" in self.__dict__:
            self.features.close()
        if "metadata" in self.__dict__:
            self.metadata.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    # -- stores ------------------------------------------------------------------------------------
    @cached_property
    def metadata(self) -> MetadataStore:
        return MetadataStore(self.settings.metadata.url)

    @cached_property
    def lineage(self) -> Lineage:
        return Lineage(self.metadata)

    @cached_property
    def registry(self) -> Registry:
        from tideml.registry import Registry

        return Registry(self)

    @cached_property
    def clarify(self) -> ClarifyService:
        from tideml.clarify.service import ClarifyService

        return ClarifyService(self)

    @cached_property
    def pipelines(self) -> PipelineService:
        from tideml.pipelines.service import PipelineService

        return PipelineService(self)

    @cached_property
    def train(self) -> TrainService:
        from tideml.train.service import TrainService

        return TrainService(self)

    @cached_property
    def features(self) -> FeatureStore:
        from tideml.features.service import FeatureStore

        return FeatureStore(self)

    @cached_property
    def wrangle(self) -> WrangleService:
        from tideml.wrangle.service import WrangleService
        from tideml.wrangle.spec import FeatureGroupSource

        def read_group(src: FeatureGroupSource) -> pl.DataFrame:
            if src.version is not None:
                raise ValidationError(
                    "reading a pinned group version is not supported; flows read the latest records",
                    obj=f"flow source {src.name}",
                    field="version",
                    fix="remove `version` from the feature_group source",
                )
            return self.features.read_latest(src.name, src.features)

        return WrangleService(self, feature_group_reader=read_group)

    @cached_property
    def endpoints(self) -> Endpoints:
        from tideml.serving.service import Endpoints

        return Endpoints(self)

    @cached_property
    def monitor(self) -> MonitorService:
        from tideml.monitor.service import MonitorService

        return MonitorService(self)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        return ArtifactStore(self.settings.artifacts.root)

    def put_artifact(self, data: bytes | Path, media_type: str | None = None) -> ArtifactRef:
        """Store bytes or a file in the artifact store and index it in the metadata DB."""
        if isinstance(data, bytes):
            ref = self.artifacts.put_bytes(data, media_type or "application/octet-stream")
        else:
            ref = self.artifacts.put_file(data, media_type)
        self.metadata.record_blob(ref)
        return ref

    def write_artifact(self, write: Callable[[HashingWriter], object], media_type: str) -> ArtifactRef:
        """Store what `write` writes to the (hashing) file it is given, and index it."""
        ref = self.artifacts.put_written(write, media_type)
        self.metadata.record_blob(ref)
        return ref

    def info(self) -> dict[str, Any]:
        """The resolved settings and the state of the stores, for `tide workspace info`."""
        return {
            "root": str(self.root),
            "settings": self.settings.as_dict(),
            "metadata": {
                "backend": self.metadata.backend,
                "schema_revisions": sorted(self.metadata.current_revisions()),
            },
        }
