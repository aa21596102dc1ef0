"""Metadata tables of `tideml.registry` (SQLAlchemy models on the shared `Base`)."""

from __future__ import annotations

__all__: list[str] = []
