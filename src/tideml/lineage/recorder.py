"""The one recording mechanism: `with ws.lineage.action(type) as act: act.input(...); act.output(...)`.

Services declare what they read and wrote; the recorder writes the action (InProgress at start, so a
crash leaves evidence), the artifacts (one row per content hash, however often used), the edges and the
final status in the metadata DB. Callers never write lineage rows themselves.
"""

from __future__ import annotations

import functools
import getpass
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.orm import Session

from tideml.errors import NotFound, ValidationError
from tideml.lineage.graph import Direction, LineageGraph, walk
from tideml.meta.models import LineageAction, LineageArtifact, LineageContext, LineageEdge, utcnow
from tideml.meta.store import MetadataStore

__all__ = ["ARTIFACT_TYPES", "ActionRecorder", "ArtifactSpec", "Lineage", "current_user"]

ARTIFACT_TYPES = frozenset(
    {"Dataset", "FeatureGroup", "Flow", "FittedFlow", "Model", "Report", "Endpoint", "Code", "File"}
)
EdgeType = Literal["ContributedTo", "Produced", "DerivedFrom", "AssociatedWith"]
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class ArtifactSpec:
    """An artifact as a service declares it. Identity: `sha256` if given, else (`type`, `uri`)."""

    type: str
    uri: str
    sha256: str | None = None
    name: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in ARTIFACT_TYPES:
            raise ValidationError(
                f"unknown artifact type {self.type!r}",
                obj=f"lineage artifact {self.uri}",
                field="type",
                fix=f"use one of {', '.join(sorted(ARTIFACT_TYPES))}",
            )


def current_user() -> str:
    """Who is acting: `$TIDE_USER`, else the login name."""
    try:
        return os.environ.get("TIDE_USER") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry inside some containers
        return "unknown"


def _upsert_artifact(s: Session, spec: ArtifactSpec) -> int:
    def find() -> LineageArtifact | None:
        q = sa.select(LineageArtifact)
        if spec.sha256:
            q = q.where(LineageArtifact.sha256 == spec.sha256)
        else:
            q = q.where(LineageArtifact.type == spec.type, LineageArtifact.uri == spec.uri)
        return s.scalars(q).first()

    found = find()
    if found is not None:
        return found.id
    try:
        with s.begin_nested():  # a concurrent writer may insert the same artifact first
            row = LineageArtifact(
                type=spec.type,
                uri=spec.uri,
                sha256=spec.sha256,
                name=spec.name,
                properties=dict(spec.properties),
            )
            s.add(row)
            s.flush()
            return row.id
    except SAIntegrityError:
        found = find()
        if found is None:
            raise
        return found.id


def _add_edge(s: Session, src: tuple[str, int], dst: tuple[str, int], type: EdgeType) -> None:
    exists = s.scalars(
        sa.select(LineageEdge.id).where(
            LineageEdge.src_kind == src[0],
            LineageEdge.src_id == src[1],
            LineageEdge.dst_kind == dst[0],
            LineageEdge.dst_id == dst[1],
            LineageEdge.type == type,
        )
    ).first()
    if exists is None:
        s.add(LineageEdge(src_kind=src[0], src_id=src[1], dst_kind=dst[0], dst_id=dst[1], type=type))


class ActionRecorder:
    """Collects one action's inputs and outputs; written when the `with` block ends."""

    def __init__(self, action_id: int) -> None:
        self.id = action_id
        self.inputs: list[ArtifactSpec] = []
        self.outputs: list[ArtifactSpec] = []
        self.derivations: list[tuple[ArtifactSpec, ArtifactSpec]] = []
        self.properties: dict[str, Any] = {}

    def input(self, spec: ArtifactSpec) -> ArtifactSpec:
        """Declare an artifact this action read."""
        self.inputs.append(spec)
        return spec

    def output(self, spec: ArtifactSpec, *, derived_from: ArtifactSpec | None = None) -> ArtifactSpec:
        """Declare an artifact this action wrote (optionally a direct derivation of an input)."""
        self.outputs.append(spec)
        if derived_from is not None:
            self.derivations.append((derived_from, spec))
        return spec

    def set(self, **properties: Any) -> None:
        """Add result properties (metrics, counts) to the action's parameters record."""
        self.properties.update(properties)


