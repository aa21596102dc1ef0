"""Vectorised sampling of one chunk of policies: customers, claims and the fraud model.

Categorical columns are sampled as integer codes into the value sets of `_autoclaims_tables`; the frames
are assembled in `autoclaims`. Every function takes its own `numpy.random.Generator` so a chunk is a pure
function of (seed, chunk index).
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tideml.datasets import _autoclaims_tables as t

__all__ = [
    "FRAUD_COEFFICIENTS",
    "FraudParameters",
    "calibrate_intercept",
    "chunk_rng",
    "fraud_features",
    "fraud_logit",
    "sample_claims",
    "sample_customers",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Columns = dict[str, npt.NDArray[Any]]

# Indices into the value sets, named so the rules below read like the tables.
_COLLISION, _BREAK_IN, _THEFT = 0, 1, 2
_MINOR, _MAJOR, _TOTALED = 0, 1, 2
_POLICE, _NONE, _AMBULANCE, _FIRE = 0, 1, 2, 3
_MALE, _FEMALE, _UNKOWN, _OTHER = 0, 1, 2, 3
_NA_COLLISION_TYPE = t.COLLISION_TYPES.index("N/A")
_NA_DRIVER = t.DRIVER_RELATIONSHIPS.index("N/A")
_SPOUSE, _CHILD, _OTHER_DRIVER = 1, 2, 3

# The fraud model: log-odds = intercept + sum(coefficient * feature) + gender terms (see
# docs/autoclaims-data.md). Each key names its feature as an expression of the raw columns; the gender
# terms come from `FraudParameters`, and the intercept is calibrated so the overall rate hits the target.
FRAUD_COEFFICIENTS: dict[str, float] = {
    "log(num_insurers_past_5_years)": 0.85,
    "min(num_claims_past_year, 3)": 0.7,
    "log(1 + months_as_customer / 12)": -0.2,
    "customer_age - 44": -0.01,
    "incident_type == 'Break-in'": 0.1,
    "incident_type == 'Theft'": 0.2,
    "incident_severity == 'Totaled'": -0.2,
    "authorities_contacted == 'None'": 0.15,
    "authorities_contacted == 'Fire'": -0.1,
    "police_report_available == 'No'": 0.25,
    "driver_relationship == 'Spouse'": -0.35,
    "driver_relationship == 'Child'": 0.15,
    "driver_relationship == 'Other'": 0.45,
    "num_injuries": -0.45,
    "num_vehicles_involved - 1": -0.3,
    "num_witnesses >= 2": -0.7,
    "(vehicle_claim - 17000) / 10000": -0.1,
}


@dataclass(frozen=True)
class FraudParameters:
    """The knobs of the fraud model that a config may change; the rest are fixed coefficients."""

    fraud_rate: float
    female_fraud_odds_ratio: float
    other_gender_fraud_odds_ratio: float
    female_share_shift: float


def chunk_rng(seed: int, chunk_index: int) -> np.random.Generator:
    """The generator of one chunk: a pure function of the seed and the chunk's index."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(chunk_index,)))


def _draw(rng: np.random.Generator, probabilities: FloatArray, n: int) -> IntArray:
    """n codes drawn from one probability table."""
    cumulative = np.cumsum(probabilities)
    codes = np.searchsorted(cumulative, rng.random(n), side="right")
    result: IntArray = np.minimum(codes, len(probabilities) - 1).astype(np.int64)
    return result


def _draw_given(rng: np.random.Generator, table: FloatArray, group: IntArray) -> IntArray:
    """One code per row from the row of the conditional `table` that the row's `group` selects."""
    cumulative = np.cumsum(table, axis=1)[group]
    codes = (rng.random(len(group))[:, None] >= cumulative).sum(axis=1)
    result: IntArray = np.minimum(codes, table.shape[1] - 1).astype(np.int64)
    return result


def gender_shares(female_share_shift: float) -> FloatArray:
    """Shares of Male, Female, Unkown, Other after moving `female_share_shift` from Male to Female."""
    shares = np.array(t.GENDER_SHARES, dtype=np.float64)
    shares[_MALE] -= female_share_shift
    shares[_FEMALE] += female_share_shift
    clipped = np.clip(shares, 0.0, 1.0)
    result: FloatArray = clipped / clipped.sum()
    return result


