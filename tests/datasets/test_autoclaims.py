"""The synthetic auto-claims generator reproduces the article's raw schema, marginals and rules."""

from __future__ import annotations

import calendar
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from tideml.datasets import (
    CLAIMS_COLUMNS,
    CUSTOMERS_COLUMNS,
    PROBABILITY_COLUMN,
    AutoclaimsConfig,
    autoclaims_frames,
    generate_autoclaims,
    oracle_auc,
)
from tideml.datasets.autoclaims import CHUNK_POLICIES
from tideml.errors import ValidationError

ARTICLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "aws-autoclaims"


@pytest.fixture(scope="module")
def article() -> Path:
    if not (ARTICLE / "claims.csv").exists():
        pytest.fail(f"the article's raw files are expected at {ARTICLE}")
    return ARTICLE


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100,000 policies, seed 7, CSV with the probability column: shared by the read-only tests."""
    out = tmp_path_factory.mktemp("autoclaims")
    generate_autoclaims(out, policies=100_000, seed=7, with_probability=True)
    return out


@pytest.fixture(scope="module")
def joined(generated: Path) -> pd.DataFrame:
    claims = pd.read_csv(generated / "claims.csv", keep_default_na=False)
    customers = pd.read_csv(generated / "customers.csv", keep_default_na=False)
    return claims.merge(customers, on="policy_id", validate="one_to_one")


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5,000 policies (the article's size) without the probability column."""
    out = tmp_path_factory.mktemp("autoclaims-small")
    generate_autoclaims(out, policies=5000, seed=11)
    return out


# ---------------------------------------------------------------------------------------------- schema
@pytest.mark.parametrize("table", ["customers", "claims"])
def test_header_and_pandas_dtypes_equal_the_article(article: Path, small_csv: Path, table: str) -> None:
    for options in ({}, {"keep_default_na": False}):
        expected = pd.read_csv(article / f"{table}.csv", **options).dtypes
        actual = pd.read_csv(small_csv / f"{table}.csv", **options).dtypes
        assert list(actual.index) == list(expected.index)
        assert actual.astype(str).to_dict() == expected.astype(str).to_dict()
    header = (small_csv / f"{table}.csv").read_text().split("\n", 1)[0]
    assert header == (article / f"{table}.csv").read_text().split("\n", 1)[0]


@pytest.mark.parametrize("table", ["customers", "claims"])
def test_polars_schema_equals_the_article_in_csv_and_parquet(
    article: Path, small_csv: Path, table: str, tmp_path: Path
) -> None:
    expected = pl.read_csv(article / f"{table}.csv").schema
    assert pl.read_csv(small_csv / f"{table}.csv").schema == expected
    generate_autoclaims(tmp_path, policies=3000, seed=11, file_format="parquet")
    assert list(pl.read_parquet(tmp_path / f"{table}.parquet").schema.items()) == list(expected.items())


def test_columns_constants_match_the_files(small_csv: Path) -> None:
    assert tuple(pl.read_csv(small_csv / "claims.csv").columns) == CLAIMS_COLUMNS
    assert tuple(pl.read_csv(small_csv / "customers.csv").columns) == CUSTOMERS_COLUMNS
    assert CLAIMS_COLUMNS[-1] == "fraud" and "policy_deductable" in CUSTOMERS_COLUMNS


def test_value_sets_equal_the_article(article: Path, small_csv: Path) -> None:
    for table in ("claims", "customers"):
        ours = pd.read_csv(small_csv / f"{table}.csv", keep_default_na=False)
        theirs = pd.read_csv(article / f"{table}.csv", keep_default_na=False)
        for column in theirs.columns:
            if theirs[column].dtype == object or str(theirs[column].dtype) in ("str", "string"):
                assert set(ours[column]) == set(theirs[column]), column
            elif column != "policy_id":
                # numeric ranges: never outside the article's except the unbounded claim amounts
                unbounded = ("injury_claim", "vehicle_claim", "total_claim_amount", "months_as_customer")
                if column not in (*unbounded, "customer_zip"):  # zips: see test_customer_rules
                    assert ours[column].min() >= theirs[column].min(), column
                    assert ours[column].max() <= theirs[column].max(), column


def test_floats_are_written_at_full_precision_and_ints_as_ints(small_csv: Path) -> None:
    lines = (small_csv / "claims.csv").read_text().splitlines()[1:200]
    fields = [line.split(",") for line in lines]
    vehicle = [row[CLAIMS_COLUMNS.index("vehicle_claim")] for row in fields]
    injury = [row[CLAIMS_COLUMNS.index("injury_claim")] for row in fields]
    assert all("." in value for value in vehicle)
    assert all(value == repr(float(value)) for value in vehicle)
    assert sum(len(value.split(".")[1]) >= 8 for value in vehicle) > 150
    assert all(value.isdigit() and int(value) % 100 == 0 for value in injury)


