"""`tide monitor …` end to end on a workspace: baseline, create, run, check, list, show, serve --once."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import tideml.cli.monitor  # noqa: F401  -- registers `tide monitor` (the lead adds it to cli/__init__)
from tide_cli import tide
from tideml.datasets.drift import AutoclaimsDrift
from tideml.workspace import Workspace


@pytest.fixture
def files(tmp_path: Path, reference: pl.DataFrame, make_claims, score) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    train = tmp_path / "train.parquet"
    reference.head(5000).write_parquet(train)
    capture = tmp_path / "capture"
    capture.mkdir()
    drifted = make_claims(1500, 801, AutoclaimsDrift(new_state="UT", new_state_share=0.3, seed=1))
    ids = [f"c-{i}" for i in range(drifted.height)]
    drifted.drop("fraud").with_columns(
        pl.Series("inference_id", ids), pl.Series("probability", score(drifted))
    ).write_ndjson(capture / "capture.jsonl")
    labels = tmp_path / "labels.csv"
    pl.DataFrame({"inference_id": ids, "label": drifted["fraud"]}).write_csv(labels)
    return {"train": train, "capture": capture, "labels": labels, "ws": tmp_path / "ws"}


def test_the_monitor_commands(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path
) -> None:
    Workspace.init(files["ws"]).close()
    ws = ["--workspace", str(files["ws"])]
    base = tmp_path / "baseline"
    code, out, _ = tide(
        capsys,
        "monitor",
        "baseline",
        str(files["train"]),
        "--out",
        str(base),
        "--label-column",
        "fraud",
        "--prediction-column",
        "probability",
        "--threshold",
        "0.05",
        "--json",
        *ws,
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["rows"] == 5000 and "policy_state" in doc["features"]
    assert {p.name for p in base.iterdir()} >= {
        "statistics.json",
        "constraints.json",
        "model_quality_constraints.json",
        "baseline.json",
    }

    code, out, _ = tide(
        capsys,
        "monitor",
        "create",
        "fraud",
        "--baseline",
        str(base),
        "--capture",
        str(files["capture"]),
        "--labels",
        str(files["labels"]),
        "--every",
        "1h",
        "--trigger-pipeline",
        "examples/x.py:retrain",
        "--trigger-param",
        "rows=1000",
        "--trigger-after",
        "2",
        "--json",
        *ws,
    )
    assert code == 0
    view = json.loads(out)
    assert (
        view["schedule"] == "every 1h"
        and view["trigger"]["parameters"] == {"rows": 1000}
        and view["trigger"]["after"] == 2
    )

    out_dir = tmp_path / "run-out"
    code, out, _ = tide(
        capsys,
        "monitor",
        "run",
        "fraud",
        "--since",
        "2000-01-01T00:00:00Z",
        "--until",
        "2100-01-01T00:00:00Z",
        "--out",
        str(out_dir),
        "--json",
        *ws,
    )
    assert code == 0
    result = json.loads(out)
    assert result["run"]["status"] == "CompletedWithViolations" and result["run"]["rows"] == 1500
    assert {v["feature_name"] for v in result["violations"] if "feature_name" in v} == {"policy_state"}
    assert (
        json.loads((out_dir / "constraint_violations.json").read_text())["violations"] == result["violations"]
    )
    assert (out_dir / "report.html").stat().st_size < 5_000_000

    code, _, _ = tide(
        capsys,
        "monitor",
        "run",
        "fraud",
        "--since",
        "2000-01-01T00:00:00Z",
        "--fail-on-violation",
        "--no-progress",
        *ws,
    )
    assert code == 1

    code, out, _ = tide(capsys, "monitor", "list", "--json", *ws)
    [listed] = json.loads(out)
    assert listed["name"] == "fraud" and listed["last_run"]["status"] == "CompletedWithViolations"
    code, out, _ = tide(capsys, "monitor", "list", *ws)
    assert "fraud" in out and "every 1h" in out

    code, out, _ = tide(capsys, "monitor", "show", "fraud", "--violations", "--json", *ws)
    shown = json.loads(out)
    assert len(shown["runs"]) == 2 and shown["runs"][0]["streak"] == 2
    assert shown["violations"]["violations"][0]["feature_name"] == "policy_state"
    code, out, _ = tide(capsys, "monitor", "show", "fraud", *ws)
    assert code == 0 and "every 1h" in out and "outcome" in out

    code, out, _ = tide(
        capsys,
        "monitor",
        "check",
        str(files["capture"]),
        "--baseline",
        str(base),
        "--labels",
        str(files["labels"]),
        "--json",
        *ws,
    )
    assert code == 0 and json.loads(out)["summary"]["drifted_features"] == ["policy_state"]

    code, out, _ = tide(capsys, "monitor", "serve", "--once", *ws)
    assert code == 0 and "0 run(s)" in out  # nothing is due yet

    code, out, _ = tide(capsys, "monitor", "delete", "fraud", *ws)
    assert code == 0


def test_user_mistakes_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path
) -> None:
    Workspace.init(files["ws"]).close()
    ws = ["--workspace", str(files["ws"])]
    code, _, err = tide(capsys, "monitor", "show", "nope", *ws)
    assert code == 3 and err.count("\n") == 1 and "no such monitor" in err
    base = tmp_path / "baseline"
    tide(capsys, "monitor", "baseline", str(files["train"]), "--out", str(base), *ws)
    code, _, err = tide(
        capsys,
        "monitor",
        "create",
        "x",
        "--baseline",
        str(base),
        "--capture",
        str(files["capture"]),
        "--every",
        "often",
        *ws,
    )
    assert code == 2 and "often" in err and err.count("\n") == 1
    constraints = base / "constraints.json"
    constraints.write_text(
        constraints.read_text().replace('"comparison_threshold": 0.1', '"comparison_threshold": -1', 1)
    )
    code, _, err = tide(
        capsys, "monitor", "create", "x", "--baseline", str(base), "--capture", str(files["capture"]), *ws
    )
    assert code == 2 and err.count("\n") == 1
    assert "constraints.json:" in err and "comparison_threshold" in err and "Traceback" not in err
