"""The processing-job service on a real workspace: Parquet outputs, fitted-flow artifacts, lineage."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tideml import Workspace
from tideml.errors import NotFound, ValidationError
from tideml.wrangle import FeatureGroupSource, FittedFlow, Flow, WrangleService

FLOWS = Path(__file__).resolve().parents[2] / "examples" / "autoclaims" / "flows"


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    """A workspace with the embedded defaults (SQLite metadata)."""
    workspace = Workspace.init(tmp_path / "ws")
    yield workspace
    workspace.close()


@pytest.fixture
def any_ws(tmp_path: Path, metadata_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A workspace on each metadata backend (SQLite, and the real PostgreSQL)."""
    monkeypatch.setenv("TIDE_METADATA_URL", metadata_url)
    workspace = Workspace.init(tmp_path / "ws")
    yield workspace
    workspace.close()


def test_run_writes_parquet_stores_the_fitted_flow_and_records_lineage(
    any_ws: Workspace, article_data: Path, tmp_path: Path
) -> None:
    ws = any_ws
    service = WrangleService(ws)
    run = service.run(
        FLOWS / "claims.flow.json", {"claims": article_data / "claims.csv"}, tmp_path / "out", progress=False
    )
    out = tmp_path / "out" / "claims.parquet"
    frame = pl.read_parquet(out)
    assert frame.height == 5000 and frame.width == 31
    assert run.fitted_here and run.training
    assert run.outputs["claims"].rows == 5000
    assert run.outputs["claims"].sha256 == hashlib.sha256(out.read_bytes()).hexdigest()

    stored = FittedFlow.from_json(ws.artifacts.get(run.fitted_sha256).decode())
    assert stored.to_json() == run.fitted.to_json()

    dataset = ws.lineage.find_artifact(sha256=run.outputs["claims"].sha256)
    upstream = ws.lineage.graph(dataset, "upstream")
    types = {n.type for n in upstream.artifacts()}
    assert {"File", "Flow"} <= types
    raw = next(n for n in upstream.artifacts("File"))
    assert raw.sha256 == hashlib.sha256((article_data / "claims.csv").read_bytes()).hexdigest()
    fitted_node = ws.lineage.find_artifact(sha256=run.fitted_sha256)
    assert raw.sha256 in {n.sha256 for n in ws.lineage.graph(fitted_node, "upstream").artifacts("File")}
    actions = ws.lineage.actions("wrangle.run")
    assert actions[-1].status == "Completed"
    assert actions[-1].parameters["results"]["rows"] == {"claims": 5000}


def test_a_stored_fitted_flow_is_applied_without_refitting(
    ws: Workspace, article_data: Path, tmp_path: Path
) -> None:
    service = WrangleService(ws)
    first = service.run(
        FLOWS / "customers.flow.json",
        {"customers": article_data / "customers.csv"},
        tmp_path / "a",
        run_time=1.0,
        progress=False,
    )
    second = service.run(
        FLOWS / "customers.flow.json",
        {"customers": article_data / "customers.csv"},
        tmp_path / "b",
        fitted=f"sha256:{first.fitted_sha256}",
        run_time=1.0,
        progress=False,
    )
    assert not second.fitted_here and not second.training
    assert second.fitted_sha256 == first.fitted_sha256
    assert_frame_equal(
        pl.read_parquet(tmp_path / "a" / "customers.parquet"),
        pl.read_parquet(tmp_path / "b" / "customers.parquet"),
    )
    # the fitted flow is an input of the second run
    node = ws.lineage.find_artifact(sha256=first.fitted_sha256)
    downstream = ws.lineage.graph(node, "downstream")
    assert second.outputs["customers"].sha256 in {n.sha256 for n in downstream.artifacts("Dataset")}


def test_a_fitted_flow_from_another_flow_version_is_refused(
    ws: Workspace, article_data: Path, tmp_path: Path
) -> None:
    service = WrangleService(ws)
    run = service.run(
        FLOWS / "claims.flow.json", {"claims": article_data / "claims.csv"}, tmp_path / "a", progress=False
    )
    changed = json.loads((FLOWS / "claims.flow.json").read_text())
    changed["steps"] = changed["steps"][:-1]
    (tmp_path / "changed.flow.json").write_text(json.dumps(changed))
    with pytest.raises(ValidationError, match="different version of the flow"):
        service.run(
            tmp_path / "changed.flow.json",
            {"claims": article_data / "claims.csv"},
            tmp_path / "b",
            fitted=run.fitted,
            progress=False,
        )
    assert not (tmp_path / "b").exists()


