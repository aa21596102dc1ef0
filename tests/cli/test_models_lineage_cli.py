"""`tide models` and `tide lineage` in-process, as a user drives them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tideml import Workspace
from tideml.cli import main
from tideml.lineage import ArtifactSpec


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def trained(tmp_path: Path) -> Path:
    """A workspace where a raw file went through a fit and a training run into a registered model."""
    root = tmp_path / "ws"
    with Workspace.init(root) as ws:
        raw = tmp_path / "claims.csv"
        raw.write_text("policy_id,fraud\n1,0\n")
        raw_ref = ws.put_artifact(raw)
        data = ws.put_artifact(b"dataset", "application/vnd.apache.parquet")
        model = ws.put_artifact(b"model", "application/ubjson")
        with ws.lineage.action("features.dataset") as act:
            act.input(ArtifactSpec("File", raw.as_uri(), sha256=raw_ref.sha256, name="claims.csv"))
            act.output(ArtifactSpec("Dataset", data.uri, sha256=data.sha256))
        with ws.lineage.action("train.fit") as act:
            act.input(ArtifactSpec("Dataset", data.uri, sha256=data.sha256))
            act.output(ArtifactSpec("Model", model.uri, sha256=model.sha256))
        ws.registry.create_group("autoclaims-fraud", policy=["test_auc >= 0.75"])
        ws.registry.register(
            "autoclaims-fraud", model.sha256, metrics={"test_auc": 0.7}, evidence={"dataset": data.sha256}
        )
        ws.registry.register("autoclaims-fraud", model.sha256, metrics={"test_auc": 0.8})
    return root


def test_lineage_show_lists_dataset_and_raw_file(capsys: pytest.CaptureFixture[str], trained: Path) -> None:
    code, out, _ = run(capsys, "lineage", "show", "model:autoclaims-fraud/1", "-w", str(trained))
    assert code == 0
    assert "registry.register" in out and "train.fit" in out and "claims.csv" in out and "Dataset" in out
    code, out, _ = run(capsys, "lineage", "show", "model:autoclaims-fraud/1", "-w", str(trained), "--json")
    graph = json.loads(out)
    assert {n["type"] for n in graph["nodes"] if n["kind"] == "artifact"} == {"Model", "Dataset", "File"}
    assert all(len(n["sha256"]) == 64 for n in graph["nodes"] if n["type"] in ("Dataset", "File"))


def test_lineage_exports(capsys: pytest.CaptureFixture[str], trained: Path, tmp_path: Path) -> None:
    code, out, _ = run(
        capsys, "lineage", "export", "model:autoclaims-fraud/1", "--format", "dot", "-w", str(trained)
    )
    assert code == 0 and out.startswith("digraph lineage {") and "-> " in out
    dest = tmp_path / "ol.json"
    run(
        capsys,
        "lineage",
        "export",
        "claims.csv",
        "--direction",
        "downstream",
        "--format",
        "openlineage",
        "--out",
        str(dest),
        "-w",
        str(trained),
    )
    events = json.loads(dest.read_text())
    jobs = {e["job"]["name"] for e in events}
    assert {"features.dataset", "train.fit", "registry.register"} <= jobs
    assert all(e["eventType"] == "COMPLETE" and e["eventTime"] and e["run"]["runId"] for e in events)
    fit = next(e for e in events if e["job"]["name"] == "features.dataset")
    assert fit["inputs"][0]["name"].endswith("claims.csv")


def test_lineage_unknown_ref_is_one_line(capsys: pytest.CaptureFixture[str], trained: Path) -> None:
    code, _, err = run(capsys, "lineage", "show", "model:nope/1", "-w", str(trained))
    assert code == 3 and "no such artifact" in err and "Traceback" not in err


def test_models_approve_alias_compare_card(capsys: pytest.CaptureFixture[str], trained: Path) -> None:
    w = ("-w", str(trained))
    code, _, err = run(capsys, "models", "approve", "autoclaims-fraud/1", "--actor", "alice", *w)
    assert code == 7 and "rule 'test_auc >= 0.75' failed" in err
    code, out, _ = run(
        capsys, "models", "approve", "autoclaims-fraud/2", "--actor", "alice", "-m", "ok", *w, "--json"
    )
    assert code == 0 and json.loads(out)["status"] == "Approved"
    code, _, err = run(capsys, "models", "alias", "autoclaims-fraud", "production", "1", *w)
    assert code == 7 and "only an Approved version" in err
    assert run(capsys, "models", "alias", "autoclaims-fraud", "production", "2", *w)[0] == 0
    code, out, _ = run(capsys, "models", "show", "autoclaims-fraud@production", *w, "--json")
    shown = json.loads(out)
    assert shown["version"] == 2 and [e["event"] for e in shown["history"]] == [
        "registered",
        "approved",
        "alias_set",
    ]
    code, out, _ = run(capsys, "models", "list", "autoclaims-fraud", *w, "--json")
    assert [v["status"] for v in json.loads(out)] == ["PendingManualApproval", "Approved"]
    code, out, _ = run(capsys, "models", "compare", "autoclaims-fraud/1", "autoclaims-fraud/2", *w, "--json")
    assert json.loads(out)["metrics"][0]["values"] == [0.7, 0.8]
    code, out, _ = run(capsys, "models", "card", "autoclaims-fraud/2", *w)
    assert "# Model card: autoclaims-fraud/2" in out and "| `test_auc >= 0.75` | 0.8 | pass |" in out
    code, out, _ = run(capsys, "models", "reject", "autoclaims-fraud/2", "-m", "drift", *w)
    assert code == 0
    code, _, err = run(capsys, "models", "show", "autoclaims-fraud@production", *w)
    assert code == 3 and "no such alias" in err
