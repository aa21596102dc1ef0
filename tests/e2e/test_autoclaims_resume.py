"""Kill the flagship pipeline in the middle of its training (tuning) step; `tide pipeline resume` finishes
it without redoing finished steps, and its results equal an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tideml import Workspace
from tideml.cli import main
from tideml.pipelines import run_pipeline
from tideml.pipelines.history import RunHistory

sys.path.insert(0, str(Path(__file__).parent))
from test_autoclaims_pipeline import REPO, load_example

PIPELINE = REPO / "examples" / "autoclaims" / "pipeline.py"


@pytest.mark.slow
def test_killed_in_training_then_resumed_equals_an_uninterrupted_run(
    workspace: Workspace, article_data: Path, tmp_path: Path
) -> None:
    params = {
        "claims": str(article_data / "claims.csv"),
        "customers": str(article_data / "customers.csv"),
        "trials": 5,
    }
    args = [f"-p{k}={v}" for k, v in params.items()]
    code = "import sys; from tideml.cli import main; main(sys.argv[1:])"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "pipeline",
            "run",
            f"{PIPELINE}:autoclaims",
            "-w",
            str(workspace.root),
            "-e",
            "inline",
            "--json",
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    history = RunHistory(workspace)
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.time() < deadline, "the tune step never started"
            runs = history.list_runs("autoclaims")
            if runs and runs[0].step("tune").status == "Running":
                break
            time.sleep(0.1)
        time.sleep(1.0)  # well inside the tuning trials
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    killed = history.list_runs("autoclaims")[0]
    assert killed.status == "Running" and killed.step("tune").status == "Running"
    finished_before = {s.step for s in killed.steps if s.status == "Succeeded"}
    assert {"wrangle_claims", "ingest_claims", "dataset"} <= finished_before

    with pytest.raises(SystemExit) as exited:
        main(["pipeline", "resume", killed.id, "-w", str(workspace.root), "-e", "inline", "--json"])
    assert exited.value.code in (0, None)
    resumed = history.get_run(killed.id)
    assert resumed.status == "Succeeded" and resumed.resumes == 1
    for name in finished_before:  # kept, not redone
        assert resumed.step(name).attempts == 1, name
    assert resumed.step("tune").attempts == 2

    with Workspace.init(tmp_path / "uninterrupted") as ref_ws:
        reference = run_pipeline(ref_ws, load_example().autoclaims, params, executor="inline", progress=False)
        expected = {s: reference.output(ref_ws, s) for s in ("dataset", "tune", "mitigate", "evaluation")}
    got = {s: workspace.pipelines.output(killed.id, s) for s in expected}
    assert got["dataset"]["sha256"] == expected["dataset"]["sha256"]
    assert got["tune"]["best_params"] == expected["tune"]["best_params"]
    assert got["tune"]["best_value"] == expected["tune"]["best_value"]
    assert got["mitigate"]["models"] == expected["mitigate"]["models"]
    assert got["evaluation"]["metrics"] == expected["evaluation"]["metrics"]
    assert (
        workspace.registry.get_version("autoclaims-fraud/1").model_sha256 == got["evaluation"]["model_sha256"]
    )