@functools.cache
def _age_probabilities() -> FloatArray:
    ages = np.arange(t.AGE_MIN, t.AGE_MAX + 1, dtype=np.float64)
    return t.normalise(np.exp(-0.5 * ((ages - t.AGE_MEAN) / t.AGE_SD) ** 2))


@functools.cache
def _zip_pools() -> tuple[IntArray, FloatArray]:
    """Every state's fixed pool of zip codes and cumulative weights offset by the state's index.

    Searching `state + u` (u uniform in [0, 1)) in the cumulative array picks a zip of that state.
    """
    rng = np.random.default_rng(t.ZIP_POOL_SEED)
    zips: list[IntArray] = []
    cumulative: list[FloatArray] = []
    for state, ((first, last), size) in enumerate(zip(t.ZIP_RANGES, t.ZIP_POOL_SIZES, strict=True)):
        pool = np.sort(rng.choice(np.arange(first, last + 1, dtype=np.int64), size=size, replace=False))
        weights = rng.gamma(2.0, 1.0, size=size)
        zips.append(pool)
        cumulative.append(state + np.cumsum(weights) / weights.sum())
    return np.concatenate(zips), np.concatenate(cumulative)


@functools.cache
def _incident_dates() -> tuple[IntArray, IntArray, IntArray, FloatArray]:
    """Month, day and weekday of each date of the incident year, with weights fitted to both marginals."""
    year = t.INCIDENT_YEAR
    days = [
        dt.date(year, month, day)
        for month in range(1, 13)
        for day in range(1, calendar.monthrange(year, month)[1] + 1)
    ]
    month = np.array([d.month for d in days], dtype=np.int64)
    day = np.array([d.day for d in days], dtype=np.int64)
    dow = np.array([d.weekday() for d in days], dtype=np.int64)
    weights = np.ones(len(days))
    for _ in range(50):  # iterative proportional fitting to the month and weekday marginals
        weights *= (t.MONTH_WEIGHTS / np.bincount(month - 1, weights, minlength=12))[month - 1]
        weights *= (t.DOW_WEIGHTS / np.bincount(dow, weights, minlength=7))[dow]
    return month, day, dow, weights / weights.sum()


