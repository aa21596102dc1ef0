"""`MonitorService` on a real workspace: stored baselines and monitors, on-demand and scheduled runs over
capture files, lineage, and the retraining trigger (a launcher function, and the pipelines engine)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa

from tideml.datasets.drift import AutoclaimsDrift
from tideml.errors import Conflict, NotFound, ValidationError
from tideml.meta.models import LineageAction, LineageContext, LineageEdge
from tideml.monitor import LaunchedRun, MonitorService, TriggerSpec, pipelines_launcher
from tideml.workspace import Workspace

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
DRIFT = AutoclaimsDrift(extra_insurers=0.6, new_state="UT", new_state_share=0.2, fraud_pattern=1.0, seed=5)


@pytest.fixture
def svc(workspace: Workspace) -> MonitorService:
    return MonitorService(workspace)


@pytest.fixture
def baseline_ref(svc: MonitorService, reference: pl.DataFrame):  # type: ignore[no-untyped-def]
    _, ref = svc.suggest_baseline(
        reference.head(8000), label_column="fraud", prediction_column="probability", threshold=0.05
    )
    return ref


def write_capture(
    folder: Path, frame: pl.DataFrame, probabilities: Any, start: datetime, prefix: str
) -> pl.DataFrame:
    """Flat JSON-lines capture records, one second apart from `start`; returns the labels."""
    folder.mkdir(parents=True, exist_ok=True)
    n = frame.height
    ids = [f"{prefix}-{i}" for i in range(n)]
    times = [(start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z") for i in range(n)]
    records = frame.drop("fraud").with_columns(
        pl.Series("inference_id", ids), pl.Series("time", times), pl.Series("probability", probabilities)
    )
    records.write_ndjson(folder / f"capture-{prefix}.jsonl")
    return pl.DataFrame({"inference_id": ids, "label": frame["fraud"]})


def digest(folder: Path) -> dict[str, tuple[str, float]]:
    return {
        str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_baseline_monitor_and_run_with_lineage(svc, baseline_ref, make_claims, score, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ws = svc.ws
    capture, labels_dir = tmp_path / "capture", tmp_path / "labels"
    claims = make_claims(1500, 701)
    labels = write_capture(capture, claims, score(claims), T0, "a")
    labels_dir.mkdir()
    labels.write_parquet(labels_dir / "labels.parquet")
    before = digest(capture) | digest(labels_dir)
    view = svc.create("fraud", baseline=baseline_ref, capture=capture, labels=labels_dir, every="1h")
    assert view.schedule.describe() == "every 1h" and view.next_run_at is not None
    outcome = svc.run("fraud", start=T0, end=T0 + timedelta(hours=1), progress=False)
    run = outcome.run
    assert (
        run.status == "Completed" and run.violations == 0 and run.rows == 1500 and run.labelled_rows == 1500
    )
    assert set(run.outputs) == {
        "constraint_violations.json",
        "statistics.json",
        "monitoring_results.json",
        "report.html",
        "model_quality_statistics.json",
    }
    assert svc.read_output(run) == b'{\n  "violations": []\n}\n'
    assert digest(capture) | digest(labels_dir) == before  # a run never modifies captured data
    [listed] = svc.runs("fraud")
    assert listed.id == run.id and listed.summary["model_quality"]["auc"] > 0.6
    # lineage: capture file → monitor.run → constraint_violations.json
    capture_file = next(capture.glob("*.jsonl")).resolve()
    start = ws.lineage.find_artifact(uri=capture_file.as_uri())
    downstream = ws.lineage.graph(start, "downstream")
    names = {n.name for n in downstream.artifacts("Report")}
    assert {"constraint_violations.json", "report.html", "statistics.json"} <= names
    actions = [n for n in downstream.nodes if n.kind == "action"]
    assert [a.type for a in actions] == ["monitor.run"]
    # the baseline files are upstream of the run's outputs
    violations = ws.lineage.find_artifact(sha256=run.outputs["constraint_violations.json"])
    upstream = {n.name for n in ws.lineage.graph(violations, "upstream").artifacts()}
    assert {"constraints.json", "statistics.json", capture_file.name, "labels.parquet"} <= upstream


def test_a_drifted_window_is_stored_with_its_violations(
    svc, baseline_ref, make_claims, score, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    capture = tmp_path / "capture"
    claims = make_claims(2000, 702, DRIFT)
    write_capture(capture, claims, score(claims), T0, "d")
    svc.create("drift", baseline=baseline_ref, capture=capture)
    outcome = svc.run("drift", progress=False)  # on demand: the whole capture
    assert outcome.run.status == "CompletedWithViolations"
    import json

    doc = json.loads(svc.read_output(outcome.run))
    subjects = {(v["constraint_check_type"], v["feature_name"]) for v in doc["violations"]}
    assert ("categorical_values_check", "policy_state") in subjects
    assert ("baseline_drift_check", "num_insurers_past_5_years") in subjects
    html = svc.read_output(outcome.run, "report.html").decode()
    assert "policy_state" in html and "data:image/png;base64," in html and len(html) < 2_000_000


def test_monitors_are_validated_listed_and_deleted(svc, baseline_ref, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match="name"):
        svc.create("bad name!", baseline=baseline_ref, capture=tmp_path)
    with pytest.raises(ValidationError, match="capture"):
        svc.create("nocapture", baseline=baseline_ref)
    with pytest.raises(ValidationError, match="every"):
        svc.create("x", baseline=baseline_ref, capture=tmp_path, every="soon")
    with pytest.raises(ValidationError, match="cron"):
        svc.create("x", baseline=baseline_ref, capture=tmp_path, cron="* * *")
    svc.create("a", baseline=baseline_ref, capture=tmp_path, cron="*/15 * * * *")
    with pytest.raises(Conflict):
        svc.create("a", baseline=baseline_ref, capture=tmp_path)
    svc.create("a", baseline=baseline_ref, capture=tmp_path, every="30m", replace=True)
    svc.create("b", baseline=baseline_ref, capture=tmp_path)
    assert [m.name for m in svc.list()] == ["a", "b"]
    assert svc.get("a").schedule.describe() == "every 30m"
    assert svc.get("b").schedule.on_demand and svc.get("b").next_run_at is None
    assert svc.set_enabled("a", False).next_run_at is None
    svc.delete("a")
    with pytest.raises(NotFound):
        svc.get("a")


def test_a_failed_run_is_recorded_and_raised(svc, baseline_ref, tmp_path) -> None:  # type: ignore[no-untyped-def]
    capture = tmp_path / "capture"
    capture.mkdir()
    (capture / "bad.jsonl").write_text('{"inference_id": "a"}\n{oops\n')
    svc.create("broken", baseline=baseline_ref, capture=capture)
    with pytest.raises(ValidationError) as info:
        svc.run("broken", progress=False)
    assert info.value.field == "line 2"
    [run] = svc.runs("broken")
    assert run.status == "Failed" and "line 2" in (run.error or "")
    actions = svc.ws.lineage.actions("monitor.run")
    assert actions[-1].status == "Failed"


def test_the_scheduler_claims_due_monitors_and_tiles_their_windows(
    svc, baseline_ref, make_claims, score, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    capture = tmp_path / "capture"
    svc.create("hourly", baseline=baseline_ref, capture=capture, every="1h", config={"report_plots": 0})
    slot = svc.get("hourly").next_run_at
    assert slot is not None
    claims = make_claims(1200, 703)
    write_capture(capture, claims, score(claims), slot - timedelta(minutes=30), "s")  # inside [slot-1h, slot)
    assert svc.run_due(now=slot - timedelta(seconds=1)) == []  # not due yet
    [first] = svc.run_due(now=slot + timedelta(seconds=5))
    assert first.run.trigger_kind == "schedule"
    assert first.run.window_end == slot and first.run.window_start == slot - timedelta(hours=1)
    assert first.run.rows == 1200
    assert svc.run_due(now=slot + timedelta(seconds=6)) == []  # claimed: never twice
    assert svc.get("hourly").next_run_at == slot + timedelta(hours=1)
    # a scheduler that was down skips missed slots; the next window ends at the slot it runs for
    [late] = svc.run_due(now=slot + timedelta(hours=3, minutes=10))
    assert late.run.window_end == slot + timedelta(hours=1)
    assert svc.get("hourly").next_run_at == slot + timedelta(hours=4)
    assert late.run.rows == 0


def test_serve_runs_due_monitors_until_stopped(svc, baseline_ref, make_claims, score, tmp_path) -> None:  # type: ignore[no-untyped-def]
    capture = tmp_path / "capture"
    claims = make_claims(300, 704)
    write_capture(capture, claims, score(claims), datetime.now(UTC) - timedelta(seconds=400), "v")
    svc.create(
        "fast", baseline=baseline_ref, capture=capture, every="1s", window="1h", config={"report_plots": 0}
    )
    seen: list[int] = []
    import time

    time.sleep(1.1)
    runs = svc.serve(poll_seconds=0.2, max_iterations=1, on_run=lambda o: seen.append(o.run.rows))
    assert runs == 1 and seen == [300]


class RecordingLauncher:
    """A launcher that trains and registers a model in-process (a stand-in for any pipeline engine)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self, pipeline: str, parameters: Mapping[str, Any], *, reason: Mapping[str, Any]
    ) -> LaunchedRun:
        from tide_monitor_retrain import train_and_register

        out = train_and_register(str(self.ws.root), parameters["group"], 2000, len(self.calls))
        run_id = f"stand-in-{len(self.calls)}"
        self.calls.append(
            {"pipeline": pipeline, "parameters": dict(parameters), "reason": dict(reason), "out": out}
        )
        return LaunchedRun(
            run_id=run_id, pipeline=pipeline, status="Succeeded", details={"version": out["ref"]}
        )


