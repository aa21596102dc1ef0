"""The engine's edges: streaming sinks, input forms, the record API, and atomic outputs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tideml.errors import NotFound, ValidationError
from tideml.wrangle import Flow

FLOWS = Path(__file__).resolve().parents[2] / "examples" / "autoclaims" / "flows"


@pytest.fixture(scope="module")
def claims_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = Path(__file__).resolve().parents[3] / "shared" / "data" / "aws-autoclaims" / "claims.csv"
    path = tmp_path_factory.mktemp("data") / "claims.parquet"
    pl.concat([pl.read_csv(raw)] * 4).with_row_index("i").with_columns(
        pl.col("policy_id") + pl.col("i").cast(pl.Int64) // 5000 * 5000
    ).drop("i").write_parquet(path, row_group_size=2000)
    return path


def test_sink_streams_parquet_to_parquet_and_equals_transform(claims_parquet: Path, tmp_path: Path) -> None:
    fitted = Flow.load(FLOWS / "claims.flow.json").fit(claims_parquet)
    paths = fitted.sink(claims_parquet, {"claims": tmp_path / "claims.parquet"}, run_time=5.0)
    written = pl.read_parquet(paths["claims"])
    assert written.height == 20_000
    assert_frame_equal(written, fitted.transform(claims_parquet, run_time=5.0), check_exact=True)
    assert [p.name for p in tmp_path.iterdir()] == ["claims.parquet"]  # no temp files left


def test_a_failing_sink_leaves_no_file(tmp_path: Path) -> None:
    flow = Flow.from_dict(
        {
            "version": 1,
            "name": "f",
            "sources": {"t": {"kind": "csv"}},
            "steps": [{"op": "cast", "columns": {"s": "int64"}}],
        }
    )
    fitted = flow.fit(pl.DataFrame({"s": ["1", "2"]}))
    (tmp_path / "in.csv").write_text("s\n1\nnot a number\n")
    with pytest.raises(ValidationError, match=r"steps\[0\] \(cast\): s: cannot cast 'not a number' to int64"):
        fitted.sink(tmp_path / "in.csv", {"t": tmp_path / "out" / "t.parquet"})
    assert list((tmp_path / "out").iterdir()) == []


def test_inputs_may_be_polars_pandas_or_paths(article_data: Path) -> None:
    fitted = Flow.load(FLOWS / "customers.flow.json").fit(article_data / "customers.csv")
    raw = pl.read_csv(article_data / "customers.csv")
    from_path = fitted.transform(article_data / "customers.csv", run_time=1.0)
    assert_frame_equal(fitted.transform(raw, run_time=1.0), from_path)
    assert_frame_equal(fitted.transform(raw.lazy(), run_time=1.0), from_path)
    assert_frame_equal(fitted.transform(raw.to_pandas(), run_time=1.0), from_path)
    assert_frame_equal(fitted.transform({"customers": raw}, run_time=1.0), from_path)
    with pytest.raises(ValidationError, match="cannot read a list"):
        fitted.transform([1, 2])
    with pytest.raises(NotFound):
        fitted.transform(article_data / "missing.csv")
    with pytest.raises(ValidationError, match="no source named 'claims'"):
        fitted.transform({"claims": raw})
    assert isinstance(raw.to_pandas(), pd.DataFrame)


def test_record_api(article_data: Path) -> None:
    fitted = Flow.load(FLOWS / "claims.flow.json").fit(article_data / "claims.csv")
    row = pl.read_csv(article_data / "claims.csv").row(0, named=True)
    out = fitted.transform_record({**row, "unrelated": "ignored"}, run_time=3.0)
    assert out is not None and out["event_time"] == 3.0 and len(out) == 31
    missing = dict(row)
    del missing["incident_type"]
    with pytest.raises(ValidationError, match="incident_type: unknown column: the record lacks it"):
        fitted.transform_record(missing)
    with pytest.raises(ValidationError, match=r"num_injuries: wrong type: expected int64, got str '2'"):
        fitted.transform_record({**row, "num_injuries": "2"})
    with pytest.raises(ValidationError, match="wrong type: expected int64, got bool"):
        fitted.transform_record({**row, "num_injuries": True})
    unseen = fitted.transform_record({**row, "driver_relationship": "Cousin"}, run_time=3.0)
    assert unseen is not None
    assert [unseen[c] for c in unseen if c.startswith("driver_relationship_")] == [0, 0, 0, 0, 0]
    with pytest.raises(NotFound, match="no output named 'x'"):
        fitted.transform_record(row, output="x")


def test_multi_source_records_are_keyed_by_source() -> None:
    flow = Flow.from_dict(
        {
            "version": 1,
            "name": "j",
            "sources": {"claims": {"kind": "csv"}, "customers": {"kind": "csv"}},
            "steps": [{"op": "join", "right": "customers", "on": ["policy_id"], "how": "left"}],
        }
    )
    fitted = flow.fit(
        {
            "claims": pl.DataFrame({"policy_id": [1, 2], "amount": [10.0, 20.0]}),
            "customers": pl.DataFrame({"policy_id": [1], "age": [40]}),
        }
    )
    assert fitted.transform_record(
        {"claims": {"policy_id": 1, "amount": 5}, "customers": {"policy_id": 1, "age": 33}}
    ) == {"policy_id": 1, "amount": 5.0, "age": 33}
    assert fitted.transform_record({"claims": {"policy_id": 7, "amount": 1.5}}) == {
        "policy_id": 7,
        "amount": 1.5,
        "age": None,
    }
    with pytest.raises(ValidationError, match="no source named 'orders'"):
        fitted.transform_record({"orders": {}})


def test_the_fitted_flow_is_portable_json(article_data: Path, tmp_path: Path) -> None:
    fitted = Flow.load(FLOWS / "claims.flow.json").fit(article_data / "claims.csv")
    path = fitted.save(tmp_path / "claims.fitted.json")
    text = path.read_text()
    assert '"format": "tideml.fitted-flow"' in text
    assert '"categories": [\n' in text and '"self"' in text
    from tideml.wrangle import FittedFlow

    loaded = FittedFlow.load(path)
    assert_frame_equal(
        loaded.transform(article_data / "claims.csv", run_time=1.0),
        fitted.transform(article_data / "claims.csv", run_time=1.0),
    )


def test_the_same_fit_is_the_same_artifact() -> None:
    """Fitting twice on the same data gives byte-identical fitted-flow JSON (content-addressable)."""
    import time

    frame = pl.DataFrame({"c": ["a", "b", "a"], "x": [1.0, 2.0, 3.0]})
    flow = Flow.from_dict(
        {
            "version": 1,
            "name": "f",
            "sources": {"t": {"kind": "csv", "path": "t.csv"}},
            "steps": [{"op": "one_hot", "column": "c"}],
        }
    )
    first = flow.fit({"t": frame}).to_json()
    time.sleep(1.1)  # a fit timestamp, if there were one, would now differ
    assert flow.fit({"t": frame}).to_json() == first