class Lineage:
    """The lineage service of a workspace."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    @contextmanager
    def action(
        self,
        type: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        context: tuple[str, str] | None = None,
    ) -> Iterator[ActionRecorder]:
        """Record one action. On an exception the action is marked Failed with the error, and re-raised."""
        with self.metadata.session() as s:
            row = LineageAction(
                type=type, status="InProgress", parameters=dict(parameters or {}), who=current_user()
            )
            s.add(row)
            s.flush()
            recorder = ActionRecorder(row.id)
        try:
            yield recorder
        except BaseException as exc:
            self._finish(recorder, "Failed", context, error=f"{exc.__class__.__name__}: {exc}"[:2000])
            raise
        self._finish(recorder, "Completed", context)

    def recorded(self, type: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorator form of `action` for functions that take a keyword `lineage: ActionRecorder`."""

        def wrap(fn: Callable[P, R]) -> Callable[P, R]:
            @functools.wraps(fn)
            def inner(*args: P.args, **kwargs: P.kwargs) -> R:
                with self.action(type, parameters={"function": fn.__qualname__}) as act:
                    kwargs["lineage"] = act
                    return fn(*args, **kwargs)

            return inner

        return wrap

    def _finish(
        self,
        rec: ActionRecorder,
        status: str,
        context: tuple[str, str] | None,
        *,
        error: str | None = None,
    ) -> None:
        with self.metadata.session() as s:
            action = s.get(LineageAction, rec.id)
            assert action is not None
            node = ("action", rec.id)
            for spec in rec.inputs:
                _add_edge(s, ("artifact", _upsert_artifact(s, spec)), node, "ContributedTo")
            if status == "Completed":
                for spec in rec.outputs:
                    _add_edge(s, node, ("artifact", _upsert_artifact(s, spec)), "Produced")
                for origin, derived in rec.derivations:
                    _add_edge(
                        s,
                        ("artifact", _upsert_artifact(s, origin)),
                        ("artifact", _upsert_artifact(s, derived)),
                        "DerivedFrom",
                    )
            if context is not None:
                _add_edge(s, node, ("context", self._context_id(s, *context)), "AssociatedWith")
            action.status = status
            action.error = error
            action.ended_at = utcnow()
            if rec.properties:
                action.parameters = {**action.parameters, "results": rec.properties}

    def _context_id(self, s: Session, type: str, name: str) -> int:
        found = s.scalars(
            sa.select(LineageContext.id).where(LineageContext.type == type, LineageContext.name == name)
        ).first()
        if found is not None:
            return found
        row = LineageContext(type=type, name=name)
        s.add(row)
        s.flush()
        return row.id

    # -- queries -----------------------------------------------------------------------------------
    def find_artifact(
        self,
        *,
        sha256: str | None = None,
        type: str | None = None,
        uri: str | None = None,
        name: str | None = None,
    ) -> int:
        """The id of one recorded artifact, by hash, by (type, uri) or by (type, name) — newest wins."""
        q = sa.select(LineageArtifact.id)
        if sha256:
            q = q.where(LineageArtifact.sha256 == sha256.removeprefix("sha256:"))
        if type:
            q = q.where(LineageArtifact.type == type)
        if uri:
            q = q.where(LineageArtifact.uri == uri)
        if name:
            q = q.where(LineageArtifact.name == name)
        with self.metadata.session() as s:
            found = s.scalars(q.order_by(LineageArtifact.id.desc())).first()
        if found is None:
            what = sha256 or uri or name or type or "?"
            raise NotFound(
                "no such artifact in lineage",
                obj=f"artifact {what}",
                fix="check the hash or URI; only artifacts a service recorded are known",
            )
        return found

    def resolve(self, ref: str) -> int:
        """An artifact id from `sha256:HASH`, a 64-hex hash, an exact URI (`model:fraud/3`) or a name."""
        digest = ref.removeprefix("sha256:")
        if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest):
            return self.find_artifact(sha256=digest)
        with self.metadata.session() as s:
            for column in (LineageArtifact.uri, LineageArtifact.name):
                found = s.scalars(
                    sa.select(LineageArtifact.id).where(column == ref).order_by(LineageArtifact.id.desc())
                ).first()
                if found is not None:
                    return found
        raise NotFound(
            "no such artifact in lineage",
            obj=f"artifact {ref}",
            fix="use model:GROUP/N, sha256:HASH, an artifact URI or name that a service recorded",
        )

    def graph(
        self,
        artifact_id: int,
        direction: Direction = "upstream",
        *,
        max_depth: int = 50,
        types: set[str] | None = None,
    ) -> LineageGraph:
        """Everything upstream (where it came from) or downstream (what used it) of an artifact."""
        with self.metadata.session() as s:
            return walk(s, ("artifact", artifact_id), direction, max_depth=max_depth, types=types)

    def actions(self, type: str | None = None) -> list[LineageAction]:
        with self.metadata.session() as s:
            q = sa.select(LineageAction).order_by(LineageAction.id)
            if type:
                q = q.where(LineageAction.type == type)
            return list(s.scalars(q))
