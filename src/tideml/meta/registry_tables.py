"""Metadata tables of `tideml.registry`: model groups, versions, aliases and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from tideml.errors import Conflict
from tideml.meta.models import Base, UTCDateTime, utcnow

__all__ = ["ModelAlias", "ModelAuditEvent", "ModelGroupRow", "ModelVersionRow"]


class ModelGroupRow(Base):
    """A named family of model versions with its approval policy."""

    __tablename__ = "model_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    policy: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    required_approvals: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    row_version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__: dict[str, Any] = {"version_id_col": row_version}  # noqa: RUF012


class ModelVersionRow(Base):
    """One registered model with the evidence it was registered with."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("group_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("model_groups.id"), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    model_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(30), nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    tags: Mapped[dict[str, str]] = mapped_column(JSON, nullable=False, default=dict)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    approvals: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), nullable=False)
    row_version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__: dict[str, Any] = {"version_id_col": row_version}  # noqa: RUF012


class ModelAlias(Base):
    """`@production`, `@staging`…: a name in a group that points at one approved version."""

    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("group_id", "alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("model_groups.id"), nullable=False)
    alias: Mapped[str] = mapped_column(String(100), nullable=False)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    row_version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__: dict[str, Any] = {"version_id_col": row_version}  # noqa: RUF012


class ModelAuditEvent(Base):
    """Append-only: every status change, vote and alias move, with who, when and why."""

    __tablename__ = "model_audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("model_groups.id"), nullable=False, index=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True, index=True)
    event: Mapped[str] = mapped_column(String(50), nullable=False)
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


def _refuse_change(_mapper: Mapper[Any], _conn: Any, target: ModelAuditEvent) -> None:
    raise Conflict(
        "the audit trail is append-only",
        obj=f"audit event {target.id}",
        fix="record a new event instead of changing or deleting one",
    )


event.listen(ModelAuditEvent, "before_update", _refuse_change)
event.listen(ModelAuditEvent, "before_delete", _refuse_change)
