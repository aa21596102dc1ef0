"""Metadata tables of `tideml.train`: tuning studies and their trials (models on the shared `Base`).

Optuna runs in memory; what a reviewer needs afterwards — the search space, every trial's parameters,
objective value, metrics, duration and state, the best trial and the refit model — is stored here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tideml.meta.models import Base, utcnow

__all__ = ["TuningStudy", "TuningTrial"]


class TuningStudy(Base):
    """One hyperparameter search: its settings, state, best trial and the refit model."""

    __tablename__ = "train_studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    state: Mapped[str] = mapped_column(String(20), nullable=False)  # RUNNING, COMPLETE, FAILED
    dataset_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    objective: Mapped[str] = mapped_column(String(50), nullable=False)
    sampler: Mapped[str] = mapped_column(String(20), nullable=False)
    search_space: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    tune_spec: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    train_spec: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    warm_start_from: Mapped[str | None] = mapped_column(String(200), nullable=True)
    best_trial_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    best_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    best_params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    baseline_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    model_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    report_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lineage_action_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__: dict[str, Any] = {"version_id_col": version}  # noqa: RUF012


class TuningTrial(Base):
    """One trial of a study: parameters, objective value, metrics, duration and final state."""

    __tablename__ = "train_trials"
    __table_args__ = (UniqueConstraint("study_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[int] = mapped_column(
        ForeignKey("train_studies.id", ondelete="CASCADE"), nullable=False, index=True
    )
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    state: Mapped[str] = mapped_column(String(20), nullable=False)  # COMPLETE, PRUNED, FAIL
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    duration_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
