"""The workspace-bound pipeline service: run, resume, history, outputs and logs of runs.

from tideml.pipelines import PipelineService
pipes = PipelineService(ws)
result = pipes.run(my_pipeline, {"rows": 1000}, executor="dask-local")
pipes.show(result.run_id).counts()
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tideml.errors import NotFound, ValidationError
from tideml.pipelines.cache import StepCache
from tideml.pipelines.codecs import OutputArtifact, decode
from tideml.pipelines.definition import Pipeline
from tideml.pipelines.hashing import explain_cache_key
from tideml.pipelines.history import RunHistory, RunView
from tideml.pipelines.runner import RunResult, resume_run, run_pipeline

if TYPE_CHECKING:
    from tideml.workspace import Workspace

__all__ = ["PipelineService", "load_pipeline"]


def load_pipeline(spec: str) -> Pipeline:
    """Import `path/to/file.py:name` or `package.module:name` and return the Pipeline it names."""
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise ValidationError(
            f"{spec!r} does not name a pipeline",
            obj="pipeline",
            fix="write FILE.py:OBJECT or package.module:OBJECT, e.g. examples/autoclaims/pipeline.py:fraud",
        )
    if where.endswith(".py") or os.sep in where or "/" in where:
        file = Path(where).expanduser().resolve()
        if not file.is_file():
            raise NotFound(f"no such file {where!r}", obj=f"pipeline {spec}", fix="check the path")
        from tideml.pipelines.worker import module_from_file

        obj = getattr(module_from_file(str(file)), attr, None)
        if obj is None:
            raise NotFound(f"{file.name} defines no {attr!r}", obj=f"pipeline {spec}", fix="check the name")
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise NotFound(
                f"cannot import {where} ({exc})", obj=f"pipeline {spec}", fix="check the module"
            ) from exc
        obj = getattr(module, attr, None)
    if not isinstance(obj, Pipeline):
        raise ValidationError(
            f"{attr} is a {type(obj).__name__}, not a pipeline",
            obj=f"pipeline {spec}",
            fix="point at a function decorated with @pipeline",
        )
    return obj


class PipelineService:
    """Pipelines of one workspace (what `tide pipeline …` calls)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.history = RunHistory(ws)
        self.cache = StepCache(ws)

    def run(self, pipe: Pipeline | str, params: Mapping[str, Any] | None = None, **options: Any) -> RunResult:
        """Run a pipeline (an object or a `file.py:name` spec); options as `run_pipeline`."""
        return run_pipeline(
            self.ws, load_pipeline(pipe) if isinstance(pipe, str) else pipe, params, **options
        )

    def resume(self, run_id: str, *, pipe: Pipeline | str | None = None, **options: Any) -> RunResult:
        """Finish a failed or killed run; options as `resume_run`."""
        loaded = load_pipeline(pipe) if isinstance(pipe, str) else pipe
        return resume_run(self.ws, run_id, pipe=loaded, **options)

    def list_runs(self, pipeline: str | None = None, *, limit: int = 50) -> list[RunView]:
        """Recent runs, newest first."""
        return self.history.list_runs(pipeline, limit=limit)

    def show(self, run_id: str) -> RunView:
        """One run with its steps."""
        return self.history.get_run(run_id)

    def output(self, run_id: str, step: str, output: str = "return") -> Any:
        """A step's output in a run, read back from the artifact store."""
        view = self.show(run_id).step(step)
        if output not in view.outputs:
            raise NotFound(
                f"step {step} has no output {output!r} in this run",
                obj=f"run {run_id}",
                fix=f"its outputs: {', '.join(view.outputs) or '(none: it did not finish)'}",
            )
        return decode(self.ws.artifacts, OutputArtifact.from_json(view.outputs[output]))

    def log(self, run_id: str, step: str) -> str:
        """The captured stdout/stderr of a step's last attempt ('' if it printed nothing)."""
        view = self.show(run_id).step(step)
        if view.log_sha256 is None:
            return ""
        return self.ws.artifacts.get(view.log_sha256).decode("utf-8", errors="replace")

    def explain(self, run_id: str, step: str) -> str:
        """What went into a step's cache key in a run."""
        view = self.show(run_id).step(step)
        if view.cache_material is None:
            return f"step {step} has no cache key in run {run_id} ({view.status})"
        return explain_cache_key(view.cache_material)
