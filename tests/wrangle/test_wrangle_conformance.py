"""One conformance suite run over every operator of the catalogue (cases in conftest.py)."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from wrangle_cases import CASES, RUN_TIME, Case, assert_record_matches_batch, fitted_case

from tideml.errors import ValidationError
from tideml.wrangle import OPERATORS, FittedFlow
from tideml.wrangle.export import export_script

TYPED_OPS = {
    "cast",
    "format_string",
    "one_hot",
    "ordinal",
    "handle_missing",
    "handle_outliers",
    "scale",
    "featurize_datetime",
    "add_event_time",
    "formula",
    "join",
    "balance",
}


def test_every_operator_has_a_case_that_breaks_it() -> None:
    covered = {c.op for c in CASES}
    assert covered == set(OPERATORS)
    assert {c.op for c in CASES if c.bad_column} == set(OPERATORS)
    assert {c.op for c in CASES if c.bad_type} == TYPED_OPS


def test_fitted_state_round_trips_through_json(case: Case) -> None:
    fitted = fitted_case(case)
    text = fitted.to_json()
    json.loads(text)  # strict JSON: to_json refuses NaN and infinities
    again = FittedFlow.from_json(text, trust_custom_code=case.trust)
    assert again.to_json() == text
    for step, loaded in zip(fitted.steps, again.steps, strict=True):
        assert loaded.state == step.state
    assert_frame_equal(
        again.transform(case.data, run_time=RUN_TIME),
        fitted.transform(case.data, run_time=RUN_TIME),
        check_exact=True,
    )


def test_fit_and_transform_are_deterministic(case: Case) -> None:
    first = case.build().fit(case.data, trust_custom_code=case.trust, run_time=RUN_TIME)
    second = case.build().fit(case.data, trust_custom_code=case.trust, run_time=RUN_TIME)
    assert [s.state for s in first.steps] == [s.state for s in second.steps]
    for training in (False, True):
        a = first.transform_all(case.data, run_time=RUN_TIME, training=training)
        b = second.transform_all(case.data, run_time=RUN_TIME, training=training)
        assert a.keys() == b.keys()
        for name in a:
            assert_frame_equal(a[name], b[name], check_exact=True)


def test_output_matches_the_declared_schema(case: Case) -> None:
    fitted = fitted_case(case)
    for name, frame in fitted.transform_all(case.data, run_time=RUN_TIME).items():
        schema = fitted.output_schema(name)
        assert frame.columns == list(schema)
        from tideml.wrangle.types import polars_dtype

        assert [frame.schema[c] for c in schema] == [polars_dtype(t) for t in schema.values()]  # type: ignore[arg-type]


def test_record_path_equals_batch_path_on_the_fit_rows(case: Case) -> None:
    fitted = fitted_case(case)
    names = list(case.columns)
    height = max(case.data[n].height for n in names)
    for i in range(height):
        sources = {n: (case.data[n].row(i, named=True) if i < case.data[n].height else None) for n in names}
        if case.optional_sources:
            for n in names:  # each source alone as well, then both
                assert_record_matches_batch(
                    fitted, {m: (sources[m] if m == n else None) for m in names}, case.columns
                )
        assert_record_matches_batch(fitted, sources, case.columns)


def _error_mentions(exc: ValidationError, *parts: str) -> None:
    text = str(exc)
    for part in parts:
        assert part in text, (part, text)


def test_unknown_column_is_a_clear_error(bad_column_case: Case) -> None:
    case = bad_column_case
    assert case.bad_column is not None
    index = case.bad_column[0]
    op = case.flow["steps"][index]["op"]
    with pytest.raises(ValidationError) as info:
        # Most operators fail at fit; custom code can only fail when it runs on rows.
        case.build(case.bad_column).fit(case.data, trust_custom_code=case.trust).transform(case.data)
    _error_mentions(info.value, f"steps[{index}]", f"({op})", "nope")


def test_wrong_type_is_a_clear_error(bad_type_case: Case) -> None:
    case = bad_type_case
    assert case.bad_type is not None
    index = case.bad_type[0]
    op = case.flow["steps"][index]["op"]
    with pytest.raises(ValidationError) as info:
        case.build(case.bad_type).fit(case.data, trust_custom_code=case.trust)
    _error_mentions(info.value, f"steps[{index}]", f"({op})", "type")


def test_exported_script_equals_transform(case: Case) -> None:
    fitted = fitted_case(case)
    namespace: dict[str, Any] = {"__name__": "exported_flow"}
    exec(compile(export_script(fitted), "<exported>", "exec"), namespace)
    outputs, _ = namespace["run"](case.data, run_time=RUN_TIME)
    expected = fitted.transform_all(case.data, run_time=RUN_TIME)
    assert outputs.keys() == expected.keys()
    for name, lf in outputs.items():
        assert_frame_equal(lf.collect(), expected[name], check_exact=True)


def test_an_input_column_of_the_wrong_type_fails_the_batch_and_the_record(case: Case) -> None:
    fitted = fitted_case(case)
    source = next(iter(case.columns))
    column, dtype = next(iter(case.columns[source].items()))
    wrong = "text" if dtype != "string" else 1
    bad = {name: frame for name, frame in case.data.items()}
    bad[source] = case.data[source].with_columns(pl.lit(wrong).alias(column))
    with pytest.raises(ValidationError) as info:
        fitted.transform_all(bad, run_time=RUN_TIME)
    _error_mentions(info.value, f"source {source!r}", column, "wrong type")
    row = dict(case.data[source].row(0, named=True), **{column: wrong})
    record: Any = row if len(case.columns) == 1 else {source: row}
    with pytest.raises(ValidationError, match="wrong type"):
        fitted.transform_record(record)