def sample_customers(rng: np.random.Generator, n: int, female_share_shift: float) -> Columns:
    """Customer columns of n policies (categoricals as codes; no policy_id)."""
    age = t.AGE_MIN + _draw(rng, _age_probabilities(), n)
    driving_years = age - 17
    cap = 12 * driving_years
    a0, a1, b0, b1 = t.TENURE_BETA
    fraction = rng.beta(a0 + a1 * driving_years, b0 + b1 * driving_years)
    months = np.clip(np.ceil(cap * fraction).astype(np.int64), 1, cap)
    most_insurers = np.clip(6 - months // 12, 1, 5)
    insurers = 1 + _draw_given(rng, t.INSURERS_GIVEN_MAX, most_insurers - 1)
    claims_past_year = _draw(rng, t.CLAIMS_PAST_YEAR, n)
    state = _draw(rng, t.STATE_WEIGHTS, n)
    pool, cumulative = _zip_pools()
    zip_index = np.searchsorted(cumulative, state + rng.random(n), side="right")
    customer_zip = pool[np.minimum(zip_index, len(pool) - 1)]
    deductible = np.asarray(t.DEDUCTIBLES, dtype=np.int64)[_draw(rng, t.DEDUCTIBLE_WEIGHTS, n)]
    auto_year = t.AUTO_YEAR_FIRST + _draw(rng, t.AUTO_YEAR_WEIGHTS, n)
    a, b_age, b_year, b_deductible = t.DISCOUNT_LOGIT
    logit = a + b_age * (age - 44) + b_year * (auto_year - 2016) + b_deductible * (deductible > 750)
    discounted = (claims_past_year == 0) & (rng.random(n) < 1.0 / (1.0 + np.exp(-logit)))
    s_year, s_age = t.DISCOUNT_SHIFT
    shift = np.rint(s_year * (2014 - auto_year) + s_age * (age - 44)).astype(np.int64)
    shift += (deductible - 750) // 50
    max_steps = (t.PREMIUM_MAX - t.PREMIUM_MIN) // t.PREMIUM_STEP
    steps = np.clip(1 + _draw(rng, t.DISCOUNT_STEPS, n) + shift, 1, max_steps)
    premium = t.PREMIUM_MAX - t.PREMIUM_STEP * np.where(discounted, steps, 0)
    liability = _draw_given(rng, t.LIABILITY_GIVEN_STATE, state)
    gender = _draw(rng, gender_shares(female_share_shift), n)
    education = _draw_given(rng, t.EDUCATION_GIVEN_AGE, (age > t.EDUCATION_YOUNG_MAX_AGE).astype(np.int64))
    return {
        "customer_age": age,
        "months_as_customer": months,
        "num_claims_past_year": claims_past_year,
        "num_insurers_past_5_years": insurers,
        "policy_state": state,
        "policy_deductable": deductible,
        "policy_annual_premium": premium.astype(np.int64),
        "policy_liability": liability,
        "customer_zip": customer_zip,
        "customer_gender": gender,
        "customer_education": education,
        "auto_year": auto_year,
    }


def sample_claims(rng: np.random.Generator, auto_year: IntArray) -> Columns:
    """Claim columns (without `fraud`) of one claim per policy; the vehicle claim depends on `auto_year`."""
    n = len(auto_year)
    incident = _draw(rng, t.INCIDENT_TYPE_WEIGHTS, n)
    collision = incident == _COLLISION
    collision_type = np.where(collision, _draw(rng, t.COLLISION_TYPE_WEIGHTS, n), _NA_COLLISION_TYPE)
    driver = np.where(collision, _draw(rng, t.DRIVER_WEIGHTS, n), _NA_DRIVER)
    severity = _draw_given(rng, t.SEVERITY_GIVEN_TYPE, incident)
    vehicles = np.where(collision, 1 + _draw_given(rng, t.VEHICLES_GIVEN_SEVERITY, severity), 1)
    injury_group = np.select([collision, incident == _BREAK_IN], [severity, 3 + severity], 5)
    injuries = _draw_given(rng, t.INJURIES_GIVEN_GROUP, injury_group)
    witness_group = np.where(collision, np.minimum(vehicles, 5) - 1, 5)
    witnesses = _draw_given(rng, t.WITNESSES_GIVEN_VEHICLES, witness_group)
    hurt = np.minimum(injuries, 2)
    authority_group = np.select(
        [
            collision & (severity == _MINOR),
            collision & (severity == _MAJOR),
            collision & (severity == _TOTALED),
            incident == _BREAK_IN,
        ],
        [hurt, 3 + np.minimum(hurt, 1), 5 + np.minimum(hurt, 1), 7 + severity],
        8,
    )
    authorities = _draw_given(rng, t.AUTHORITIES_GIVEN_GROUP, authority_group)
    report_probability = np.where(collision, t.POLICE_REPORT_GIVEN_POLICE[0], t.POLICE_REPORT_GIVEN_POLICE[1])
    police_report = ((authorities == _POLICE) & (rng.random(n) < report_probability)).astype(np.int64)
    params = np.asarray(t.VEHICLE_CLAIM_BY_SEVERITY)[severity]
    car_age = auto_year - t.VEHICLE_CLAIM_BASE_YEAR
    mean = params[:, 0] + params[:, 1] * car_age + params[:, 2] * (vehicles - 2)
    vehicle_claim = np.maximum(mean + params[:, 3] * rng.standard_normal(n), t.VEHICLE_CLAIM_MIN)
    raw_injury = rng.lognormal(math.log(t.INJURY_CLAIM_MEDIAN), t.INJURY_CLAIM_SIGMA, n)
    step = t.INJURY_CLAIM_STEP
    injury_claim = np.maximum(np.rint(raw_injury / step).astype(np.int64) * step, step)
    month, day, dow, date_weights = _incident_dates()
    date = np.minimum(np.searchsorted(np.cumsum(date_weights), rng.random(n), side="right"), len(month) - 1)
    hour = _draw(rng, t.HOUR_WEIGHTS, n)
    return {
        "driver_relationship": driver,
        "incident_type": incident,
        "collision_type": collision_type,
        "incident_severity": severity,
        "authorities_contacted": authorities,
        "num_vehicles_involved": vehicles,
        "num_injuries": injuries,
        "num_witnesses": witnesses,
        "police_report_available": police_report,
        "injury_claim": injury_claim,
        "vehicle_claim": vehicle_claim,
        "total_claim_amount": injury_claim + vehicle_claim,
        "incident_month": month[date],
        "incident_day": day[date],
        "incident_dow": dow[date],
        "incident_hour": hour,
    }


def fraud_features(customers: Columns, claims: Columns) -> dict[str, FloatArray]:
    """The features of the fraud model, keyed like `FRAUD_COEFFICIENTS`."""
    cu, cl = customers, claims
    incident, severity = cl["incident_type"], cl["incident_severity"]
    authorities, driver = cl["authorities_contacted"], cl["driver_relationship"]
    features = {
        "log(num_insurers_past_5_years)": np.log(cu["num_insurers_past_5_years"]),
        "min(num_claims_past_year, 3)": np.minimum(cu["num_claims_past_year"], 3),
        "log(1 + months_as_customer / 12)": np.log1p(cu["months_as_customer"] / 12.0),
        "customer_age - 44": cu["customer_age"] - 44,
        "incident_type == 'Break-in'": incident == _BREAK_IN,
        "incident_type == 'Theft'": incident == _THEFT,
        "incident_severity == 'Totaled'": severity == _TOTALED,
        "authorities_contacted == 'None'": authorities == _NONE,
        "authorities_contacted == 'Fire'": authorities == _FIRE,
        "police_report_available == 'No'": cl["police_report_available"] == 0,
        "driver_relationship == 'Spouse'": driver == _SPOUSE,
        "driver_relationship == 'Child'": driver == _CHILD,
        "driver_relationship == 'Other'": driver == _OTHER_DRIVER,
        "num_injuries": cl["num_injuries"],
        "num_vehicles_involved - 1": cl["num_vehicles_involved"] - 1,
        "num_witnesses >= 2": cl["num_witnesses"] >= 2,
        "(vehicle_claim - 17000) / 10000": (cl["vehicle_claim"] - 17000.0) / 10000.0,
    }
    return {name: np.asarray(value, dtype=np.float64) for name, value in features.items()}


def fraud_logit(customers: Columns, claims: Columns, params: FraudParameters) -> FloatArray:
    """Log-odds of fraud of each claim, without the intercept."""
    features = fraud_features(customers, claims)
    logit = np.zeros(len(claims["num_injuries"]), dtype=np.float64)
    for name, coefficient in FRAUD_COEFFICIENTS.items():
        logit += coefficient * features[name]
    gender = customers["customer_gender"]
    logit += math.log(params.female_fraud_odds_ratio) * (gender == _FEMALE)
    logit += math.log(params.other_gender_fraud_odds_ratio) * ((gender == _UNKOWN) | (gender == _OTHER))
    return logit


_CALIBRATION_SEED = 0x7ADE
_CALIBRATION_POLICIES = 200_000


@functools.lru_cache(maxsize=32)
def calibrate_intercept(params: FraudParameters) -> float:
    """The intercept that makes the mean fraud probability equal `params.fraud_rate`.

    Solved by Newton's method on a fixed calibration sample, so the intercept depends on the model's
    parameters only, never on the seed or the number of policies.
    """
    rng = chunk_rng(_CALIBRATION_SEED, 0)
    customers = sample_customers(rng, _CALIBRATION_POLICIES, params.female_share_shift)
    claims = sample_claims(rng, customers["auto_year"])
    logit = fraud_logit(customers, claims, params)
    target = params.fraud_rate
    intercept = math.log(target / (1.0 - target)) - float(np.median(logit))
    for _ in range(100):
        probability = 1.0 / (1.0 + np.exp(-(intercept + logit)))
        gap = float(probability.mean()) - target
        slope = float((probability * (1.0 - probability)).mean())
        intercept -= gap / slope
        if abs(gap) < 1e-12:
            break
    return intercept
