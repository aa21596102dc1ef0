"""The article's two flows on the article's raw data: exact columns, order, types and encodings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tideml.wrangle import FittedFlow, Flow
from tideml.wrangle.export import write_script

FLOWS = Path(__file__).resolve().parents[2] / "examples" / "autoclaims" / "flows"
RUN_TIME = 1_612_000_000.0

# As listed in the article (seed/000_*.txt): claims_preprocessed.csv, 31 columns.
CLAIMS_COLUMNS = [
    "policy_id", "incident_severity", "num_vehicles_involved", "num_injuries", "num_witnesses",
    "police_report_available", "injury_claim", "vehicle_claim", "total_claim_amount", "incident_month",
    "incident_day", "incident_dow", "incident_hour", "fraud", "driver_relationship_self",
    "driver_relationship_na", "driver_relationship_spouse", "driver_relationship_child",
    "driver_relationship_other", "incident_type_collision", "incident_type_breakin", "incident_type_theft",
    "collision_type_front", "collision_type_rear", "collision_type_side", "collision_type_na",
    "authorities_contacted_police", "authorities_contacted_none", "authorities_contacted_fire",
    "authorities_contacted_ambulance", "event_time",
]  # fmt: skip
# As listed in the article: customers_preprocessed.csv, 19 columns.
CUSTOMERS_COLUMNS = [
    "policy_id", "customer_age", "customer_education", "months_as_customer", "policy_deductable",
    "policy_annual_premium", "policy_liability", "auto_year", "num_claims_past_year",
    "num_insurers_past_5_years", "customer_gender_male", "customer_gender_female", "policy_state_ca",
    "policy_state_wa", "policy_state_az", "policy_state_or", "policy_state_nv", "policy_state_id",
    "event_time",
]  # fmt: skip


@pytest.fixture(scope="module")
def claims(article_data_path: Path) -> tuple[FittedFlow, pl.DataFrame, pl.DataFrame]:
    raw = pl.read_csv(article_data_path / "claims.csv")
    fitted = Flow.load(FLOWS / "claims.flow.json").fit(article_data_path / "claims.csv")
    return fitted, raw, fitted.transform(article_data_path / "claims.csv", run_time=RUN_TIME)


@pytest.fixture(scope="module")
def customers(article_data_path: Path) -> tuple[FittedFlow, pl.DataFrame, pl.DataFrame]:
    raw = pl.read_csv(article_data_path / "customers.csv")
    fitted = Flow.load(FLOWS / "customers.flow.json").fit(article_data_path / "customers.csv")
    return fitted, raw, fitted.transform(article_data_path / "customers.csv", run_time=RUN_TIME)


@pytest.fixture(scope="module")
def article_data_path() -> Path:
    path = Path(__file__).resolve().parents[3] / "shared" / "data" / "aws-autoclaims"
    if not (path / "claims.csv").exists():
        pytest.fail(f"the article's raw data is expected at {path}")
    return path


def test_claims_flow_gives_the_articles_31_columns(
    claims: tuple[FittedFlow, pl.DataFrame, pl.DataFrame],
) -> None:
    fitted, raw, out = claims
    assert out.height == raw.height == 5000
    assert out.columns == CLAIMS_COLUMNS
    floats = {"injury_claim", "vehicle_claim", "total_claim_amount", "event_time"}
    assert {c: str(t) for c, t in out.schema.items()} == {
        c: ("Float64" if c in floats else "Int64") for c in CLAIMS_COLUMNS
    }
    assert list(fitted.output_schema()) == CLAIMS_COLUMNS
    assert out["policy_id"].to_list() == raw["policy_id"].to_list()
    assert out.null_count().sum_horizontal().item() == 0


def test_claims_encodings(claims: tuple[FittedFlow, pl.DataFrame, pl.DataFrame]) -> None:
    _, raw, out = claims
    joined = raw.select(
        "policy_id", "incident_severity", "police_report_available", "driver_relationship", "incident_type",
        "collision_type", "authorities_contacted",
    ).join(out, on="policy_id", suffix="_out")  # fmt: skip
    severity = dict(joined.select("incident_severity", "incident_severity_out").unique().iter_rows())
    assert severity == {"Minor": 0, "Major": 1, "Totaled": 2}
    report = dict(
        joined.select("police_report_available", "police_report_available_out").unique().iter_rows()
    )
    assert report == {"No": 0, "Yes": 1}
    # Symbols removed: "N/A" -> "na", "Break-in" -> "breakin"; exactly one indicator set per row.
    for column, categories in {
        "driver_relationship": {
            "Self": "self",
            "N/A": "na",
            "Spouse": "spouse",
            "Child": "child",
            "Other": "other",
        },
        "incident_type": {"Collision": "collision", "Break-in": "breakin", "Theft": "theft"},
        "collision_type": {"Front": "front", "Rear": "rear", "Side": "side", "N/A": "na"},
        "authorities_contacted": {
            "Police": "police",
            "None": "none",
            "Fire": "fire",
            "Ambulance": "ambulance",
        },
    }.items():
        indicators = [f"{column}_{label}" for label in categories.values()]
        assert joined.select(pl.sum_horizontal(indicators)).to_series().to_list() == [1] * 5000
        for raw_value, label in categories.items():
            rows = joined.filter(pl.col(column) == raw_value)
            assert rows.height > 0
            assert rows[f"{column}_{label}"].to_list() == [1] * rows.height


def test_claims_one_hot_orders_are_frequency_orders_except_the_frozen_one(
    claims: tuple[FittedFlow, pl.DataFrame, pl.DataFrame],
) -> None:
    fitted, raw, _ = claims
    states = {s.op.params.column: s.state.categories for s in fitted.steps if s.op.op == "one_hot"}
    for column in ("driver_relationship", "incident_type", "collision_type"):
        counts = (
            raw.select(pl.col(column).str.to_lowercase().str.replace_all("[-/]", ""))
            .to_series()
            .value_counts()
        )
        by_frequency = counts.sort(["count", column], descending=[True, False])[column].to_list()
        assert states[column] == by_frequency
    # The article's frozen order puts fire before ambulance although ambulance is more frequent today.
    assert states["authorities_contacted"] == ["police", "none", "fire", "ambulance"]


def test_claim_amounts_stay_fractional(claims: tuple[FittedFlow, pl.DataFrame, pl.DataFrame]) -> None:
    _, raw, out = claims
    assert out["vehicle_claim"].to_list() == raw["vehicle_claim"].to_list()
    assert out["total_claim_amount"].to_list() == raw["total_claim_amount"].to_list()
    assert (out["vehicle_claim"] != out["vehicle_claim"].floor()).sum() > 4000  # the original truncated these
    assert out["injury_claim"].to_list() == [float(v) for v in raw["injury_claim"].to_list()]


def test_event_time_is_the_runs_time(claims: tuple[FittedFlow, pl.DataFrame, pl.DataFrame]) -> None:
    _, _, out = claims
    assert out["event_time"].unique().to_list() == [RUN_TIME]


def test_customers_flow_gives_the_articles_19_columns(
    customers: tuple[FittedFlow, pl.DataFrame, pl.DataFrame],
) -> None:
    _fitted, _raw, out = customers
    assert out.height == 5000
    assert out.columns == CUSTOMERS_COLUMNS
    assert {c: str(t) for c, t in out.schema.items()} == {
        c: ("Float64" if c == "event_time" else "Int64") for c in CUSTOMERS_COLUMNS
    }
    assert "customer_zip" not in out.columns
    assert out.null_count().sum_horizontal().item() == 0


def test_customers_encodings(customers: tuple[FittedFlow, pl.DataFrame, pl.DataFrame]) -> None:
    _, raw, out = customers
    joined = raw.join(out, on="policy_id", suffix="_out")
    education = dict(joined.select("customer_education", "customer_education_out").unique().iter_rows())
    assert education == {
        "Below High School": 0, "High School": 1, "Associate": 2, "Bachelor": 3, "Advanced Degree": 4,
    }  # fmt: skip
    liability = dict(joined.select("policy_liability", "policy_liability_out").unique().iter_rows())
    assert liability == {"15/30": 0, "25/50": 1, "30/60": 2, "100/200": 3}
    gender = {
        g: tuple(r)
        for g, *r in joined.select("customer_gender", "customer_gender_male", "customer_gender_female")
        .unique()
        .iter_rows()
    }
    assert gender == {"Male": (1, 0), "Female": (0, 1), "Unkown": (0, 0), "Other": (0, 0)}
    states = ["ca", "wa", "az", "or", "nv", "id"]
    counts = [out[f"policy_state_{s}"].sum() for s in states]
    assert counts == sorted(counts, reverse=True) == [3134, 607, 539, 363, 222, 135]


def test_the_record_path_reproduces_every_article_row(
    claims: tuple[FittedFlow, pl.DataFrame, pl.DataFrame],
    customers: tuple[FittedFlow, pl.DataFrame, pl.DataFrame],
) -> None:
    for fitted, raw, out in (claims, customers):
        expected = out.to_dicts()
        got = [fitted.transform_record(r, run_time=RUN_TIME) for r in raw.to_dicts()]
        assert got == expected


def test_exported_script_reproduces_transform_in_a_subprocess(
    claims: tuple[FittedFlow, pl.DataFrame, pl.DataFrame], article_data_path: Path, tmp_path: Path
) -> None:
    fitted, _, out = claims
    script = write_script(fitted, tmp_path / "claims_flow.py")
    assert "tideml" not in "\n".join(
        line for line in script.read_text().splitlines() if line.startswith(("import", "from"))
    )
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--input",
            f"claims={article_data_path / 'claims.csv'}",
            "--output-dir",
            str(tmp_path / "out"),
            "--run-time",
            str(RUN_TIME),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert_frame_equal(pl.read_parquet(tmp_path / "out" / "claims.parquet"), out, check_exact=True)


def test_exported_script_reports_a_bad_row_and_writes_nothing(tmp_path: Path) -> None:
    flow = Flow.from_dict(
        {
            "version": 1,
            "name": "strict",
            "sources": {"t": {"kind": "csv"}},
            "steps": [{"op": "one_hot", "column": "c", "on_unseen": "error"}],
        }
    )
    fitted = flow.fit(pl.DataFrame({"c": ["a", "b"]}))
    script = write_script(fitted, tmp_path / "strict.py")
    (tmp_path / "in.csv").write_text("c\na\nzzz\n")
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--input",
            f"t={tmp_path / 'in.csv'}",
            "--output-dir",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "steps[0] (one_hot): c: unseen category 'zzz'" in result.stderr
    assert list((tmp_path / "o").iterdir()) == []
