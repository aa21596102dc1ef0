"""Metadata tables of `tideml.monitor`: monitors (what to check, when, and what to do about it) and runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tideml.meta.models import Base, UTCDateTime, utcnow

__all__ = ["MonitorRow", "MonitorRunRow"]


class MonitorRow(Base):
    """A monitor: its baseline (artifact hashes), capture source, schedule, checks and retraining trigger."""

    __tablename__ = "monitors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    endpoint: Mapped[str | None] = mapped_column(String(100), nullable=True)
    capture: Mapped[str] = mapped_column(Text, nullable=False)
    labels: Mapped[str | None] = mapped_column(Text, nullable=True)
    baseline: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    schedule: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    trigger: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    model_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), nullable=False)
    row_version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__: dict[str, Any] = {"version_id_col": row_version}  # noqa: RUF012


class MonitorRunRow(Base):
    """One run of a monitor: the window, the outcome, the stored outputs and any pipeline it started."""

    __tablename__ = "monitor_runs"
    __table_args__ = (Index("ix_monitor_runs_monitor_started", "monitor_id", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"), nullable=False)
    status: Mapped[str] = mapped_column(String(30), nullable=False)
    trigger_kind: Mapped[str] = mapped_column(String(20), nullable=False)  # schedule | manual
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    labelled_rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    violations: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    outputs: Mapped[dict[str, str]] = mapped_column(JSON, nullable=False, default=dict)
    streak: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    pipeline_run: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lineage_action_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    who: Mapped[str] = mapped_column(String(200), nullable=False)
