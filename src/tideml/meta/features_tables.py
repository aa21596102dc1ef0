"""Metadata tables of `tideml.features` (SQLAlchemy models on the shared `Base`).

`feature_groups.spec` (JSON) is the source of truth of a group's schema; `feature_definitions` and
`feature_group_tags` mirror it row by row so that search by feature name or tag is plain SQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tideml.meta.models import Base, utcnow

__all__ = ["FeatureDatasetRow", "FeatureDefinitionRow", "FeatureGroupRow", "FeatureGroupTagRow"]


class FeatureGroupRow(Base):
    """A feature group: its spec, its store configuration and freshness statistics."""

    __tablename__ = "feature_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    name_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)  # lower-cased
    uid: Mapped[str] = mapped_column(String(40), nullable=False)
    schema_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    record_identifier: Mapped[str] = mapped_column(String(64), nullable=False)
    event_time_feature: Mapped[str] = mapped_column(String(64), nullable=False)
    online_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    offline_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    ttl_seconds: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="Created")
    rows_ingested: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    last_event_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_write_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    definitions: Mapped[list[FeatureDefinitionRow]] = relationship(
        back_populates="group", cascade="all, delete-orphan", order_by="FeatureDefinitionRow.position"
    )
    tags: Mapped[list[FeatureGroupTagRow]] = relationship(
        back_populates="group", cascade="all, delete-orphan"
    )

    __mapper_args__: dict[str, Any] = {"version_id_col": version}  # noqa: RUF012


class FeatureDefinitionRow(Base):
    """One feature of a group, with its catalog metadata (searchable by name)."""

    __tablename__ = "feature_definitions"
    __table_args__ = (UniqueConstraint("group_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(
        ForeignKey("feature_groups.id", ondelete="CASCADE"), nullable=False, index=True
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    type: Mapped[str] = mapped_column(String(20), nullable=False)
    nullable: Mapped[bool] = mapped_column(Boolean, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)

    group: Mapped[FeatureGroupRow] = relationship(back_populates="definitions")


class FeatureGroupTagRow(Base):
    """One key/value tag of a group (searchable)."""

    __tablename__ = "feature_group_tags"
    __table_args__ = (UniqueConstraint("group_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(
        ForeignKey("feature_groups.id", ondelete="CASCADE"), nullable=False, index=True
    )
    key: Mapped[str] = mapped_column(String(128), nullable=False, index=True)
    value: Mapped[str] = mapped_column(String(256), nullable=False, default="")

    group: Mapped[FeatureGroupRow] = relationship(back_populates="tags")


class FeatureDatasetRow(Base):
    """A point-in-time dataset built from feature groups: its Parquet artifact and manifest."""

    __tablename__ = "feature_datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    manifest_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    rows: Mapped[int] = mapped_column(BigInteger, nullable=False)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
