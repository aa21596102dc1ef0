"""Entry points: start a run of a pipeline, or resume a failed or killed one (see `driver` for the loop)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tideml.errors import NotFound, ValidationError
from tideml.pipelines.definition import Pipeline
from tideml.pipelines.driver import Driver
from tideml.pipelines.executors import make_executor
from tideml.pipelines.history import RunHistory, StepRunView
from tideml.pipelines.results import RunResult, StepResult

if TYPE_CHECKING:
    from tideml.workspace import Workspace

__all__ = ["RunResult", "StepResult", "load_recorded_pipeline", "resume_run", "run_pipeline"]


def _selection(
    pipe: Pipeline, steps: list[str] | None, from_steps: list[str] | None
) -> tuple[set[str], set[str]]:
    graph = pipe.graph
    if not steps and not from_steps:
        return set(graph.nodes), set()
    selected = {graph.node(s).name for s in steps or []}
    if from_steps:
        selected |= graph.descendants(list(from_steps))
    return selected, graph.ancestors(selected) - selected


def _source(pipe: Pipeline) -> dict[str, Any]:
    t = pipe.target
    return {"module": t.module, "qualname": t.qualname, "file": t.file}


def _drive(
    ws: Workspace,
    pipe: Pipeline,
    run_id: str,
    params: dict[str, Any],
    *,
    selected: set[str],
    reference: set[str],
    executor: str | None,
    max_parallel: int | None,
    force: bool,
    prior: dict[str, StepRunView] | None,
    progress: bool,
    claim: Callable[[str], None],
) -> RunResult:
    t0 = time.perf_counter()
    backend = make_executor(executor or ws.settings.pipelines.executor, max_workers=max_parallel)
    history = RunHistory(ws)
    try:
        claim(backend.spec)
        driver = Driver(
            ws,
            pipe,
            run_id,
            params,
            selected=selected,
            reference=reference,
            executor=backend,
            max_parallel=max_parallel or backend.max_workers,
            force=force,
            prior=prior,
            progress=progress,
        )
        try:
            error = driver.run()
        except BaseException as exc:
            history.finish_run(run_id, "Failed", f"interrupted ({type(exc).__name__}: {exc})"[:2000])
            raise
        history.finish_run(run_id, "Succeeded" if error is None else "Failed", error)
    finally:
        backend.close()
    return RunResult(
        run_id=run_id,
        pipeline=pipe.name,
        status="Succeeded" if error is None else "Failed",
        steps=driver.results,
        executor=backend.spec,
        duration_s=time.perf_counter() - t0,
        error=error,
    )


def run_pipeline(
    ws: Workspace,
    pipe: Pipeline,
    params: Mapping[str, Any] | None = None,
    *,
    executor: str | None = None,
    steps: list[str] | None = None,
    from_steps: list[str] | None = None,
    force: bool = False,
    max_parallel: int | None = None,
    progress: bool = True,
) -> RunResult:
    """Run a pipeline in a workspace and record the run; returns its result (check `.status`).

    `steps` / `from_steps` select a sub-graph (the named steps / those and everything downstream);
    inputs they need from unselected steps come from the cache or the latest run that had them.
    `force` re-executes the selected steps even when cached. `executor` is `inline`, `local[:N]`,
    `dask-local[:N]` or `dask://host:port` (default `$TIDE_PIPELINES_EXECUTOR`, else `local`).
    """
    values = pipe.validate_params(params)
    selected, reference = _selection(pipe, steps, from_steps)
    definition = pipe.to_json()
    history = RunHistory(ws)
    def_id = history.save_definition(pipe.name, pipe.definition_sha256, definition)
    run_id = "run-" + uuid.uuid4().hex[:12]
    rows = [
        (
            n.name,
            n.kind,
            "Pending" if n.name in selected | reference else "Skipped",
            None if n.name in selected | reference else "not selected",
        )
        for n in pipe.graph
    ]

    def claim(spec: str) -> None:
        history.create_run(
            run_id=run_id,
            pipeline=pipe.name,
            definition_id=def_id,
            parameters=values,
            selection={"steps": sorted(selected), "reference": sorted(reference), "force": force},
            source=_source(pipe),
            executor=spec,
            steps=rows,
        )

    return _drive(
        ws,
        pipe,
        run_id,
        values,
        selected=selected,
        reference=reference,
        executor=executor,
        max_parallel=max_parallel,
        force=force,
        prior=None,
        progress=progress,
        claim=claim,
    )


def load_recorded_pipeline(source: Mapping[str, Any]) -> Pipeline:
    """The Pipeline object a run was started from, imported again from its recorded source."""
    from tideml.pipelines.worker import load_target

    try:
        obj = load_target(str(source["module"]), str(source["qualname"]), source.get("file"), unwrap=False)
    except (ImportError, AttributeError, OSError, KeyError) as exc:
        raise NotFound(
            f"cannot load the pipeline the run was started from ({exc})",
            obj=f"pipeline {source.get('module')}:{source.get('qualname')}",
            fix="pass the pipeline object (Python) or run from the folder it was started in",
        ) from exc
    if not isinstance(obj, Pipeline):
        raise ValidationError(
            f"{source.get('qualname')} is not a Pipeline",
            obj="pipeline source",
            fix="decorate it with @pipeline",
        )
    return obj


def resume_run(
    ws: Workspace,
    run_id: str,
    *,
    pipe: Pipeline | None = None,
    executor: str | None = None,
    max_parallel: int | None = None,
    takeover: bool = False,
    progress: bool = True,
) -> RunResult:
    """Finish a failed or killed run: steps it finished are kept (same key), the rest run.

    The pipeline is imported again from where the run recorded it unless `pipe` is given. If its code
    changed, steps whose cache key changed run again. Refuses a run whose driver is still alive.
    """
    history = RunHistory(ws)
    view = history.get_run(run_id)
    pipe = pipe or load_recorded_pipeline(view.source)
    if pipe.name != view.pipeline:
        raise ValidationError(
            f"run {run_id} belongs to pipeline {view.pipeline!r}, not {pipe.name!r}",
            obj=f"run {run_id}",
            fix="pass the pipeline the run was started with",
        )
    selected = set(view.selection.get("steps") or [])
    reference = set(view.selection.get("reference") or [])
    unknown = (selected | reference) - set(pipe.graph.nodes)
    if unknown:
        raise ValidationError(
            f"the pipeline no longer has steps {', '.join(sorted(unknown))}",
            obj=f"run {run_id}",
            fix="start a new run of the changed pipeline instead",
        )
    prior = {s.step: s for s in view.steps}
    return _drive(
        ws,
        pipe,
        run_id,
        dict(view.parameters),
        selected=selected,
        reference=reference,
        executor=executor or view.executor,
        max_parallel=max_parallel,
        force=bool(view.selection.get("force")),
        prior=prior,
        progress=progress,
        claim=lambda spec: history.claim_for_resume(run_id, spec, takeover=takeover),
    )
