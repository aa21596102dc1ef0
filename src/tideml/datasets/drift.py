"""Drifted auto-claims populations, so the monitoring loop can be shown end to end.

`drifted_autoclaims_frames(config, drift)` generates the usual raw `customers` / `claims` frames and then
applies documented shifts, each optional:

- `extra_insurers`: each customer gains one more insurer in the past five years with this probability
  (capped at 5): insurer-hopping rises, and with it the true fraud probability through the model's
  `log(num_insurers_past_5_years)` term.
- `new_state` / `new_state_share`: that share of policies moves to a state the baseline never saw.
- `fraud_pattern`: mixes the fraud model with a new pattern (organised multi-vehicle collisions with
  witnesses and large vehicle claims): log-odds = (1 - s) * old + s * new, recalibrated to the same mean
  fraud rate. Features do not move; the relation between features and label does, so a model trained on
  the old pattern loses AUC.

Labels are redrawn by coupling, so a claim keeps its label unless its probability changed, and every label
is still a Bernoulli draw of the (new) true probability, which `with_probability=True` returns.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import numpy.typing as npt
import polars as pl
import pydantic

from tideml.datasets.autoclaims import PROBABILITY_COLUMN, AutoclaimsConfig, autoclaims_frames
from tideml.errors import ValidationError

__all__ = ["NEW_FRAUD_PATTERN", "AutoclaimsDrift", "apply_drift", "drifted_autoclaims_frames"]

FloatArray = npt.NDArray[np.float64]
INSURER_COEFFICIENT = 0.85  # the generator's log(num_insurers_past_5_years) coefficient

# The drifted fraud pattern: each key is an expression of the raw columns (as in FRAUD_COEFFICIENTS).
NEW_FRAUD_PATTERN: dict[str, float] = {
    "incident_type == 'Collision'": 1.2,
    "num_vehicles_involved - 1": 0.6,
    "num_witnesses >= 2": 0.9,
    "(vehicle_claim - 17000) / 10000": 0.5,
    "months_as_customer / 120": 0.3,
}


class AutoclaimsDrift(pydantic.BaseModel):
    """Which shifts to apply to a generated population (all off by default)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    extra_insurers: float = pydantic.Field(0.0, ge=0.0, le=1.0, description="Chance of one more insurer.")
    new_state: str | None = pydantic.Field(None, min_length=2, max_length=2, description="A new state code.")
    new_state_share: float = pydantic.Field(0.0, ge=0.0, le=1.0, description="Share moved to new_state.")
    fraud_pattern: float = pydantic.Field(0.0, ge=0.0, le=1.0, description="Weight of the new fraud pattern.")
    seed: int = pydantic.Field(0, ge=0, lt=2**63, description="Seed of the drift draws.")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except pydantic.ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or None
            raise ValidationError(
                f"{err['msg']} (got {err.get('input')!r})",
                obj="AutoclaimsDrift",
                field=field,
                fix="see the AutoclaimsDrift field descriptions (shares and weights are between 0 and 1)",
            ) from None

    @pydantic.model_validator(mode="after")
    def _state_pair(self) -> Self:
        if self.new_state_share > 0 and self.new_state is None:
            raise ValueError("new_state_share needs new_state")
        return self

    @property
    def is_identity(self) -> bool:
        """True when no shift is switched on."""
        return self.extra_insurers == 0 and self.new_state_share == 0 and self.fraud_pattern == 0


def _sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def _new_pattern(customers: pl.DataFrame, claims: pl.DataFrame) -> FloatArray:
    terms = {
        "incident_type == 'Collision'": (claims["incident_type"] == "Collision")
        .to_numpy()
        .astype(np.float64),
        "num_vehicles_involved - 1": claims["num_vehicles_involved"].to_numpy().astype(np.float64) - 1.0,
        "num_witnesses >= 2": (claims["num_witnesses"] >= 2).to_numpy().astype(np.float64),
        "(vehicle_claim - 17000) / 10000": (claims["vehicle_claim"].to_numpy() - 17000.0) / 10000.0,
        "months_as_customer / 120": customers["months_as_customer"].to_numpy().astype(np.float64) / 120.0,
    }
    out = np.zeros(claims.height, dtype=np.float64)
    for name, coefficient in NEW_FRAUD_PATTERN.items():
        out += coefficient * terms[name]
    return out


