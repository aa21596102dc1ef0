"""Schema, value sets and the distribution tables of the synthetic auto-claims generator.

The weights are counts measured on the article's raw files (5,000 policies); they are normalised where
they are used. Conditional tables encode the joint rules those files obey (for example: a Theft is always
Major, one vehicle and reported to the Police; `collision_type` and `driver_relationship` are `N/A`
exactly when the incident is not a Collision; Minor incidents never have more than two injuries).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "AUTHORITIES",
    "CLAIMS_COLUMNS",
    "CLAIMS_DTYPES",
    "COLLISION_TYPES",
    "CUSTOMERS_COLUMNS",
    "CUSTOMERS_DTYPES",
    "DRIVER_RELATIONSHIPS",
    "EDUCATIONS",
    "GENDERS",
    "GENDER_SHARES",
    "INCIDENT_TYPES",
    "LIABILITIES",
    "PROBABILITY_COLUMN",
    "SEVERITIES",
    "STATES",
    "YES_NO",
    "normalise",
]

# ---------------------------------------------------------------------------------------------- schema
# Column order and the dtype every reader infers for the article's files: "int", "float" or "str".
CUSTOMERS_DTYPES: dict[str, str] = {
    "policy_id": "int",
    "customer_age": "int",
    "months_as_customer": "int",
    "num_claims_past_year": "int",
    "num_insurers_past_5_years": "int",
    "policy_state": "str",
    "policy_deductable": "int",
    "policy_annual_premium": "int",
    "policy_liability": "str",
    "customer_zip": "int",
    "customer_gender": "str",
    "customer_education": "str",
    "auto_year": "int",
}
CLAIMS_DTYPES: dict[str, str] = {
    "policy_id": "int",
    "driver_relationship": "str",
    "incident_type": "str",
    "collision_type": "str",
    "incident_severity": "str",
    "authorities_contacted": "str",
    "num_vehicles_involved": "int",
    "num_injuries": "int",
    "num_witnesses": "int",
    "police_report_available": "str",
    "injury_claim": "int",
    "vehicle_claim": "float",
    "total_claim_amount": "float",
    "incident_month": "int",
    "incident_day": "int",
    "incident_dow": "int",
    "incident_hour": "int",
    "fraud": "int",
}
CUSTOMERS_COLUMNS: tuple[str, ...] = tuple(CUSTOMERS_DTYPES)
CLAIMS_COLUMNS: tuple[str, ...] = tuple(CLAIMS_DTYPES)
PROBABILITY_COLUMN = "fraud_probability"

# ---------------------------------------------------------------------------------------------- value sets
# Spellings are the article's, misspellings included ("Unkown").
GENDERS: tuple[str, ...] = ("Male", "Female", "Unkown", "Other")
GENDER_SHARES: tuple[float, ...] = (0.4562, 0.4416, 0.0840, 0.0182)
STATES: tuple[str, ...] = ("CA", "WA", "AZ", "OR", "NV", "ID")
LIABILITIES: tuple[str, ...] = ("15/30", "25/50", "30/60", "100/200")
EDUCATIONS: tuple[str, ...] = ("Below High School", "High School", "Associate", "Bachelor", "Advanced Degree")
INCIDENT_TYPES: tuple[str, ...] = ("Collision", "Break-in", "Theft")
COLLISION_TYPES: tuple[str, ...] = ("Front", "Rear", "Side", "N/A")
DRIVER_RELATIONSHIPS: tuple[str, ...] = ("Self", "Spouse", "Child", "Other", "N/A")
SEVERITIES: tuple[str, ...] = ("Minor", "Major", "Totaled")
AUTHORITIES: tuple[str, ...] = ("Police", "None", "Ambulance", "Fire")
YES_NO: tuple[str, ...] = ("No", "Yes")

FloatArray = npt.NDArray[np.float64]


def normalise(weights: object) -> FloatArray:
    """Rows of non-negative weights scaled to sum to one (a 1-D table or a 2-D conditional table)."""
    array: FloatArray = np.asarray(weights, dtype=np.float64)
    normalised: FloatArray = array / array.sum(axis=-1, keepdims=True)
    return normalised


# ---------------------------------------------------------------------------------------------- customers
AGE_MIN, AGE_MAX = 18, 70
AGE_MEAN, AGE_SD = 44.0, 18.5  # a discretised normal truncated to 18..70 matches the article's ages
# months_as_customer = ceil(cap * Beta(a0 + a1 * y, b0 + b1 * y)), cap = 12 * y months, y = age - 17 years:
# young customers have been with us for a large share of their driving years, older ones for a smaller one.
TENURE_BETA = (0.85, 0.04, 0.8, 0.14)
# P(num_insurers_past_5_years = 1..5 | most possible), where the most possible is
# min(5, 6 - months_as_customer // 12): customers of five years or more have had only us.
INSURERS_GIVEN_MAX = normalise(
    [
        [1, 0, 0, 0, 0],
        [217, 152, 0, 0, 0],
        [146, 143, 88, 0, 0],
        [95, 115, 87, 53, 0],
        [129, 152, 134, 133, 83],
    ]
)
CLAIMS_PAST_YEAR = normalise([4665, 268, 43, 17, 3, 2, 2])  # 0..6
STATE_WEIGHTS = normalise([3134, 607, 539, 363, 222, 135])
# Liability limits never go below the state minimum: 15/30 only in California and Arizona.
LIABILITY_GIVEN_STATE = normalise(
    [
        [1394, 879, 600, 261],  # CA
        [0, 303, 201, 103],  # WA
        [237, 148, 108, 46],  # AZ
        [0, 191, 112, 60],  # OR
        [0, 108, 72, 42],  # NV
        [0, 68, 44, 23],  # ID
    ]
)
# Zip ranges (first, last) of each state's zip codes; each state draws from a fixed pool inside its range.
ZIP_RANGES: tuple[tuple[int, int], ...] = (
    (90001, 96162),
    (98001, 99403),
    (85001, 86556),
    (97001, 97920),
    (88901, 89883),
    (83201, 83877),
)
ZIP_POOL_SIZES: tuple[int, ...] = (1300, 290, 250, 190, 100, 80)
ZIP_POOL_SEED = 20210211  # fixed: the geography is the same for every seed
EDUCATION_YOUNG_MAX_AGE = 25
EDUCATION_GIVEN_AGE = normalise(
    [
        [15, 208, 45, 192, 47],  # age <= 25
        [83, 1056, 430, 2019, 905],  # older
    ]
)
DEDUCTIBLES: tuple[int, ...] = (750, 800, 850, 900, 950, 1000, 1050, 1100)
DEDUCTIBLE_WEIGHTS = normalise([4950, 28, 9, 3, 5, 1, 2, 2])
AUTO_YEAR_FIRST = 2001
AUTO_YEAR_WEIGHTS = normalise(
    [3, 14, 18, 16, 31, 23, 53, 60, 67, 101, 142, 224, 276, 425, 531, 602, 682, 673, 581, 478]
)  # 2001..2020
PREMIUM_MAX, PREMIUM_STEP, PREMIUM_MIN = 3000, 50, 2200
# Claim-free customers may get a discount of k steps of 50 (k = 1..16) off the 3,000 premium.
# logit P(discount) = a + b_age * (age - 44) + b_year * (auto_year - 2016) + b_ded * (deductible > 750);
# the discount grows by s_year steps per year the car is older than 2014 and s_age steps per year of the
# driver's age above 44.
DISCOUNT_LOGIT = (-0.9, 0.02, -0.08, 1.8)
DISCOUNT_SHIFT = (0.2, 0.05)
DISCOUNT_STEPS = normalise([166, 141, 136, 180, 162, 154, 148, 125, 73, 65, 33, 22, 10, 2, 2, 1])

# ---------------------------------------------------------------------------------------------- claims
INCIDENT_TYPE_WEIGHTS = normalise([4272, 484, 244])
COLLISION_TYPE_WEIGHTS = normalise([2109, 1105, 1058])  # Front, Rear, Side (collisions only)
DRIVER_WEIGHTS = normalise([3418, 428, 226, 200])  # Self, Spouse, Child, Other (collisions only)
SEVERITY_GIVEN_TYPE = normalise(
    [
        [1664, 1406, 1202],  # Collision
        [436, 48, 0],  # Break-in
        [0, 244, 0],  # Theft
    ]
)
VEHICLES_GIVEN_SEVERITY = normalise(  # collisions: 1..6 vehicles; other incidents involve one vehicle
    [
        [361, 1021, 244, 36, 2, 0],
        [76, 918, 325, 79, 7, 1],
        [51, 369, 643, 126, 13, 0],
    ]
)
# Groups: collision Minor, Major, Totaled; Break-in Minor, Major; Theft (always Major).
INJURIES_GIVEN_GROUP = normalise(
    [
        [1565, 95, 4, 0, 0],
        [854, 320, 120, 81, 31],
        [272, 535, 129, 126, 140],
        [1, 0, 0, 0, 0],
        [40, 8, 0, 0, 0],
        [204, 40, 0, 0, 0],
    ]
)
WITNESSES_GIVEN_VEHICLES = normalise(  # rows: 1, 2, 3, 4, 5+ vehicles of a collision; then other incidents
    [
        [481, 7, 0, 0, 0, 0],
        [1171, 649, 364, 105, 17, 2],
        [254, 369, 364, 172, 43, 10],
        [10, 48, 81, 46, 39, 17],
        [0, 1, 3, 5, 8, 6],
        [690, 38, 0, 0, 0, 0],
    ]
)
# Authorities (Police, None, Ambulance, Fire) by incident: Minor incidents are unreported or reported to
# the Police, Major ones go to the Police or an Ambulance, and only Totaled ones bring the Fire brigade.
AUTHORITIES_GIVEN_GROUP = normalise(
    [
        [459, 1106, 0, 0],  # collision Minor, no injury
        [36, 59, 0, 0],  # collision Minor, one injury
        [1, 0, 0, 0],  # collision Minor, two or more injuries
        [807, 0, 47, 0],  # collision Major, no injury
        [534, 0, 18, 0],  # collision Major, injuries
        [205, 0, 31, 36],  # collision Totaled, no injury
        [781, 0, 50, 99],  # collision Totaled, injuries
        [391, 45, 0, 0],  # Break-in Minor
        [1, 0, 0, 0],  # Break-in Major, Theft
    ]
)
# P(police report available | Police contacted): collisions vs. break-ins and thefts.
POLICE_REPORT_GIVEN_POLICE = (2091 / 2826, 17 / 683)
# vehicle_claim ~ Normal(base + per_year * (auto_year - 2015) + per_vehicle * (vehicles - 2), sd),
# floored at 1,000 (the article's minimum, which it hits for old cars with minor damage).
VEHICLE_CLAIM_BY_SEVERITY: tuple[tuple[float, float, float, float], ...] = (
    (10300.0, 560.0, 100.0, 3950.0),
    (15050.0, 965.0, 120.0, 3900.0),
    (29700.0, 2045.0, 330.0, 4050.0),
)
VEHICLE_CLAIM_MIN = 1000.0
VEHICLE_CLAIM_BASE_YEAR = 2015
# injury_claim ~ LogNormal(log 14,600, 1.0), rounded to a multiple of 100 (at least 100).
INJURY_CLAIM_MEDIAN, INJURY_CLAIM_SIGMA, INJURY_CLAIM_STEP = 14600.0, 1.0, 100
# Incident dates lie in 2019 (the article's day-of-week matches the 2019 calendar, Monday = 0).
INCIDENT_YEAR = 2019
MONTH_WEIGHTS = normalise([511, 368, 410, 344, 360, 331, 366, 411, 350, 523, 548, 478])
DOW_WEIGHTS = normalise([847, 868, 754, 758, 802, 469, 502])
HOUR_WEIGHTS = normalise(
    np.ravel(
        [
            [67, 67, 94, 86, 153, 232, 229, 247, 297, 288, 294, 306],  # 0-11 h
            [291, 311, 330, 334, 336, 277, 223, 192, 147, 84, 61, 54],  # 12-23 h
        ]
    )
)
