"""Lineage recording and recursive queries, on SQLite and the real PostgreSQL."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tideml.errors import NotFound, ValidationError
from tideml.lineage import ArtifactSpec, Lineage
from tideml.meta import MetadataStore


@pytest.fixture
def lineage(metadata_url: str) -> Lineage:
    return Lineage(MetadataStore(metadata_url))


def raw(name: str) -> ArtifactSpec:
    digest = hashlib.sha256(name.encode()).hexdigest()
    return ArtifactSpec("File", f"file:///data/{name}", sha256=digest, name=name)


def build_chain(lineage: Lineage) -> dict[str, ArtifactSpec]:
    claims, customers = raw("claims.csv"), raw("customers.csv")
    flow = ArtifactSpec("Flow", "flow:claims", sha256="f" * 64)
    fitted = ArtifactSpec("FittedFlow", "fitted:claims", sha256="e" * 64)
    group = ArtifactSpec("FeatureGroup", "featuregroup:claims")
    dataset = ArtifactSpec("Dataset", "dataset:train", sha256="d" * 64)
    model = ArtifactSpec("Model", "model:fraud/1", sha256="c" * 64)
    with lineage.action("wrangle.fit", parameters={"flow": "claims"}) as act:
        act.input(claims)
        act.input(flow)
        act.output(fitted)
    with lineage.action("features.ingest") as act:
        act.input(fitted)
        act.input(claims)
        act.output(group)
    with lineage.action("features.dataset") as act:
        act.input(group)
        act.input(customers)
        act.output(dataset)
    with lineage.action("train.fit", context=("experiment", "fraud")) as act:
        act.input(dataset)
        act.output(model)
        act.set(test_auc=0.8)
    return {
        "claims": claims,
        "customers": customers,
        "flow": flow,
        "fitted": fitted,
        "group": group,
        "dataset": dataset,
        "model": model,
    }


def test_upstream_of_a_model_reaches_raw_files_and_flows(lineage: Lineage) -> None:
    arts = build_chain(lineage)
    model_id = lineage.find_artifact(sha256=arts["model"].sha256)
    graph = lineage.graph(model_id, "upstream")
    uris = {n.uri for n in graph.artifacts()}
    assert uris == {a.uri for a in arts.values()}
    by_uri = {n.uri: n for n in graph.artifacts()}
    assert by_uri["model:fraud/1"].depth == 0
    assert by_uri["dataset:train"].depth == 2
    assert by_uri["file:///data/claims.csv"].depth == 6  # via the ingest: the shortest path wins
    assert by_uri["flow:claims"].depth == 8
    assert {n.type for n in graph.nodes if n.kind == "action"} == {
        "wrangle.fit",
        "features.ingest",
        "features.dataset",
        "train.fit",
    }
    assert all(n.status == "Completed" for n in graph.nodes if n.kind == "action")


def test_depth_and_type_filters(lineage: Lineage) -> None:
    arts = build_chain(lineage)
    model_id = lineage.find_artifact(sha256=arts["model"].sha256)
    shallow = lineage.graph(model_id, "upstream", max_depth=2)
    assert {n.uri for n in shallow.artifacts()} == {"model:fraud/1", "dataset:train"}
    files = lineage.graph(model_id, "upstream", types={"File"})
    assert {n.uri for n in files.artifacts() if n.type == "File"} == {
        "file:///data/claims.csv",
        "file:///data/customers.csv",
    }
    assert {n.type for n in files.artifacts()} == {"File", "Model"}  # the start is always kept


def test_downstream_of_a_raw_file(lineage: Lineage) -> None:
    arts = build_chain(lineage)
    claims_id = lineage.find_artifact(sha256=arts["claims"].sha256)
    down = lineage.graph(claims_id, "downstream")
    assert {"fitted:claims", "featuregroup:claims", "dataset:train", "model:fraud/1"} <= {
        n.uri for n in down.artifacts()
    }
    assert "flow:claims" not in {n.uri for n in down.artifacts()}


def test_same_hash_is_one_artifact_however_often_used(lineage: Lineage) -> None:
    claims = raw("claims.csv")
    for _ in range(3):
        with lineage.action("wrangle.fit") as act:
            act.input(claims)
            act.input(ArtifactSpec("File", "file:///elsewhere/copy.csv", sha256=claims.sha256))
    first = lineage.find_artifact(sha256=claims.sha256)
    graph = lineage.graph(first, "downstream")
    assert len(graph.artifacts()) == 1
    assert len([n for n in graph.nodes if n.kind == "action"]) == 3
    assert len(graph.edges) == 3  # duplicate declarations collapse into one edge per action


def test_a_failing_action_is_recorded_as_failed_and_reraised(lineage: Lineage) -> None:
    with pytest.raises(RuntimeError, match="boom"), lineage.action("train.fit") as act:
        act.input(raw("x.csv"))
        act.output(ArtifactSpec("Model", "model:never", sha256="b" * 64))
        raise RuntimeError("boom")
    (action,) = lineage.actions("train.fit")
    assert action.status == "Failed" and action.error == "RuntimeError: boom"
    assert action.ended_at is not None
    with pytest.raises(NotFound):
        lineage.find_artifact(sha256="b" * 64)  # outputs of a failed action were never produced


def test_result_properties_and_context_are_kept(lineage: Lineage) -> None:
    build_chain(lineage)
    (train,) = lineage.actions("train.fit")
    assert train.parameters["results"] == {"test_auc": 0.8}
    assert train.who


def test_unknown_artifact_type_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="unknown artifact type 'Blob'"):
        ArtifactSpec("Blob", "x")


def test_workspace_exposes_lineage(tmp_path: Path) -> None:
    from tideml import Workspace

    with Workspace.init(tmp_path) as ws:
        with ws.lineage.action("demo") as act:
            act.output(ArtifactSpec("Report", "report:x", sha256="a" * 64))
        assert ws.lineage.find_artifact(type="Report", uri="report:x") > 0
