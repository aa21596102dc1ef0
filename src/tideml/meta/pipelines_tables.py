"""Metadata tables of `tideml.pipelines`: definitions, runs, step runs and the step cache.

The cache follows Hamilton's split: `pipeline_cache` maps a step's cache key to the content hashes of
its outputs (metadata); the outputs themselves live in the content-addressed artifact store (results).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tideml.meta.models import Base, UTCDateTime, utcnow

__all__ = ["PipelineCacheEntry", "PipelineDefinitionRow", "PipelineRunRow", "PipelineStepRunRow"]


class PipelineDefinitionRow(Base):
    """One version of a pipeline's JSON definition (name + content hash is unique)."""

    __tablename__ = "pipeline_definitions"
    __table_args__ = (UniqueConstraint("name", "definition_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    definition_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class PipelineRunRow(Base):
    """One run of a pipeline: parameters, executor, status and the driver process that owns it."""

    __tablename__ = "pipeline_runs"
    __table_args__ = (Index("ix_pipeline_runs_pipeline_started", "pipeline", "started_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(200), nullable=False)
    definition_id: Mapped[int] = mapped_column(ForeignKey("pipeline_definitions.id"), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    selection: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    source: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    executor: Mapped[str] = mapped_column(String(300), nullable=False)
    who: Mapped[str] = mapped_column(String(200), nullable=False)
    driver_host: Mapped[str] = mapped_column(String(300), nullable=False)
    driver_pid: Mapped[int] = mapped_column(Integer, nullable=False)
    driver_started: Mapped[float] = mapped_column(Float, nullable=False)
    resumes: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    row_version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__: dict[str, Any] = {"version_id_col": row_version}  # noqa: RUF012


class PipelineStepRunRow(Base):
    """One step in one run: status, cache key and what went into it, outputs, log, timings, attempts."""

    __tablename__ = "pipeline_step_runs"
    __table_args__ = (UniqueConstraint("run_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("pipeline_runs.id"), nullable=False, index=True)
    step: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(50), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    cache_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    cache_material: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    log_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cached_from_run: Mapped[str | None] = mapped_column(String(40), nullable=True)
    lineage_action_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(300), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    row_version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__: dict[str, Any] = {"version_id_col": row_version}  # noqa: RUF012


class PipelineCacheEntry(Base):
    """Cache metadata: a step's cache key → its outputs' content hashes, and when they were made."""

    __tablename__ = "pipeline_cache"

    cache_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[str] = mapped_column(String(200), nullable=False)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    run_id: Mapped[str] = mapped_column(String(40), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
