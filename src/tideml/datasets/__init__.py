"""Synthetic data generators; `autoclaims` reproduces the article's raw auto-insurance claims at any size."""

from __future__ import annotations

from tideml.datasets.autoclaims import (
    CLAIMS_COLUMNS,
    CUSTOMERS_COLUMNS,
    PROBABILITY_COLUMN,
    AutoclaimsConfig,
    AutoclaimsResult,
    autoclaims_frames,
    generate_autoclaims,
    iter_autoclaims,
    oracle_auc,
)

__all__ = [
    "CLAIMS_COLUMNS",
    "CUSTOMERS_COLUMNS",
    "PROBABILITY_COLUMN",
    "AutoclaimsConfig",
    "AutoclaimsResult",
    "autoclaims_frames",
    "generate_autoclaims",
    "iter_autoclaims",
    "oracle_auc",
]
