"""Metadata tables of `tideml.features` (SQLAlchemy models on the shared `Base`)."""

from __future__ import annotations

__all__: list[str] = []
