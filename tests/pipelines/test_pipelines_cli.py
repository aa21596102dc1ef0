"""`tide pipeline run|list|show|resume` in-process, as a user drives them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tide_pipeline_samples as samples

import tideml.cli.pipelines  # noqa: F401  -- registers `tide pipeline` (until cli/__init__ imports it)
from tide_cli import tide
from tideml.workspace import Workspace

SAMPLES = Path(samples.__file__).resolve()


def test_run_list_show_as_json(workspace: Workspace, marks: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = str(workspace.root)
    code, out, _ = tide(
        capsys, "pipeline", "run", f"{SAMPLES}:diamond", "-w", ws, "-e", "inline", "-p", "n=3", "--json"
    )
    assert code == 0
    run = json.loads(out)
    assert run["status"] == "Succeeded" and run["parameters"] == {"n": 3, "k": 2, "min_auc": 0.7}
    assert run["counts"]["Succeeded"] == 6 and run["counts"]["Skipped"] == 1
    assert [s["step"] for s in run["steps"]][:2] == ["source", "other"]

    code, out, _ = tide(
        capsys, "pipeline", "run", f"{SAMPLES}:diamond", "-w", ws, "-e", "inline", "-p", "n=3", "--json"
    )
    again = json.loads(out)
    assert again["counts"]["Succeeded"] == 0 and again["counts"]["Cached"] == 6

    code, out, _ = tide(capsys, "pipeline", "list", "-w", ws, "--json")
    assert [r["id"] for r in json.loads(out)] == [again["id"], run["id"]]

    code, out, _ = tide(capsys, "pipeline", "show", run["id"], "-w", ws)
    assert code == 0 and "Succeeded" in out and "source" in out and "6 executed" in out

    code, out, _ = tide(capsys, "pipeline", "show", run["id"], "-w", ws, "--step", "source")
    assert code == 0 and "source: making 3 rows" in out and "n = 3" in out and "code version" in out


def test_describe_prints_the_definition(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = tide(capsys, "pipeline", "describe", f"{SAMPLES}:diamond", "--json")
    assert code == 0
    definition = json.loads(out)
    assert definition["name"] == "diamond" and len(definition["definition_sha256"]) == 64
    assert definition["steps"][0]["function"] == "tide_pipeline_samples.py:source"
    code, out, _ = tide(capsys, "pipeline", "describe", f"{SAMPLES}:diamond")
    assert code == 0 and "gate is false" in out and "condition" in out


def test_a_failed_run_exits_non_zero_with_one_line_and_resumes(
    workspace: Workspace, marks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = str(workspace.root)
    code, out, err = tide(capsys, "pipeline", "run", f"{SAMPLES}:fragile", "-w", ws, "-e", "inline")
    assert code == 8
    assert err.count("error:") == 1 and "needs_flag failed: RuntimeError: the flag file is missing" in err
    assert "tide pipeline resume run-" in err and "Traceback" not in err + out
    run_id = err.split("tide pipeline resume ")[1].split("`")[0]

    (marks / "flag").touch()
    code, out, _ = tide(capsys, "pipeline", "resume", run_id, "-w", ws, "--json")
    assert code == 0
    resumed = json.loads(out)
    assert resumed["id"] == run_id and resumed["status"] == "Succeeded" and resumed["resumes"] == 1


def test_user_mistakes_get_one_line_with_the_fix(
    workspace: Workspace, marks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = str(workspace.root)
    cases = [
        (
            ("pipeline", "run", f"{SAMPLES}:diamond", "-w", ws, "-p", "n=many"),
            2,
            "diamond: n: input should be a valid integer",
        ),
        (
            ("pipeline", "run", f"{SAMPLES}:diamond", "-w", ws, "-p", "rows=3"),
            2,
            "known parameters: n, k, min_auc",
        ),
        (("pipeline", "run", f"{SAMPLES}:diamond", "-w", ws, "-p", "oops"), 2, "KEY=VALUE"),
        (("pipeline", "run", f"{SAMPLES}:nothing", "-w", ws), 3, "defines no 'nothing'"),
        (("pipeline", "run", f"{SAMPLES}:mark", "-w", ws), 2, "not a pipeline"),
        (("pipeline", "run", "missing.py:p", "-w", ws), 3, "no such file"),
        (("pipeline", "run", f"{SAMPLES}:diamond", "-w", ws, "-e", "cloud"), 2, "unknown executor"),
        (("pipeline", "show", "run-nope", "-w", ws), 3, "no such run"),
        (("pipeline", "resume", "run-nope", "-w", ws), 3, "no such run"),
    ]
    for args, expected, text in cases:
        code, _, err = tide(capsys, *args)
        assert code == expected, (args, err)
        assert text in err, (args, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 3, err
