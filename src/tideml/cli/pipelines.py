"""`tide pipeline …`: run, list, show and resume pipelines from the shell."""

from __future__ import annotations

import json as jsonlib
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tideml.cli._app import JsonOption, WorkspaceOption, app, console, emit_json, open_workspace
from tideml.errors import ValidationError

if TYPE_CHECKING:
    from tideml.pipelines import PipelineService, RunResult, RunView

__all__ = ["pipeline_app"]

pipeline_app = typer.Typer(
    help="Pipelines: run a DAG of steps with caching, resume failed runs, browse run history.",
    no_args_is_help=True,
)

ExecutorOption = Annotated[
    str | None,
    typer.Option(
        "--executor",
        "-e",
        help="inline, local[:N], dask-local[:N] or dask://HOST:PORT (default: local).",
        show_default=False,
    ),
]
MaxParallel = Annotated[
    int | None,
    typer.Option("--max-parallel", min=1, help="At most this many steps at once.", show_default=False),
]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="Do not show the progress bar.")]


def _parse_params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValidationError(
                f"{item!r} is not KEY=VALUE",
                obj="tide pipeline run",
                field="--param",
                fix="write --param rows=1000",
            )
        try:
            value: Any = jsonlib.loads(raw)
        except ValueError:
            value = raw  # a plain string; pydantic validates it against the parameter's type
        out[key.strip()] = value
    return out


