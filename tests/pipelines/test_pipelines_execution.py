"""Execution: process pool in parallel, retries with backoff, resume, selection, logs, lineage, history."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import tide_pipeline_samples as samples

from tideml.errors import Conflict
from tideml.meta.models import LineageAction, LineageContext, LineageEdge
from tideml.pipelines import PipelineService, resume_run, run_pipeline
from tideml.pipelines.history import RunHistory
from tideml.workspace import Workspace


def test_independent_steps_run_in_parallel_in_spawned_processes(workspace: Workspace, marks: Path) -> None:
    result = run_pipeline(workspace, samples.parallel, executor="local:2", progress=False)
    assert result.status == "Succeeded", result.error
    a, b = result.output(workspace, "meet_a"), result.output(workspace, "meet")
    assert a["met"] and b["met"]  # each waited for the other: they ran at the same time
    assert a["pid"] != b["pid"]
    assert result.output(workspace, "pair") == ["a", "b"]
    view = PipelineService(workspace).show(result.run_id)
    assert view.executor == "local:2"
    assert all(s.worker and s.duration_s is not None for s in view.steps)
    assert PipelineService(workspace).log(result.run_id, "meet_a") == "a waiting for b\n"

    for arrived in marks.glob("arrived-*"):
        arrived.unlink()
    capped = run_pipeline(
        workspace, samples.parallel, {"patience": 1.0}, executor="local:2", max_parallel=1, progress=False
    )
    first, second = sorted(
        (capped.output(workspace, "meet_a"), capped.output(workspace, "meet")), key=lambda r: r["met"]
    )
    assert not first["met"] and second["met"]  # one at a time: the first waited in vain


def test_retries_back_off_and_count_attempts(workspace: Workspace, marks: Path) -> None:
    t0 = time.perf_counter()
    result = run_pipeline(workspace, samples.retrying, {"fail_times": 2}, executor="inline", progress=False)
    elapsed = time.perf_counter() - t0
    assert result.status == "Succeeded", result.error
    assert result.steps["flaky"].attempts == 3
    assert result.output(workspace, "flaky") == {"attempts": 3}
    assert elapsed >= 0.2 + 0.4  # backoff 0.2 s, then 0.4 s
    view = PipelineService(workspace).show(result.run_id).step("flaky")
    assert view.attempts == 3 and view.status == "Succeeded"
    failed_attempts = workspace.lineage.actions("pipeline.step")
    assert [a.status for a in failed_attempts] == ["Failed", "Failed", "Completed"]

    (marks / "executions.log").unlink()
    worse = run_pipeline(workspace, samples.retrying, {"fail_times": 5}, executor="inline", progress=False)
    assert worse.status == "Failed"
    assert worse.steps["flaky"].attempts == 3
    assert worse.error == "step flaky failed: RuntimeError: transient failure 3"


def test_only_listed_errors_are_retried(workspace: Workspace, marks: Path) -> None:
    network = run_pipeline(workspace, samples.choosy, {"kind": "network"}, executor="inline", progress=False)
    assert network.steps["picky"].attempts == 3
    data = run_pipeline(workspace, samples.choosy, {"kind": "data"}, executor="inline", progress=False)
    assert data.steps["picky"].attempts == 1
    assert "KeyError" in (data.error or "")


def test_a_failed_run_resumes_from_the_failed_step(workspace: Workspace, marks: Path) -> None:
    failed = run_pipeline(workspace, samples.fragile, executor="inline", progress=False)
    assert failed.status == "Failed"
    assert failed.error == "step needs_flag failed: RuntimeError: the flag file is missing"
    assert failed.steps["source"].status == "Succeeded" and failed.steps["finish"].status == "Pending"
    history = RunHistory(workspace).get_run(failed.run_id)
    assert history.status == "Failed" and history.step("finish").status == "Pending"
    assert "RuntimeError: the flag file is missing" in PipelineService(workspace).log(
        failed.run_id, "needs_flag"
    )

    (marks / "flag").touch()  # the user fixes the cause
    resumed = resume_run(workspace, failed.run_id, executor="inline", progress=False)
    assert resumed.run_id == failed.run_id and resumed.status == "Succeeded"
    assert resumed.steps["source"].reused and not resumed.steps["source"].executed
    assert set(resumed.executed) == {"needs_flag", "finish"}
    assert samples.executions() == ["source", "needs_flag", "needs_flag", "finish"]
    assert resumed.output(workspace, "finish") == {"z_sum": 10}
    view = RunHistory(workspace).get_run(failed.run_id)
    assert view.status == "Succeeded" and view.resumes == 1 and view.error is None
    assert view.step("needs_flag").attempts == 2

    with pytest.raises(Conflict, match="nothing to resume"):
        resume_run(workspace, failed.run_id, executor="inline", progress=False)


def test_a_run_whose_driver_is_alive_cannot_be_resumed(workspace: Workspace, marks: Path) -> None:
    result = run_pipeline(workspace, samples.fragile, executor="inline", progress=False)
    from tideml.meta.pipelines_tables import PipelineRunRow
    from tideml.pipelines.history import driver_identity

    host, pid, started = driver_identity()
    with workspace.metadata.session() as s:
        row = s.get(PipelineRunRow, result.run_id)
        assert row is not None
        row.status, row.driver_host, row.driver_pid, row.driver_started = "Running", host, pid, started
    with pytest.raises(Conflict, match="still running"):
        resume_run(workspace, result.run_id, executor="inline", progress=False)


def test_selective_execution_of_a_sub_graph(workspace: Workspace, marks: Path) -> None:
    nothing_yet = run_pipeline(
        workspace, samples.diamond, steps=["square"], executor="inline", progress=False
    )
    assert nothing_yet.status == "Failed"
    assert "step source failed: is needed by the selected steps but has no result" in (
        nothing_yet.error or ""
    )
    full = run_pipeline(workspace, samples.diamond, executor="inline", progress=False)
    before = len(samples.executions())

    only = run_pipeline(
        workspace, samples.diamond, steps=["square"], force=True, executor="inline", progress=False
    )
    assert only.executed == ["square"]
    assert only.steps["source"].status == "Cached" and only.steps["source"].cached_from_run == full.run_id
    assert "combine" not in only.steps
    view = RunHistory(workspace).get_run(only.run_id)
    assert view.step("combine").status == "Skipped" and view.step("combine").note == "not selected"

    downstream = run_pipeline(
        workspace, samples.diamond, from_steps=["total"], executor="inline", progress=False
    )
    assert set(downstream.steps) == {"total", "gate", "combine", "below_bar", "square", "other", "source"}
    assert downstream.executed == [] and downstream.skipped == ["below_bar"]
    assert downstream.steps["other"].note == "not selected: from the cache"

    stale = run_pipeline(
        workspace, samples.diamond, {"k": 4}, from_steps=["total"], executor="inline", progress=False
    )
    assert stale.status == "Failed"  # never a stale result for an unselected step whose parameters changed
    assert "step other failed: is needed by the selected steps but has no result" in (stale.error or "")
    assert "add other to the selection" in (stale.error or "")
    fixed = run_pipeline(
        workspace,
        samples.diamond,
        {"k": 4},
        steps=["other"],
        from_steps=["total"],
        executor="inline",
        progress=False,
    )
    assert set(fixed.executed) == {"other", "combine"}
    assert samples.executions()[before:] == ["square", "other", "combine"]


def test_lineage_records_each_step_in_the_run_context(workspace: Workspace, marks: Path) -> None:
    result = run_pipeline(workspace, samples.diamond, executor="inline", progress=False)
    with workspace.metadata.session() as s:
        ctx = s.scalars(sa.select(LineageContext).where(LineageContext.name == result.run_id)).one()
        assert ctx.type == "pipeline_run"
        action_ids = s.scalars(
            sa.select(LineageEdge.src_id).where(
                LineageEdge.dst_kind == "context",
                LineageEdge.dst_id == ctx.id,
                LineageEdge.type == "AssociatedWith",
            )
        ).all()
        actions = s.scalars(sa.select(LineageAction).where(LineageAction.id.in_(action_ids))).all()
    steps = {a.parameters["step"] for a in actions}
    assert steps == {"source", "other", "square", "total", "gate", "combine"}
    assert all(a.type == "pipeline.step" and a.status == "Completed" for a in actions)
    final = result.steps["combine"].outputs["return"].sha256
    upstream = workspace.lineage.graph(workspace.lineage.find_artifact(sha256=final), "upstream")
    source_out = result.steps["source"].outputs["return"].sha256
    assert source_out in {n.sha256 for n in upstream.nodes if n.kind == "artifact"}


def test_run_history_on_every_metadata_backend(any_workspace: Workspace, marks: Path) -> None:
    svc = PipelineService(any_workspace)
    first = svc.run(samples.fragile, executor="inline", progress=False)
    (marks / "flag").touch()
    svc.resume(first.run_id, executor="inline", progress=False)
    second = svc.run(samples.fragile, executor="inline", progress=False)
    runs = svc.list_runs()
    assert [r.id for r in runs] == [second.run_id, first.run_id]
    assert [r.status for r in runs] == ["Succeeded", "Succeeded"]
    assert runs[1].resumes == 1 and runs[0].counts()["Cached"] == 3
    assert svc.show(second.run_id).to_json()["counts"]["Cached"] == 3