def test_the_trigger_fires_once_per_streak_of_n_violating_runs(
    svc, baseline_ref, make_claims, score, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    capture = tmp_path / "capture"
    trigger = TriggerSpec(
        pipeline="retrain", parameters={"group": "fraud"}, after=2, checks=["baseline_drift_check"]
    )
    svc.create(
        "loop",
        baseline=baseline_ref,
        capture=capture,
        every="1h",
        trigger=trigger,
        config={"report_plots": 0},
    )
    launcher = RecordingLauncher(svc.ws)
    drifted = make_claims(1500, 705, DRIFT)
    clean = make_claims(1500, 706)
    plan = [("d", drifted), ("d", drifted), ("d", drifted), ("c", clean), ("d", drifted), ("d", drifted)]
    streaks, started = [], []
    for i, (kind, claims) in enumerate(plan):
        start = T0 + timedelta(hours=i)
        write_capture(capture, claims, score(claims), start, f"{kind}{i}")
        outcome = svc.run(
            "loop", start=start, end=start + timedelta(hours=1), launcher=launcher, progress=False
        )
        streaks.append(outcome.run.streak)
        started.append(outcome.launched.run_id if outcome.launched else None)
    assert streaks == [1, 2, 3, 0, 1, 2]
    assert started == [None, "stand-in-0", None, None, None, "stand-in-1"]
    first = launcher.calls[0]
    assert first["pipeline"] == "retrain" and first["reason"]["streak"] == 2
    assert {v["feature_name"] for v in first["reason"]["violations"]} >= {
        "num_insurers_past_5_years",
        "policy_state",
    }
    versions = svc.ws.registry.list_versions("fraud")
    assert [v.status for v in versions] == ["PendingManualApproval", "PendingManualApproval"]
    # lineage: the violation report that fired → monitor.trigger → the pipeline run's context
    run2 = svc.runs("loop")[-2]
    assert run2.pipeline_run == "stand-in-0"
    violations = svc.ws.lineage.find_artifact(sha256=run2.outputs["constraint_violations.json"])
    downstream = svc.ws.lineage.graph(violations, "downstream")
    actions = [n for n in downstream.nodes if n.kind == "action"]
    assert {a.type for a in actions} == {"monitor.trigger"}  # identical reports share one artifact
    with svc.ws.metadata.session() as s:
        contexts = set(
            s.execute(
                sa.select(LineageContext.type, LineageContext.name)
                .join(
                    LineageEdge,
                    sa.and_(LineageEdge.dst_kind == "context", LineageEdge.dst_id == LineageContext.id),
                )
                .where(LineageEdge.src_kind == "action", LineageEdge.src_id.in_([a.id for a in actions]))
            ).all()
        )
    assert ("pipeline_run", "stand-in-0") in contexts


def test_a_failing_launcher_does_not_lose_the_run(svc, baseline_ref, make_claims, score, tmp_path) -> None:  # type: ignore[no-untyped-def]
    capture = tmp_path / "capture"
    claims = make_claims(1500, 707, DRIFT)
    write_capture(capture, claims, score(claims), T0, "f")
    svc.create(
        "flaky",
        baseline=baseline_ref,
        capture=capture,
        trigger={"pipeline": "nowhere:nothing"},
        config={"report_plots": 0},
    )

    def boom(pipeline: str, parameters: Mapping[str, Any], *, reason: Mapping[str, Any]) -> LaunchedRun:
        raise RuntimeError("cluster unreachable")

    outcome = svc.run("flaky", launcher=boom, progress=False)
    assert outcome.run.status == "CompletedWithViolations" and outcome.launched is None
    assert outcome.trigger_error == "RuntimeError: cluster unreachable"
    assert outcome.run.summary["trigger_error"] == "RuntimeError: cluster unreachable"
    failed = svc.ws.lineage.actions("monitor.trigger")
    assert failed[-1].status == "Failed"


def test_the_trigger_starts_a_real_pipeline_run(svc, baseline_ref, make_claims, score, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ws = svc.ws
    capture = tmp_path / "capture"
    claims = make_claims(1500, 708, DRIFT)
    write_capture(capture, claims, score(claims), T0, "p")
    trigger = TriggerSpec(
        pipeline="tide_monitor_retrain:retrain",
        parameters={"workspace": str(ws.root), "group": "fraud-retrained", "rows": 3000},
    )
    svc.create("pipe", baseline=baseline_ref, capture=capture, trigger=trigger, config={"report_plots": 0})
    outcome = svc.run("pipe", launcher=pipelines_launcher(ws, executor="inline"), progress=False)
    launched = outcome.launched
    assert launched is not None and launched.status == "Succeeded", outcome.trigger_error
    [version] = ws.registry.list_versions("fraud-retrained")
    assert version.status == "PendingManualApproval"
    from tideml.pipelines import PipelineService

    assert PipelineService(ws).show(launched.run_id).status == "Succeeded"
    # the trigger action and the pipeline's step actions share the run's lineage context
    with ws.metadata.session() as s:
        ctx = s.scalars(
            sa.select(LineageContext).where(
                LineageContext.type == "pipeline_run", LineageContext.name == launched.run_id
            )
        ).one()
        types = set(
            s.scalars(
                sa.select(LineageAction.type)
                .join(
                    LineageEdge,
                    sa.and_(LineageEdge.src_kind == "action", LineageEdge.src_id == LineageAction.id),
                )
                .where(LineageEdge.dst_kind == "context", LineageEdge.dst_id == ctx.id)
            )
        )
    assert "monitor.trigger" in types and len(types) >= 2


def test_monitors_and_runs_on_every_metadata_backend(
    any_workspace: Workspace, reference, make_claims, score, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    svc = MonitorService(any_workspace)
    _, ref = svc.suggest_baseline(reference.head(3000), label_column="fraud", prediction_column="probability")
    capture = tmp_path / "capture"
    claims = make_claims(800, 709, DRIFT)
    write_capture(capture, claims, score(claims), T0, "b")
    svc.create("pg", baseline=ref, capture=capture, every="1h", config={"report_plots": 0})
    slot = svc.get("pg").next_run_at
    assert slot is not None and slot.tzinfo is not None
    outcome = svc.run("pg", start=T0, end=T0 + timedelta(hours=1), progress=False)
    assert outcome.run.status == "CompletedWithViolations" and outcome.run.streak == 1
    [claimed] = svc.run_due(now=slot + timedelta(seconds=1))
    assert claimed.run.window_end == slot and svc.run_due(now=slot + timedelta(seconds=2)) == []
    assert [r.trigger_kind for r in svc.runs("pg")] == ["schedule", "manual"]


def test_an_unknown_endpoint_is_not_found(svc, baseline_ref) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound):
        svc.create("ep", baseline=baseline_ref, endpoint="no-such-endpoint")