# ---------------------------------------------------------------------------------------------- marginals
def test_fraud_rate_is_close_to_the_article(joined: pd.DataFrame) -> None:
    assert len(joined) == 100_000
    assert 0.028 <= joined["fraud"].mean() <= 0.038


def test_policy_ids_run_from_one_to_n(joined: pd.DataFrame) -> None:
    assert sorted(joined["policy_id"]) == list(range(1, 100_001))


def test_gender_mix_is_near_46_44_8_2(joined: pd.DataFrame) -> None:
    shares = joined["customer_gender"].value_counts(normalize=True)
    for gender, share in {"Male": 0.456, "Female": 0.442, "Unkown": 0.084, "Other": 0.018}.items():
        assert shares[gender] == pytest.approx(share, abs=0.01), gender


def test_fraud_signal_points_the_documented_way(joined: pd.DataFrame) -> None:
    rate = joined.groupby("customer_gender")["fraud"].mean()
    assert rate["Male"] > 2 * rate["Female"]
    by_insurers = joined.groupby("num_insurers_past_5_years")["fraud"].mean()
    assert by_insurers[1] < by_insurers[2] < by_insurers[3]
    report = joined.groupby("police_report_available")["fraud"].mean()
    assert report["No"] > report["Yes"]
    incident = joined.groupby("incident_type")["fraud"].mean()
    assert incident["Theft"] > incident["Collision"] and incident["Break-in"] > incident["Collision"]


def test_marginals_are_close_to_the_article(article: Path, joined: pd.DataFrame) -> None:
    theirs = pd.read_csv(article / "claims.csv", keep_default_na=False).merge(
        pd.read_csv(article / "customers.csv", keep_default_na=False), on="policy_id"
    )
    for column in (
        "incident_type",
        "collision_type",
        "incident_severity",
        "authorities_contacted",
        "driver_relationship",
        "police_report_available",
        "policy_state",
        "policy_liability",
        "customer_education",
        "num_vehicles_involved",
        "num_injuries",
        "num_claims_past_year",
    ):
        expected = theirs[column].value_counts(normalize=True)
        actual = joined[column].value_counts(normalize=True).reindex(expected.index, fill_value=0.0)
        assert (actual - expected).abs().max() < 0.02, column
    for column, tolerance in (
        ("customer_age", 0.02),
        ("vehicle_claim", 0.03),
        ("injury_claim", 0.05),
        ("months_as_customer", 0.06),
        ("policy_annual_premium", 0.002),
    ):
        assert joined[column].mean() == pytest.approx(theirs[column].mean(), rel=tolerance), column


# ---------------------------------------------------------------------------------------------- joint rules
def test_total_is_injury_plus_vehicle(joined: pd.DataFrame) -> None:
    assert (joined["total_claim_amount"] == joined["injury_claim"] + joined["vehicle_claim"]).all()
    assert (joined["vehicle_claim"] >= 1000).all() and (joined["injury_claim"] % 100 == 0).all()


def test_collision_type_and_driver_are_na_exactly_for_non_collisions(joined: pd.DataFrame) -> None:
    not_collision = joined["incident_type"] != "Collision"
    assert ((joined["collision_type"] == "N/A") == not_collision).all()
    assert ((joined["driver_relationship"] == "N/A") == not_collision).all()
    assert (joined.loc[not_collision, "num_vehicles_involved"] == 1).all()
    assert (joined.loc[joined["incident_type"] == "Theft", "incident_severity"] == "Major").all()


def test_severity_authorities_and_report_rules(joined: pd.DataFrame) -> None:
    minor = joined["incident_severity"] == "Minor"
    assert joined.loc[minor, "num_injuries"].max() <= 2
    assert set(joined.loc[minor, "authorities_contacted"]) <= {"None", "Police"}
    assert set(joined.loc[joined["authorities_contacted"] == "Fire", "incident_severity"]) == {"Totaled"}
    assert (joined.loc[joined["authorities_contacted"] != "Police", "police_report_available"] == "No").all()


def test_incident_dates_exist_and_weekdays_follow_the_2019_calendar(joined: pd.DataFrame) -> None:
    days_in_month = joined["incident_month"].map(lambda m: calendar.monthrange(2019, m)[1])
    assert (joined["incident_day"] <= days_in_month).all()
    sample = joined.sample(2000, random_state=0)
    for month, day, dow in sample[["incident_month", "incident_day", "incident_dow"]].itertuples(index=False):
        assert dt.date(2019, month, day).weekday() == dow