def _split(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [s.strip() for s in text.split(",") if s.strip()]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _steps_table(view: RunView) -> Table:
    table = Table("step", "kind", "status", "attempts", "duration", "cache key", "note / error")
    styles = {"Succeeded": "green", "Cached": "cyan", "Failed": "red", "Skipped": "dim", "Running": "yellow"}
    for s in view.steps:
        status = s.status
        if s.status == "Cached" and s.cached_from_run:
            status = f"Cached ({s.cached_from_run[:10]})"
        table.add_row(
            s.step,
            s.kind,
            f"[{styles.get(s.status, 'white')}]{status}[/]",
            str(s.attempts),
            _duration(s.duration_s),
            (s.cache_key or "")[:8],
            (s.error or s.note or "")[:80],
        )
    return table


def _print_run(view: RunView, *, show_error: bool = True) -> None:
    counts = view.counts()
    style = {"Succeeded": "green", "Failed": "red"}.get(view.status, "yellow")
    console.print(
        f"run [bold]{view.id}[/] of [bold]{view.pipeline}[/]: [{style}]{view.status}[/] "
        f"in {_duration(view.duration_s) or '…'} on {view.executor} — "
        f"{counts['Succeeded']} executed, {counts['Cached']} cached, {counts['Skipped']} skipped, "
        f"{counts['Failed']} failed"
    )
    if view.parameters:
        console.print("parameters: " + ", ".join(f"{k}={v!r}" for k, v in view.parameters.items()))
    console.print(_steps_table(view))
    if view.error and show_error:
        console.print(f"[red]error:[/] {view.error}")


def _finish(svc: PipelineService, result: RunResult, json: bool) -> None:
    from tideml.pipelines import PipelineFailed

    view = svc.show(result.run_id)
    if json:
        emit_json(view.to_json())
    else:
        _print_run(view, show_error=False)  # main() prints the error once
    if result.status != "Succeeded":
        raise PipelineFailed(
            result.error or "failed",
            obj=f"pipeline run {result.run_id}",
            fix=f"fix the cause, then `tide pipeline resume {result.run_id}`",
        )


@pipeline_app.command("run")
def run(
    pipeline: Annotated[str, typer.Argument(help="FILE.py:OBJECT or package.module:OBJECT.")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Parameter KEY=VALUE (JSON or text); repeatable."),
    ] = None,
    executor: ExecutorOption = None,
    steps: Annotated[
        str | None,
        typer.Option("--steps", help="Run only these steps (comma-separated).", show_default=False),
    ] = None,
    from_steps: Annotated[
        str | None,
        typer.Option("--from", help="Run these steps and everything downstream of them.", show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-execute selected steps even if cached.")] = False,
    max_parallel: MaxParallel = None,
    no_progress: NoProgress = False,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Run a pipeline; unchanged steps come from the cache."""
    with open_workspace(workspace) as ws:
        svc = ws.pipelines
        result = svc.run(
            pipeline,
            _parse_params(param or []),
            executor=executor,
            steps=_split(steps),
            from_steps=_split(from_steps),
            force=force,
            max_parallel=max_parallel,
            progress=not (no_progress or json),
        )
        _finish(svc, result, json)


@pipeline_app.command("resume")
def resume(
    run_id: Annotated[str, typer.Argument(help="The run to finish.")],
    executor: ExecutorOption = None,
    max_parallel: MaxParallel = None,
    takeover: Annotated[
        bool,
        typer.Option("--takeover", help="Resume even if the driver ran on another host that may be alive."),
    ] = False,
    no_progress: NoProgress = False,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Finish a failed or killed run: finished steps are kept, the rest run."""
    with open_workspace(workspace) as ws:
        svc = ws.pipelines
        result = svc.resume(
            run_id,
            executor=executor,
            max_parallel=max_parallel,
            takeover=takeover,
            progress=not (no_progress or json),
        )
        _finish(svc, result, json)


@pipeline_app.command("describe")
def describe(
    pipeline: Annotated[str, typer.Argument(help="FILE.py:OBJECT or package.module:OBJECT.")],
    json: JsonOption = False,
) -> None:
    """A pipeline's definition: parameters, steps, kinds, dependencies, branches, code versions."""
    from tideml.pipelines import load_pipeline

    pipe = load_pipeline(pipeline)
    definition = pipe.to_json()
    if json:
        emit_json({**definition, "definition_sha256": pipe.definition_sha256})
        return
    params = ", ".join(
        f"{name}={spec.get('default', '(required)')!r}"
        for name, spec in dict(pipe.parameters_json()).items()
        if isinstance(spec, dict)
    )
    console.print(f"pipeline [bold]{pipe.name}[/] ({len(pipe.graph)} steps) parameters: {params or 'none'}")
    table = Table("step", "kind", "depends on", "branch", "code version")
    for node in pipe.graph:
        table.add_row(
            node.name,
            node.kind,
            ", ".join(node.upstream()),
            ", ".join(f"{c} is {'true' if w else 'false'}" for c, w in node.guards),
            (node.code_version or node.service or "")[:12],
        )
    console.print(table)


@pipeline_app.command("list")
def list_(
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", help="Only runs of this pipeline.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many runs.")] = 20,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Recent pipeline runs, newest first."""
    with open_workspace(workspace) as ws:
        runs = ws.pipelines.list_runs(pipeline, limit=limit)
    if json:
        emit_json([r.to_json(steps=False) for r in runs])
        return
    table = Table(
        "run", "pipeline", "status", "started", "duration", "executed", "cached", "skipped", "failed"
    )
    for r in runs:
        c = r.counts()
        table.add_row(
            r.id,
            r.pipeline,
            r.status,
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            _duration(r.duration_s),
            str(c["Succeeded"]),
            str(c["Cached"]),
            str(c["Skipped"]),
            str(c["Failed"]),
        )
    console.print(table)


@pipeline_app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="The run to show.")],
    step: Annotated[
        str | None,
        typer.Option(
            "--step", help="Show one step: its cache key ingredients and its log.", show_default=False
        ),
    ] = None,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """A run's steps: status, cached or executed, timings; or one step in detail."""
    with open_workspace(workspace) as ws:
        svc = ws.pipelines
        view = svc.show(run_id)
        if step is None:
            if json:
                emit_json(view.to_json())
            else:
                _print_run(view)
            return
        detail = view.step(step)
        log = svc.log(run_id, step)
        if json:
            emit_json({**detail.to_json(), "cache_material": detail.cache_material, "log": log})
            return
        console.print(
            f"step [bold]{detail.step}[/] ({detail.kind}): {detail.status}, attempts {detail.attempts}"
        )
        if detail.error:
            console.print(f"[red]error:[/] {detail.error}")
        console.print(svc.explain(run_id, step), markup=False, highlight=False)
        for name, art in detail.outputs.items():
            console.print(f"output {name}: sha256:{art['sha256']} ({art['codec']}, {art['size']} bytes)")
        console.print("log:" if log else "log: (empty)")
        if log:
            console.print(log, markup=False, highlight=False, end="")


app.add_typer(pipeline_app, name="pipeline")
