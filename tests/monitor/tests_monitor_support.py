"""Constants shared by the monitor tests (conftest fixtures cannot be imported as a module)."""

from __future__ import annotations

MODEL_FEATURES = [
    "customer_age",
    "months_as_customer",
    "num_claims_past_year",
    "num_insurers_past_5_years",
    "num_injuries",
    "num_witnesses",
    "num_vehicles_involved",
    "vehicle_claim",
    "injury_claim",
    "policy_deductable",
]