def test_a_failed_run_writes_nothing_and_is_recorded_as_failed(ws: Workspace, tmp_path: Path) -> None:
    flow = Flow.from_dict(
        {
            "version": 1,
            "name": "strict",
            "sources": {"t": {"kind": "csv"}},
            "steps": [{"op": "one_hot", "column": "c", "on_unseen": "error"}],
        }
    )
    (tmp_path / "fit.csv").write_text("c\na\nb\n")
    (tmp_path / "new.csv").write_text("c\na\nzzz\n")
    service = WrangleService(ws)
    fitted = service.run(flow, {"t": tmp_path / "fit.csv"}, tmp_path / "out", progress=False).fitted
    before = (tmp_path / "out" / "t.parquet").read_bytes()
    with pytest.raises(ValidationError, match=r"steps\[0\] \(one_hot\): c: unseen category 'zzz'"):
        service.run(flow, {"t": tmp_path / "new.csv"}, tmp_path / "out", fitted=fitted, progress=False)
    assert (tmp_path / "out" / "t.parquet").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["t.parquet"]
    assert ws.lineage.actions("wrangle.run")[-1].status == "Failed"


def test_feature_group_sources_need_a_reader(ws: Workspace, tmp_path: Path) -> None:
    flow = Flow.from_dict(
        {
            "version": 1,
            "name": "from-fg",
            "sources": {
                "customers": {"kind": "feature_group", "name": "customers", "features": ["policy_id", "x"]}
            },
            "steps": [{"op": "formula", "column": "y", "expression": "x * 2"}],
        }
    )
    with pytest.raises(ValidationError, match="no feature-group reader"):
        WrangleService(ws).run(flow, {}, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()

    asked: list[FeatureGroupSource] = []

    def reader(spec: FeatureGroupSource) -> pl.DataFrame:
        asked.append(spec)
        return pl.DataFrame({"policy_id": [1, 2], "x": [1.5, 2.5], "other": ["a", "b"]})

    run = WrangleService(ws, feature_group_reader=reader).run(flow, {}, tmp_path / "out", progress=False)
    assert [s.name for s in asked] == ["customers"]  # read once, for the fit and the processing pass
    out = pl.read_parquet(run.outputs["customers"].path)
    assert out.columns == ["policy_id", "x", "y"]  # only the source's listed features are read
    assert out["y"].to_list() == [3.0, 5.0]
    node = ws.lineage.find_artifact(sha256=run.outputs["customers"].sha256)
    upstream = ws.lineage.graph(node, "upstream")
    assert [n.uri for n in upstream.artifacts("FeatureGroup")] == ["featuregroup:customers"]


def test_split_outputs_are_written_in_training_mode(
    ws: Workspace, article_data: Path, tmp_path: Path
) -> None:
    flow = Flow.from_dict(
        {
            "version": 1,
            "name": "split-claims",
            "sources": {"claims": {"kind": "csv"}},
            "steps": [
                {"op": "select_columns", "columns": ["policy_id", "fraud", "injury_claim"]},
                {"op": "split", "frames": {"train": 0.8, "test": 0.2}, "method": "key", "key": ["policy_id"]},
            ],
            "outputs": {"train": "train", "test": "test"},
        }
    )
    run = WrangleService(ws).run(
        flow, {"claims": article_data / "claims.csv"}, tmp_path / "o", progress=False
    )
    train, test = (pl.read_parquet(tmp_path / "o" / f"{n}.parquet") for n in ("train", "test"))
    assert (train.height, test.height) == (4000, 1000)
    assert not set(train["policy_id"]) & set(test["policy_id"])
    assert run.outputs["train"].rows == 4000


def test_bad_inputs_are_reported_before_anything_runs(ws: Workspace, tmp_path: Path) -> None:
    service = WrangleService(ws)
    with pytest.raises(NotFound, match="no file at"):
        service.run(
            FLOWS / "claims.flow.json", {"claims": tmp_path / "missing.csv"}, tmp_path / "o", progress=False
        )
    with pytest.raises(ValidationError, match="no source named 'claimz'"):
        service.run(
            FLOWS / "claims.flow.json", {"claimz": tmp_path / "x.csv"}, tmp_path / "o", progress=False
        )
    assert not (tmp_path / "o").exists()
    assert ws.lineage.actions("wrangle.run") == []


def test_workspace_reads_feature_group_sources_from_the_store(ws: Workspace, tmp_path: Path) -> None:
    rows = pl.DataFrame({"policy_id": [1, 2, 1], "x": [1.0, 2.0, 10.0], "event_time": [100.0, 100.0, 200.0]})
    ws.features.ingest(
        "customers", rows, record_identifier="policy_id", event_time="event_time", progress=False
    )
    source = {"kind": "feature_group", "name": "customers", "features": ["policy_id", "x"]}
    flow = Flow.from_dict(
        {
            "version": 1,
            "name": "from-store",
            "sources": {"customers": source},
            "steps": [{"op": "formula", "column": "y", "expression": "x * 2"}],
        }
    )
    run = ws.wrangle.run(flow, {}, tmp_path / "out", progress=False)
    out = pl.read_parquet(run.outputs["customers"].path).sort("policy_id")
    assert out.to_dicts() == [{"policy_id": 1, "x": 10.0, "y": 20.0}, {"policy_id": 2, "x": 2.0, "y": 4.0}]
    pinned = Flow.from_dict({**flow.to_dict(), "sources": {"customers": {**source, "version": 1}}})
    with pytest.raises(ValidationError, match="pinned group version"):
        ws.wrangle.run(pinned, {}, tmp_path / "out2", progress=False)
