"""Property: `FittedFlow.transform_record(r)` equals the batch output row for r, value for value and type
for type, for every operator of the catalogue and for the article's two flows."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wrangle_cases import Case, assert_record_matches_batch, fitted_case, record_strategy

from tideml.wrangle import FittedFlow, Flow

FLOWS = Path(__file__).resolve().parents[2] / "examples" / "autoclaims" / "flows"
# A deeper search: TIDE_TEST_WRANGLE_EXAMPLES=2000 pytest tests/wrangle/test_wrangle_property.py
PROPERTY = settings(
    max_examples=int(os.environ.get("TIDE_TEST_WRANGLE_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY
@given(data=st.data())
def test_record_equals_batch_for_every_operator(case: Case, data: st.DataObject) -> None:
    fitted = fitted_case(case)
    sources: dict[str, Any] = {}
    for name, columns in case.columns.items():
        row = record_strategy(columns)
        sources[name] = data.draw(st.none() | row if case.optional_sources else row, label=name)
    assert_record_matches_batch(fitted, sources, case.columns)


_ARTICLE: dict[str, tuple[FittedFlow, dict[str, str], pl.DataFrame]] = {}

# Categories as the raw files spell them, plus unseen, symbol-laden and empty values.
_RAW_POOLS: dict[str, list[Any]] = {
    "driver_relationship": ["Self", "N/A", "Spouse", "Child", "Other", "Cousin", "n/a", ""],
    "incident_type": ["Collision", "Break-in", "Theft", "Flood", "break-in"],
    "collision_type": ["Front", "Rear", "Side", "N/A", "Top"],
    "incident_severity": ["Minor", "Major", "Totaled", "Unknown"],
    "authorities_contacted": ["Police", "None", "Ambulance", "Fire", "Army"],
    "police_report_available": ["No", "Yes", "Maybe"],
    "policy_state": ["CA", "WA", "AZ", "OR", "NV", "ID", "TX"],
    "policy_liability": ["25/50", "15/30", "30/60", "100/200", "50/100"],
    "customer_gender": ["Male", "Female", "Unkown", "Other", "MALE"],
    "customer_education": [
        "Bachelor",
        "High School",
        "Advanced Degree",
        "Associate",
        "Below High School",
        "PhD",
    ],
}


def _article(name: str, article_data: Path) -> tuple[FittedFlow, dict[str, str], pl.DataFrame]:
    if name not in _ARTICLE:
        flow = Flow.load(FLOWS / f"{name}.flow.json")
        raw = pl.read_csv(article_data / f"{name}.csv")
        fitted = flow.fit(raw)
        columns = dict(next(iter(fitted.input_schemas.values())))
        _ARTICLE[name] = (fitted, columns, raw)
    return _ARTICLE[name]


@pytest.mark.parametrize("name", ["claims", "customers"])
@PROPERTY
@given(data=st.data())
def test_record_equals_batch_for_the_article_flows(
    name: str, article_data: Path, data: st.DataObject
) -> None:
    fitted, columns, raw = _article(name, article_data)
    base = raw.row(data.draw(st.integers(0, raw.height - 1), label="row"), named=True)
    row: dict[str, Any] = {}
    for column, dtype in columns.items():
        choices: list[st.SearchStrategy[Any]] = [st.just(base[column]), st.none()]
        if column in _RAW_POOLS:
            choices.append(st.sampled_from(_RAW_POOLS[column]))
        if dtype == "int64":
            choices.append(st.integers(-(2**31), 2**31))
        elif dtype == "float64":
            choices.append(st.floats(allow_nan=True, allow_infinity=True))
        row[column] = data.draw(
            st.one_of(*choices) if data.draw(st.booleans()) else st.just(base[column]), column
        )
    source = next(iter(fitted.input_schemas))
    assert_record_matches_batch(fitted, {source: row}, {source: columns})