def _calibrate(logit: FloatArray, target: float) -> float:
    """Offset c with mean(sigmoid(logit + c)) == target (Newton's method)."""
    c = 0.0
    for _ in range(100):
        p = _sigmoid(logit + c)
        gap = float(p.mean()) - target
        slope = float((p * (1.0 - p)).mean())
        if slope <= 0:
            break
        c -= gap / slope
        if abs(gap) < 1e-12:
            break
    return c


def _relabel(
    rng: np.random.Generator, label: npt.NDArray[np.int64], p_old: FloatArray, p_new: FloatArray
) -> npt.NDArray[np.int64]:
    """New Bernoulli(p_new) labels that keep the old label wherever the probability did not change."""
    u = rng.random(label.size)
    up = p_new >= p_old
    gain = np.where(up, (p_new - p_old) / np.maximum(1.0 - p_old, 1e-300), 0.0)
    keep = np.where(up, 1.0, p_new / np.maximum(p_old, 1e-300))
    new = np.where(
        label == 1, np.where(up, 1, (u < keep).astype(np.int64)), (up & (u < gain)).astype(np.int64)
    )
    return np.asarray(new, dtype=np.int64)


def apply_drift(
    customers: pl.DataFrame, claims: pl.DataFrame, drift: AutoclaimsDrift
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Apply `drift` to generated frames; `claims` must carry the true probability column."""
    if PROBABILITY_COLUMN not in claims.columns:
        raise ValidationError(
            f"claims need the {PROBABILITY_COLUMN} column to redraw labels",
            obj="apply_drift",
            field="claims",
            fix="generate with with_probability=True",
        )
    if drift.is_identity:
        return customers, claims
    rng = np.random.default_rng(np.random.SeedSequence(entropy=drift.seed, spawn_key=(0xD81F7,)))
    n = claims.height
    p_old = claims[PROBABILITY_COLUMN].to_numpy().astype(np.float64)
    logit = np.log(p_old) - np.log1p(-p_old)
    if drift.extra_insurers > 0:
        insurers = customers["num_insurers_past_5_years"].to_numpy().astype(np.int64)
        bumped = np.minimum(insurers + (rng.random(n) < drift.extra_insurers), 5)
        logit = logit + INSURER_COEFFICIENT * (np.log(bumped) - np.log(insurers))
        customers = customers.with_columns(pl.Series("num_insurers_past_5_years", bumped, dtype=pl.Int64))
    if drift.new_state is not None and drift.new_state_share > 0:
        moved = rng.random(n) < drift.new_state_share
        state = customers["policy_state"].to_numpy().astype(object)
        state[moved] = drift.new_state
        customers = customers.with_columns(pl.Series("policy_state", state, dtype=pl.String))
    if drift.fraud_pattern > 0:
        s = drift.fraud_pattern
        mixed = (1.0 - s) * logit + s * _new_pattern(customers, claims)
        logit = mixed + _calibrate(mixed, float(_sigmoid(logit).mean()))
    p_new = _sigmoid(logit)
    label = _relabel(rng, claims["fraud"].to_numpy().astype(np.int64), p_old, p_new)
    claims = claims.with_columns(
        pl.Series("fraud", label, dtype=pl.Int64), pl.Series(PROBABILITY_COLUMN, p_new, dtype=pl.Float64)
    )
    return customers, claims


def drifted_autoclaims_frames(
    config: AutoclaimsConfig | None = None,
    drift: AutoclaimsDrift | None = None,
    *,
    with_probability: bool = False,
    **settings: Any,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(customers, claims) of a generated population with `drift` applied."""
    customers, claims = autoclaims_frames(config, with_probability=True, **settings)
    customers, claims = apply_drift(customers, claims, drift or AutoclaimsDrift())
    if not with_probability:
        claims = claims.drop(PROBABILITY_COLUMN)
    return customers, claims
