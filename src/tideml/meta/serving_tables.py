"""Metadata tables of `tideml.serving`: endpoints, their variants and API keys (stored hashed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tideml.meta.models import Base, UTCDateTime, utcnow

__all__ = ["ApiKeyRow", "EndpointRow", "EndpointVariantRow"]


class EndpointRow(Base):
    """A deployed endpoint: its configuration (limits, capture, auth) as validated JSON."""

    __tablename__ = "serving_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), nullable=False, unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="Deployed")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), nullable=False)
    row_version: Mapped[int] = mapped_column(Integer, nullable=False)

    variants: Mapped[list[EndpointVariantRow]] = relationship(
        back_populates="endpoint", cascade="all, delete-orphan", order_by="EndpointVariantRow.position"
    )

    __mapper_args__: dict[str, Any] = {"version_id_col": row_version}  # noqa: RUF012


class EndpointVariantRow(Base):
    """One model behind an endpoint: a registry reference, its traffic weight, or a shadow."""

    __tablename__ = "serving_variants"
    __table_args__ = (UniqueConstraint("endpoint_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("serving_endpoints.id"), nullable=False, index=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(63), nullable=False)
    model_ref: Mapped[str] = mapped_column(String(300), nullable=False)
    weight: Mapped[float] = mapped_column(Float, nullable=False)
    shadow: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # The version the reference resolved to at deploy time (an alias may move on later).
    deployed_version: Mapped[int] = mapped_column(Integer, nullable=False)
    deployed_model_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    override_approval: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    endpoint: Mapped[EndpointRow] = relationship(back_populates="variants")


class ApiKeyRow(Base):
    """An API key: only the sha256 of the key is stored; the key itself is shown once at creation."""

    __tablename__ = "serving_api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    key_sha256: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    endpoint: Mapped[str | None] = mapped_column(String(63), nullable=True, index=True)
    rate_per_second: Mapped[float] = mapped_column(Float, nullable=False)
    burst: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
