"""The step cache: cache key → outputs (metadata DB), outputs themselves in the artifact store.

A lookup hits only when an entry exists, is younger than the step's `expire_after`, and every output it
names is still in the artifact store. The most recent successful execution of a key wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from tideml.errors import Conflict
from tideml.meta.models import utcnow
from tideml.meta.pipelines_tables import PipelineCacheEntry
from tideml.pipelines.codecs import OutputArtifact
from tideml.pipelines.policies import CachePolicy

if TYPE_CHECKING:
    from tideml.workspace import Workspace

__all__ = ["CacheHit", "StepCache"]


@dataclass(frozen=True)
class CacheHit:
    """A usable cache entry: the outputs and the run that produced them."""

    key: str
    outputs: dict[str, OutputArtifact]
    run_id: str
    created_at: datetime


class StepCache:
    """Cache entries of one workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def lookup(
        self, key: str, policy: CachePolicy | None = None, *, now: datetime | None = None
    ) -> CacheHit | None:
        """The entry for `key` if it is fresh under `policy` and its artifacts still exist."""
        with self.ws.metadata.session() as s:
            row = s.get(PipelineCacheEntry, key)
            if row is None:
                return None
            hit = CacheHit(
                key,
                {name: OutputArtifact.from_json(a) for name, a in row.outputs.items()},
                row.run_id,
                row.created_at,
            )
        expiry = None if policy is None else policy.expire_after
        if expiry is not None and (now or utcnow()) - hit.created_at > expiry:
            return None
        if not all(self.ws.artifacts.exists(a.sha256) for a in hit.outputs.values()):
            return None  # garbage-collected or deleted: recompute
        return hit

    def store(self, key: str, step: str, outputs: dict[str, OutputArtifact], run_id: str) -> None:
        """Record (or refresh) the outputs of an execution under its key."""
        body = {name: a.to_json() for name, a in outputs.items()}
        try:
            with self.ws.metadata.session() as s:
                row = s.get(PipelineCacheEntry, key)
                if row is None:
                    s.add(PipelineCacheEntry(cache_key=key, step=step, outputs=body, run_id=run_id))
                else:
                    row.outputs = body
                    row.step = step
                    row.run_id = run_id
                    row.created_at = utcnow()
        except Conflict:
            pass  # a concurrent run stored the same key: content-addressed, so either entry is right

    def invalidate(self, key: str) -> bool:
        """Forget one entry; True if it existed."""
        with self.ws.metadata.session() as s:
            row = s.get(PipelineCacheEntry, key)
            if row is None:
                return False
            s.delete(row)
            return True
