"""The retraining trigger: start a pipeline when a violation persists for N consecutive runs.

A monitor's `TriggerSpec` names the pipeline (a `file.py:name` or `module:name` spec, or a name the
launcher understands), its parameters, how many consecutive violating runs start it (`after`) and, if
given, which checks count (`checks`, e.g. `["baseline_drift_check", "LessThanThreshold"]`). It fires once
per streak: when the streak reaches `after`, not again until a clean run resets it.

Launching goes through the small `PipelineLauncher` protocol, so the monitor does not depend on how
pipelines run. `pipelines_launcher(ws)` runs `tideml.pipelines.PipelineService(ws).run(...)` in-process
and returns its run id; the pipeline engine records its steps under the lineage context
`("pipeline_run", run_id)`, the same context the monitor associates the trigger with, so the violation
and the retraining run are linked in lineage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pydantic

from tideml.errors import NotFound
from tideml.monitor.violations import Violation

if TYPE_CHECKING:
    from tideml.workspace import Workspace

__all__ = ["LaunchedRun", "PipelineLauncher", "TriggerSpec", "counting_violations", "pipelines_launcher"]

PIPELINE_CONTEXT = "pipeline_run"


class TriggerSpec(pydantic.BaseModel):
    """Which pipeline to run, with which parameters, after how many consecutive violating runs."""

    model_config = pydantic.ConfigDict(extra="forbid")

    pipeline: str = pydantic.Field(min_length=1)
    parameters: dict[str, Any] = pydantic.Field(default_factory=dict)
    after: int = pydantic.Field(1, ge=1, description="Consecutive runs with a counting violation.")
    checks: list[str] = pydantic.Field(
        default_factory=list, description="Check types that count (empty: all)."
    )


@dataclass(frozen=True)
class LaunchedRun:
    """What a launcher started: its id, status and the lineage context its steps are recorded under."""

    run_id: str
    pipeline: str
    status: str = "Started"
    context: tuple[str, str] | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def lineage_context(self) -> tuple[str, str]:
        """The (type, name) context to associate the trigger with."""
        return self.context or (PIPELINE_CONTEXT, self.run_id)


@runtime_checkable
class PipelineLauncher(Protocol):
    """Starts a pipeline run; `reason` describes the violation that caused it."""

    def __call__(
        self, pipeline: str, parameters: Mapping[str, Any], *, reason: Mapping[str, Any]
    ) -> LaunchedRun:
        """Start `pipeline` with `parameters` and return what was started."""
        ...


def counting_violations(violations: Sequence[Violation], spec: TriggerSpec | None) -> list[Violation]:
    """The violations that count towards a trigger's streak."""
    if spec is None or not spec.checks:
        return list(violations)
    wanted = set(spec.checks)
    return [v for v in violations if v.constraint_check_type in wanted or v.monitor in wanted]


def pipelines_launcher(ws: Workspace, *, executor: str | None = None) -> PipelineLauncher:
    """A launcher that runs `tideml.pipelines` in-process (blocking until the run ends)."""
    try:
        from tideml.pipelines import PipelineService
    except ImportError as exc:  # pragma: no cover - the engine ships with tideml
        raise NotFound(
            f"the pipelines engine is not importable ({exc})",
            obj="monitor trigger",
            fix="install tideml with its pipelines, or pass launcher= to MonitorService.run",
        ) from exc

    service = PipelineService(ws)

    def launch(pipeline: str, parameters: Mapping[str, Any], *, reason: Mapping[str, Any]) -> LaunchedRun:
        options: dict[str, Any] = {"progress": False}
        if executor is not None:
            options["executor"] = executor
        result = service.run(pipeline, dict(parameters), **options)
        return LaunchedRun(
            run_id=result.run_id,
            pipeline=result.pipeline,
            status=result.status,
            context=(PIPELINE_CONTEXT, result.run_id),
            details={"executed": result.executed, "duration_s": result.duration_s, "error": result.error},
        )

    return launch
