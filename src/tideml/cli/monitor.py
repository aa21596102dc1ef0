"""`tide monitor …`: baselines, monitors, on-demand and scheduled runs, from the shell."""

from __future__ import annotations

import json as jsonlib
import signal
import threading
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tideml.cli._app import JsonOption, WorkspaceOption, app, console, console_err, emit_json, open_workspace
from tideml.errors import ValidationError

if TYPE_CHECKING:  # the monitoring stack (polars, the workspace) loads only when a command runs
    from tideml.monitor import BiasDriftConfig, MonitorResult, MonitorRunOutcome, MonitorRunView

__all__ = ["monitor_app"]

monitor_app = typer.Typer(
    help="Model monitoring: baselines, data-quality/drift/model-quality checks, schedules, retraining.",
    no_args_is_help=True,
)

NoProgress = Annotated[bool, typer.Option("--no-progress", help="Do not show progress bars.")]


def _parse_kv(items: list[str], option: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValidationError(
                f"{item!r} is not KEY=VALUE",
                obj="tide monitor",
                field=option,
                fix=f"write {option} rows=1000",
            )
        try:
            value: Any = jsonlib.loads(raw)
        except ValueError:
            value = raw
        out[key.strip()] = value
    return out


def _bias(facets: list[str]) -> BiasDriftConfig | None:
    from tideml.monitor import BiasDriftConfig, BiasFacet

    if not facets:
        return None
    out: list[BiasFacet] = []
    for item in facets:
        name, sep, values = item.partition("=")
        if not name:
            raise ValidationError(
                f"{item!r} is not COLUMN=VALUE[,VALUE]",
                obj="tide monitor baseline",
                field="--bias-facet",
                fix="write --bias-facet customer_gender=Female",
            )
        out.append(
            BiasFacet(name=name, value_or_threshold=[v for v in values.split(",") if v] if sep else None)
        )
    return BiasDriftConfig(facets=out)


def _when(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"{text!r} is not an ISO 8601 time",
            obj="tide monitor run",
            field=option,
            fix="write e.g. 2026-01-31T12:00:00Z",
        ) from None
    if value.tzinfo is None:
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value


def _print_result(result: MonitorResult, title: str) -> None:
    status = (
        f"[bold red]{len(result.violations)} violation(s)[/]"
        if result.violations
        else "[bold green]no violation[/]"
    )
    console.print(f"{title}: {status} in {result.rows:,} rows")
    if result.violations:
        table = Table("check", "subject", "description")
        for v in result.violations:
            table.add_row(v.constraint_check_type, v.subject, v.description)
        console.print(table)
    if result.model_quality is not None and result.model_quality.statistics is not None:
        mq = result.model_quality
        console.print(
            "model quality: "
            + ", ".join(
                f"{k} {mq.metric(k):.4f}"
                for k in ("auc", "f1", "precision", "recall")
                if mq.metric(k) is not None
            )
        )
    for note in result.notes:
        console.print(f"[dim]note: {note}[/]")


@monitor_app.command("baseline")
def baseline_cmd(
    data: Annotated[
        Path, typer.Argument(help="Training data: Parquet, CSV or JSON lines (file, folder or glob).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for statistics.json, constraints.json, …")],
    label_column: Annotated[
        str | None, typer.Option("--label-column", help="Ground-truth column (model quality).")
    ] = None,
    prediction_column: Annotated[
        str | None, typer.Option("--prediction-column", help="Model score column (prediction drift).")
    ] = None,
    threshold: Annotated[float, typer.Option("--threshold", help="Decision threshold of the model.")] = 0.5,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Column to leave out; repeatable.")
    ] = None,
    bias_facet: Annotated[
        list[str] | None, typer.Option("--bias-facet", help="COLUMN=VALUE[,VALUE] of group d; repeatable.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="XGBoost model file, sha256 or GROUP/VERSION (attribution baseline)."
        ),
    ] = None,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Profile training data and write a baseline (statistics, suggested constraints) to a folder."""
    with open_workspace(workspace) as ws:
        baseline, ref = ws.monitor.suggest_baseline(
            str(data),
            out_dir=out,
            label_column=label_column,
            prediction_column=prediction_column,
            threshold=threshold,
            exclude=list(exclude or []),
            bias=_bias(list(bias_facet or [])),
            model=model,
        )
    if json:
        emit_json(
            {
                "folder": str(out),
                "files": ref.files,
                "rows": baseline.settings.rows,
                "features": baseline.constraints.names,
            }
        )
        return
    console.print(
        f"baseline of {baseline.settings.rows:,} rows, {len(baseline.constraints.features)} features → {out}"
    )
    for name in sorted(ref.files):
        console.print(f"  {name}  [dim]sha256:{ref.files[name][:12]}…[/]")


@monitor_app.command("create")
def create_cmd(
    name: str,
    baseline: Annotated[
        Path, typer.Option("--baseline", "-b", help="Baseline folder (validated and stored).")
    ],
    capture: Annotated[str | None, typer.Option("--capture", help="Capture folder, file or glob.")] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", "-e", help="Endpoint whose capture folder to watch.")
    ] = None,
    labels: Annotated[
        str | None, typer.Option("--labels", help="Ground-truth labels: folder, file or glob.")
    ] = None,
    every: Annotated[str | None, typer.Option("--every", help="Run interval, e.g. 15m, 1h, 1d.")] = None,
    cron: Annotated[
        str | None, typer.Option("--cron", help="Cron expression (UTC), e.g. '0 * * * *'.")
    ] = None,
    window: Annotated[
        str | None, typer.Option("--window", help="How far back each run looks (default: the interval).")
    ] = None,
    label_delay: Annotated[
        str | None, typer.Option("--label-delay", help="Model quality on captures this much older.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Model for attribution drift (file, sha256, GROUP/VERSION)."),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Decision threshold (default: the baseline's).")
    ] = None,
    trigger_pipeline: Annotated[
        str | None,
        typer.Option("--trigger-pipeline", help="Pipeline to run when violations persist (FILE.py:NAME)."),
    ] = None,
    trigger_param: Annotated[
        list[str] | None, typer.Option("--trigger-param", help="Pipeline parameter KEY=VALUE; repeatable.")
    ] = None,
    trigger_after: Annotated[
        int, typer.Option("--trigger-after", min=1, help="Consecutive violating runs before it starts.")
    ] = 1,
    trigger_check: Annotated[
        list[str] | None,
        typer.Option("--trigger-check", help="Check type that counts (default: any); repeatable."),
    ] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Redefine an existing monitor.")] = False,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it paused.")] = False,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Create a monitor on an endpoint's capture (or any capture folder), on a schedule or on demand."""
    from tideml.monitor import MonitorConfig, TriggerSpec, parse_duration

    config: dict[str, Any] = {}
    if threshold is not None:
        config["threshold"] = threshold
    if label_delay is not None:
        config["label_delay_seconds"] = parse_duration(label_delay, field="label_delay").total_seconds()
    trigger = None
    if trigger_pipeline is not None:
        trigger = TriggerSpec(
            pipeline=trigger_pipeline,
            parameters=_parse_kv(list(trigger_param or []), "--trigger-param"),
            after=trigger_after,
            checks=list(trigger_check or []),
        )
    with open_workspace(workspace) as ws:
        view = ws.monitor.create(
            name,
            baseline=baseline,
            capture=capture,
            endpoint=endpoint,
            labels=labels,
            every=every,
            cron=cron,
            window=window,
            config=MonitorConfig.model_validate(config),
            trigger=trigger,
            model=model,
            enabled=not disabled,
            replace=replace,
        )
    if json:
        emit_json(view.to_json())
        return
    nxt = f", next run {view.next_run_at:%Y-%m-%d %H:%M:%S} UTC" if view.next_run_at else ""
    console.print(f"monitor [bold]{view.name}[/] on {view.capture} ({view.schedule.describe()}{nxt})")


def _run_line(outcome: MonitorRunOutcome) -> str:
    r = outcome.run
    text = f"run {r.id} of {r.monitor}: {r.status}, {r.violations} violation(s), {r.rows:,} rows"
    if outcome.launched is not None:
        text += f"; started pipeline run {outcome.launched.run_id} ({outcome.launched.status})"
    if outcome.trigger_error:
        text += f"; trigger failed: {outcome.trigger_error}"
    return text


@monitor_app.command("run")
def run_cmd(
    name: str,
    data: Annotated[
        str | None, typer.Option("--data", help="Check this file/folder/glob instead of the capture.")
    ] = None,
    labels: Annotated[
        str | None, typer.Option("--labels", help="Labels instead of the configured ones.")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="Window start (ISO 8601, UTC).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Window end (ISO 8601, UTC).")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the outputs into this folder.")
    ] = None,
    fail_on_violation: Annotated[
        bool, typer.Option("--fail-on-violation", help="Exit 1 when a check fails.")
    ] = False,
    no_progress: NoProgress = False,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Run a monitor now (the managed service could not); results are stored with lineage."""
    with open_workspace(workspace) as ws:
        svc = ws.monitor
        outcome = svc.run(
            name,
            window=data,
            labels=labels,
            start=_when(since, "--since"),
            end=_when(until, "--until"),
            progress=not no_progress and not json,
        )
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            for fname, content in outcome.files.items():
                (out / fname).write_bytes(content)
    if json:
        emit_json(
            {
                "run": outcome.run.to_json(),
                "violations": outcome.result.violations_json()["violations"] if outcome.result else [],
            }
        )
    else:
        if outcome.result is not None:
            _print_result(outcome.result, f"monitor {name}")
        console.print(_run_line(outcome))
    if fail_on_violation and outcome.run.violations:
        raise typer.Exit(1)


@monitor_app.command("check")
def check_cmd(
    data: Annotated[str, typer.Argument(help="Window: Parquet/CSV/JSON-lines file, capture folder or glob.")],
    baseline: Annotated[Path, typer.Option("--baseline", "-b", help="Baseline folder.")],
    labels: Annotated[
        str | None, typer.Option("--labels", help="Ground-truth labels (file, folder, glob).")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model for attribution drift.")] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write constraint_violations.json, report.html, … here."),
    ] = None,
    fail_on_violation: Annotated[
        bool, typer.Option("--fail-on-violation", help="Exit 1 when a check fails.")
    ] = False,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Check any data against a baseline folder, without a stored monitor."""
    from tideml.monitor import write_run_outputs
    from tideml.monitor.baseline import load_baseline

    base = load_baseline(baseline)
    with open_workspace(workspace) as ws:
        result = ws.monitor.check(base, data, labels=labels, model=model)
    if out is not None:
        write_run_outputs(out, result, base.statistics, title=f"tide monitor check {data}")
    if json:
        emit_json({"summary": result.summary(), "violations": result.violations_json()["violations"]})
    else:
        _print_result(result, f"check of {data}")
        if out is not None:
            console.print(f"outputs written to {out}")
    if fail_on_violation and result.violations:
        raise typer.Exit(1)


@monitor_app.command("list")
def list_cmd(workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """List monitors with their schedule and last run."""
    with open_workspace(workspace) as ws:
        svc = ws.monitor
        monitors = svc.list()
        last: dict[str, MonitorRunView | None] = {}
        for m in monitors:
            recent = svc.runs(m.name, limit=1)
            last[m.name] = recent[0] if recent else None
    if json:
        emit_json([m.to_json() | {"last_run": _maybe(last[m.name])} for m in monitors])
        return
    table = Table("monitor", "source", "schedule", "enabled", "next run (UTC)", "last run")
    for m in monitors:
        r = last[m.name]
        table.add_row(
            m.name,
            m.endpoint or m.capture,
            m.schedule.describe(),
            "yes" if m.enabled else "no",
            f"{m.next_run_at:%Y-%m-%d %H:%M}" if m.next_run_at else "-",
            f"{_SHORT.get(r.status, r.status)} ({r.violations})" if r else "-",
        )
    console.print(table)


def _maybe(run: MonitorRunView | None) -> dict[str, Any] | None:
    return run.to_json() if run is not None else None


_SHORT = {
    "Completed": "ok",
    "CompletedWithViolations": "violations",
    "Failed": "failed",
    "InProgress": "running",
}


def _runs_table(runs: list[MonitorRunView]) -> Table:
    table = Table("run", "outcome", "started (UTC)", "rows", "viol.", "streak", "pipeline run")
    for r in runs:
        table.add_row(
            str(r.id),
            _SHORT.get(r.status, r.status),
            f"{r.started_at:%m-%d %H:%M}",
            f"{r.rows:,}",
            str(r.violations),
            str(r.streak),
            r.pipeline_run or "-",
        )
    return table


@monitor_app.command("show")
def show_cmd(
    name: str,
    runs: Annotated[int, typer.Option("--runs", "-n", min=0, help="How many recent runs to show.")] = 10,
    violations: Annotated[
        bool, typer.Option("--violations", help="Print the last run's constraint_violations.json.")
    ] = False,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Show a monitor, its recent runs and (optionally) the last run's violations."""
    with open_workspace(workspace) as ws:
        svc = ws.monitor
        view = svc.get(name)
        recent = svc.runs(name, limit=runs) if runs else []
        last_violations = (
            jsonlib.loads(svc.read_output(recent[0])) if violations and recent and recent[0].outputs else None
        )
    if json:
        emit_json(
            {"monitor": view.to_json(), "runs": [r.to_json() for r in recent], "violations": last_violations}
        )
        return
    console.print(
        f"[bold]{view.name}[/] · {view.schedule.describe()} · {'enabled' if view.enabled else 'paused'}"
    )
    console.print(f"capture: {view.capture}" + (f" · labels: {view.labels}" if view.labels else ""))
    if view.trigger:
        console.print(f"trigger: {view.trigger.pipeline} after {view.trigger.after} violating run(s)")
    if recent:
        console.print(_runs_table(recent))
    if last_violations is not None:
        console.print_json(data=last_violations)


@monitor_app.command("delete")
def delete_cmd(name: str, workspace: WorkspaceOption = None) -> None:
    """Delete a monitor and its run history (stored outputs and lineage stay)."""
    with open_workspace(workspace) as ws:
        ws.monitor.delete(name)
    console.print(f"deleted monitor {name}")


@monitor_app.command("serve")
def serve_cmd(
    poll: Annotated[
        float, typer.Option("--poll", min=0.1, help="Check for due monitors at least this often (s).")
    ] = 30.0,
    once: Annotated[
        bool, typer.Option("--once", help="Run what is due now and exit (for cron or CI).")
    ] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """The scheduler: runs due monitors until stopped (Ctrl-C or SIGTERM finish the current run first)."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with open_workspace(workspace) as ws:
            svc = ws.monitor
            if not once:
                console.print(f"monitor scheduler on {ws.root} ({len(svc.list())} monitor(s)); Ctrl-C stops")
            n = svc.serve(
                poll_seconds=poll,
                stop=stop,
                max_iterations=1 if once else None,
                on_run=lambda o: console.print(_run_line(o)),
                on_error=lambda name, exc: console_err.print(f"monitor {name}: run failed: {exc}"),
            )
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    console.print(f"{n} run(s)")


app.add_typer(monitor_app, name="monitor")
