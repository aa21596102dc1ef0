"""Metadata tables of `tideml.train` (SQLAlchemy models on the shared `Base`)."""

from __future__ import annotations

__all__: list[str] = []
