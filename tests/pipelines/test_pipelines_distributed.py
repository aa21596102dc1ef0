"""The same pipeline on a Dask cluster, and a run killed mid-step that `resume` finishes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tide_pipeline_samples as samples

import tideml.cli.pipelines  # noqa: F401  -- registers `tide pipeline` (until cli/__init__ imports it)
from tideml.cli import main
from tideml.pipelines import PipelineService, run_pipeline
from tideml.pipelines.history import RunHistory
from tideml.workspace import Workspace

SAMPLES = Path(samples.__file__).resolve()


@pytest.fixture
def dask_address(marks: Path) -> Iterator[str]:
    """A real distributed.LocalCluster of two worker processes (started after $TIDE_TEST_MARKS is set)."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()


def test_the_same_pipeline_runs_on_a_dask_cluster(
    workspace: Workspace, marks: Path, dask_address: str, tmp_path: Path
) -> None:
    on_dask = run_pipeline(workspace, samples.diamond, {"n": 9}, executor=dask_address, progress=False)
    assert on_dask.status == "Succeeded", on_dask.error
    assert on_dask.executor == "dask://" + dask_address.removeprefix("tcp://")
    view = RunHistory(workspace).get_run(on_dask.run_id)
    workers = {s.worker for s in view.steps if s.status == "Succeeded" and s.kind == "python"}
    assert all(w and int(w.rsplit(":", 1)[1]) != os.getpid() for w in workers)  # ran on the workers
    assert PipelineService(workspace).log(on_dask.run_id, "source") == "source: making 9 rows\n"

    with Workspace.init(tmp_path / "reference") as ref_ws:
        locally = run_pipeline(ref_ws, samples.diamond, {"n": 9}, executor="inline", progress=False)
    for name, step in locally.steps.items():
        assert on_dask.steps[name].outputs == step.outputs, name
        assert on_dask.steps[name].cache_key == step.cache_key, name

    t0 = time.perf_counter()
    cached = run_pipeline(workspace, samples.diamond, {"n": 9}, executor="dask-local", progress=False)
    assert cached.executed == [] and cached.executor == "dask-local:2"
    assert time.perf_counter() - t0 < 5  # nothing to execute, so no cluster was started


def _cli(*args: str) -> list[str]:
    code = "import sys, tideml.cli.pipelines; from tideml.cli import main; main(sys.argv[1:])"
    return [sys.executable, "-c", code, *args]


def test_a_run_killed_mid_step_resumes_without_redoing_finished_steps(
    workspace: Workspace, marks: Path, tmp_path: Path
) -> None:
    (marks / "block").touch()  # the `slow` step waits while this exists
    proc = subprocess.Popen(
        _cli("pipeline", "run", f"{SAMPLES}:killable", "-w", str(workspace.root), "-e", "local:1", "--json"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=os.environ.copy(),
    )
    try:
        deadline = time.time() + 90
        while not (marks / "slow-started").exists():
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.time() < deadline, "the slow step never started"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its pool worker, mid-step
        proc.wait()

    killed = RunHistory(workspace).list_runs("killable")[0]
    assert killed.status == "Running"  # nobody got to record an end
    assert [s.status for s in killed.steps] == ["Succeeded", "Succeeded", "Running", "Pending"]
    assert samples.executions() == ["source", "square", "slow"]

    (marks / "block").unlink()
    try:
        main(["pipeline", "resume", killed.id, "-w", str(workspace.root), "-e", "inline", "--json"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    resumed = RunHistory(workspace).get_run(killed.id)
    assert resumed.status == "Succeeded" and resumed.resumes == 1
    assert samples.executions() == ["source", "square", "slow", "slow", "finish"]  # finished steps not redone
    assert resumed.step("slow").attempts == 2

    with Workspace.init(tmp_path / "uninterrupted") as ref_ws:
        reference = run_pipeline(ref_ws, samples.killable, executor="inline", progress=False)
    for step in resumed.steps:
        assert step.outputs == {k: v.to_json() for k, v in reference.steps[step.step].outputs.items()}, (
            step.step
        )