def test_customer_rules(joined: pd.DataFrame) -> None:
    ranges = {
        "CA": (90001, 96162),
        "WA": (98001, 99403),
        "AZ": (85001, 86556),
        "OR": (97001, 97920),
        "NV": (88901, 89883),
        "ID": (83201, 83877),
    }
    for state, (first, last) in ranges.items():
        zips = joined.loc[joined["policy_state"] == state, "customer_zip"]
        assert zips.between(first, last).all(), state
    assert set(joined.loc[joined["policy_liability"] == "15/30", "policy_state"]) == {"CA", "AZ"}
    long_customers = joined["months_as_customer"] >= 60
    assert (joined.loc[long_customers, "num_insurers_past_5_years"] == 1).all()
    assert (joined["months_as_customer"] <= 12 * (joined["customer_age"] - 17)).all()
    assert (joined["policy_annual_premium"] % 50 == 0).all()
    assert (joined.loc[joined["num_claims_past_year"] > 0, "policy_annual_premium"] == 3000).all()


# ---------------------------------------------------------------------------------------------- determinism
def test_same_seed_gives_the_same_bytes_and_other_seeds_differ(tmp_path: Path) -> None:
    policies = CHUNK_POLICIES + 1234  # a full chunk and a partial one
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate_autoclaims(tmp_path / name, policies=policies, seed=seed)
    for table in ("customers.csv", "claims.csv"):
        same = (tmp_path / "a" / table).read_bytes()
        assert same == (tmp_path / "b" / table).read_bytes()
        assert same != (tmp_path / "c" / table).read_bytes()


def test_parquet_is_deterministic_and_holds_the_same_rows_as_csv(tmp_path: Path) -> None:
    for name in ("p1", "p2"):
        generate_autoclaims(tmp_path / name, policies=2000, seed=5, file_format="parquet")
    generate_autoclaims(tmp_path / "csv", policies=2000, seed=5)
    for table in ("customers", "claims"):
        assert (tmp_path / "p1" / f"{table}.parquet").read_bytes() == (
            tmp_path / "p2" / f"{table}.parquet"
        ).read_bytes()
        parquet = pl.read_parquet(tmp_path / "p1" / f"{table}.parquet")
        assert parquet.equals(pl.read_csv(tmp_path / "csv" / f"{table}.csv"))


def test_smaller_datasets_are_prefixes_of_larger_ones() -> None:
    small_customers, small_claims = autoclaims_frames(policies=700, seed=9)
    big_customers, big_claims = autoclaims_frames(policies=CHUNK_POLICIES + 10, seed=9)
    assert small_customers.equals(big_customers.head(700))
    assert small_claims.equals(big_claims.head(700))
    assert big_claims["policy_id"].to_list() == list(range(1, CHUNK_POLICIES + 11))


# ---------------------------------------------------------------------------------------------- fraud model
def _rates_by_gender(**settings: float) -> pd.Series:
    customers, claims = autoclaims_frames(policies=100_000, seed=21, **settings)
    joined = claims.join(customers, on="policy_id").group_by("customer_gender").agg(pl.col("fraud").mean())
    return pd.Series(dict(joined.iter_rows()))


def test_gender_gap_parameter_changes_female_vs_male_fraud_rate() -> None:
    no_gap = _rates_by_gender(female_fraud_odds_ratio=1.0)
    gap = _rates_by_gender(female_fraud_odds_ratio=0.3)
    reversed_gap = _rates_by_gender(female_fraud_odds_ratio=3.0)
    assert no_gap["Female"] / no_gap["Male"] == pytest.approx(1.0, abs=0.15)
    assert gap["Female"] / gap["Male"] < 0.5
    assert reversed_gap["Female"] / reversed_gap["Male"] > 2.0


def test_gender_imbalance_parameter_shifts_the_mix_and_keeps_the_fraud_rate() -> None:
    customers, claims = autoclaims_frames(policies=50_000, seed=4, female_share_shift=0.2)
    shares = customers["customer_gender"].value_counts(normalize=True)
    share = dict(zip(shares["customer_gender"], shares["proportion"], strict=True))
    assert share["Female"] == pytest.approx(0.6416, abs=0.01)
    assert share["Male"] == pytest.approx(0.2562, abs=0.01)
    assert AutoclaimsConfig(female_share_shift=0.2).gender_shares["Female"] == pytest.approx(0.6416)
    assert 0.028 <= claims["fraud"].mean() <= 0.038  # the intercept is recalibrated


def test_fraud_rate_parameter_sets_the_rate() -> None:
    _, claims = autoclaims_frames(policies=50_000, seed=4, fraud_rate=0.10, with_probability=True)
    assert claims["fraud"].mean() == pytest.approx(0.10, abs=0.008)
    assert claims[PROBABILITY_COLUMN].mean() == pytest.approx(0.10, abs=0.004)


