"""SQLAlchemy models of the metadata DB: one schema, the same on SQLite and PostgreSQL.

Every table any part of tideml persists lives here (or in a module of this package), and every change
to them is an Alembic migration in `migrations/versions/`. A test compares these models with the
migrated schema on both backends, so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "Blob",
    "LineageAction",
    "LineageArtifact",
    "LineageContext",
    "LineageEdge",
    "Ref",
    "UTCDateTime",
    "utcnow",
]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite itself keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given where an aware UTC one is required")
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Blob(Base):
    """An object in the artifact store, indexed so it can be listed, sized and garbage-collected."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    media_type: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class Ref(Base):
    """A mutable named pointer (an alias, a stage, a `latest`) to an immutable target.

    `version` is SQLAlchemy's optimistic-concurrency counter: an update that read an older version
    fails instead of silently overwriting a concurrent writer's change.
    """

    __tablename__ = "refs"
    __table_args__ = (UniqueConstraint("namespace", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(100), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    target: Mapped[str] = mapped_column(Text, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )

    __mapper_args__: dict[str, Any] = {"version_id_col": version}  # noqa: RUF012


# -- lineage ---------------------------------------------------------------------------------------
# A graph of artifacts and actions: artifact -ContributedTo-> action -Produced-> artifact, plus
# DerivedFrom between artifacts and AssociatedWith from anything to a context. Nodes are addressed by
# (kind, id) in `lineage_edges`, so one recursive CTE walks the whole graph.


class LineageArtifact(Base):
    """Something that exists: a file, a table, a model, a feature group. One row per content hash."""

    __tablename__ = "lineage_artifacts"
    __table_args__ = (UniqueConstraint("type", "uri"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(50), nullable=False, index=True)
    uri: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    name: Mapped[str | None] = mapped_column(String(300), nullable=True, index=True)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class LineageAction(Base):
    """Something that happened: a fit, an ingest, a training run, a deployment."""

    __tablename__ = "lineage_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    who: Mapped[str] = mapped_column(String(200), nullable=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class LineageContext(Base):
    """A grouping: an experiment, a pipeline run, an endpoint."""

    __tablename__ = "lineage_contexts"
    __table_args__ = (UniqueConstraint("type", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(50), nullable=False)
    name: Mapped[str] = mapped_column(String(300), nullable=False)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class LineageEdge(Base):
    """An association between two nodes; `kind` is artifact, action or context."""

    __tablename__ = "lineage_edges"
    __table_args__ = (
        UniqueConstraint("src_kind", "src_id", "dst_kind", "dst_id", "type"),
        Index("ix_lineage_edges_dst", "dst_kind", "dst_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    src_kind: Mapped[str] = mapped_column(String(10), nullable=False)
    src_id: Mapped[int] = mapped_column(Integer, nullable=False)
    dst_kind: Mapped[str] = mapped_column(String(10), nullable=False)
    dst_id: Mapped[int] = mapped_column(Integer, nullable=False)
    type: Mapped[str] = mapped_column(String(20), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