def test_probability_column_is_a_probability_whose_mean_is_the_fraud_rate(joined: pd.DataFrame) -> None:
    probability = joined[PROBABILITY_COLUMN]
    assert ((probability > 0) & (probability < 1)).all()
    assert probability.mean() == pytest.approx(0.033, abs=0.002)
    assert probability.mean() == pytest.approx(joined["fraud"].mean(), abs=0.003)
    assert joined.loc[joined["fraud"] == 1, PROBABILITY_COLUMN].mean() > 2 * probability.mean()


def test_oracle_auc_is_plausible_from_every_kind_of_source(generated: Path, tmp_path: Path) -> None:
    from_folder = oracle_auc(generated)
    assert 0.70 < from_folder < 0.90
    claims = pl.read_csv(generated / "claims.csv")
    assert oracle_auc(claims) == pytest.approx(from_folder)
    assert oracle_auc(claims.to_pandas()) == pytest.approx(from_folder)
    assert oracle_auc(generated / "claims.csv") == pytest.approx(from_folder)
    generate_autoclaims(tmp_path, policies=20_000, seed=7, file_format="parquet", with_probability=True)
    assert 0.5 < oracle_auc(tmp_path / "claims.parquet") < 0.95


def test_oracle_auc_without_probability_column_names_the_column_and_the_fix(small_csv: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        oracle_auc(small_csv)
    assert caught.value.field == PROBABILITY_COLUMN
    assert "with-probability" in str(caught.value)


def test_oracle_auc_on_a_missing_file_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no such file"):
        oracle_auc(tmp_path / "nothing.csv")


# ---------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"policies": -5}, "policies"),
        ({"policies": 0}, "policies"),
        ({"policies": "many"}, "policies"),
        ({"seed": -1}, "seed"),
        ({"fraud_rate": 0.0}, "fraud_rate"),
        ({"fraud_rate": 0.9}, "fraud_rate"),
        ({"female_fraud_odds_ratio": -1.0}, "female_fraud_odds_ratio"),
        ({"other_gender_fraud_odds_ratio": 0.0}, "other_gender_fraud_odds_ratio"),
        ({"female_share_shift": 0.6}, "female_share_shift"),
        ({"female_share_shift": -0.5}, "female_share_shift"),
        ({"polices": 10}, "polices"),
    ],
)
def test_invalid_config_raises_validation_error_naming_the_field(
    settings: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        AutoclaimsConfig(**settings)
    assert caught.value.field == field
    assert caught.value.obj == "AutoclaimsConfig"
    assert caught.value.fix
    assert field in str(caught.value)


def test_every_way_of_building_a_config_raises_the_tideml_error() -> None:
    for build in (
        lambda: AutoclaimsConfig.model_validate({"seed": -2}),
        lambda: AutoclaimsConfig.model_validate_json('{"seed": -2}'),
        lambda: AutoclaimsConfig.build(AutoclaimsConfig(policies=10), seed=-2),
    ):
        with pytest.raises(ValidationError) as caught:
            build()
        assert caught.value.field == "seed"
        assert str(caught.value).count("AutoclaimsConfig") == 1
    assert AutoclaimsConfig.build(AutoclaimsConfig(policies=10), seed=3) == AutoclaimsConfig(
        policies=10, seed=3
    )


def test_generate_validates_before_writing_anything(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        generate_autoclaims(tmp_path / "out", policies=-1)
    assert not (tmp_path / "out").exists()
    target = tmp_path / "a-file"
    target.write_text("x")
    with pytest.raises(ValidationError) as caught:
        generate_autoclaims(target, policies=10)
    assert caught.value.field == "out"


# ---------------------------------------------------------------------------------------------- atomic writes
class _Crash(RuntimeError):
    pass


def _crash_after_first_chunk(policies: int) -> None:
    raise _Crash("simulated crash")


def test_a_crash_leaves_the_previous_files_and_no_partial_ones(tmp_path: Path) -> None:
    generate_autoclaims(tmp_path, policies=1000, seed=1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(_Crash):
        generate_autoclaims(tmp_path, policies=CHUNK_POLICIES * 2, seed=2, on_chunk=_crash_after_first_chunk)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    fresh = tmp_path / "fresh"
    with pytest.raises(_Crash):
        generate_autoclaims(
            fresh, policies=100, seed=2, file_format="parquet", on_chunk=_crash_after_first_chunk
        )
    assert list(fresh.iterdir()) == []


def test_result_reports_what_was_written(tmp_path: Path) -> None:
    result = generate_autoclaims(tmp_path, policies=3000, seed=8)
    claims = pl.read_csv(result.claims_path)
    assert result.policies == claims.height == pl.read_csv(result.customers_path).height == 3000
    assert result.fraud_count == claims["fraud"].sum()
    summary = result.to_dict()
    assert summary["fraud_rate"] == pytest.approx(claims["fraud"].mean())
    assert summary["files"]["claims"]["bytes"] == result.claims_path.stat().st_size
    assert np.isfinite(summary["elapsed_seconds"])
