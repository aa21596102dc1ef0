"""What a run returns: each step's result and the run's outcome, with its outputs readable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tideml.errors import NotFound
from tideml.pipelines.codecs import OutputArtifact, decode
from tideml.pipelines.control import PipelineFailed

if TYPE_CHECKING:
    from tideml.workspace import Workspace

__all__ = ["RunResult", "StepResult"]


@dataclass
class StepResult:
    """What happened to one step in this invocation of the driver."""

    name: str
    kind: str
    status: str
    outputs: dict[str, OutputArtifact] = field(default_factory=dict)
    cache_key: str | None = None
    cached_from_run: str | None = None
    reused: bool = False
    attempts: int = 0
    duration_s: float | None = None
    log_sha256: str | None = None
    error: str | None = None
    note: str | None = None

    @property
    def executed(self) -> bool:
        """True if this invocation ran the step's code (not cached, not kept from before a resume)."""
        return self.status == "Succeeded" and not self.reused


@dataclass
class RunResult:
    """The outcome of `run_pipeline` / `resume_run`."""

    run_id: str
    pipeline: str
    status: str
    steps: dict[str, StepResult]
    executor: str
    duration_s: float
    error: str | None = None

    @property
    def executed(self) -> list[str]:
        return [s.name for s in self.steps.values() if s.executed]

    @property
    def cached(self) -> list[str]:
        return [s.name for s in self.steps.values() if s.status == "Cached"]

    @property
    def skipped(self) -> list[str]:
        return [s.name for s in self.steps.values() if s.status == "Skipped"]

    def output_artifact(self, step: str, output: str = "return") -> OutputArtifact:
        result = self.steps.get(step)
        if result is None or output not in result.outputs:
            raise NotFound(
                "has no such output in this run",
                obj=f"step {step}",
                field=output,
                fix="the step may have been skipped or failed; see `tide pipeline show`",
            )
        return result.outputs[output]

    def output(self, ws: Workspace, step: str, output: str = "return") -> Any:
        """A step's output, read back from the artifact store."""
        return decode(ws.artifacts, self.output_artifact(step, output))

    def raise_for_status(self) -> None:
        """Raise PipelineFailed if the run did not succeed."""
        if self.status != "Succeeded":
            raise PipelineFailed(
                self.error or "failed",
                obj=f"pipeline run {self.run_id}",
                fix=f"see `tide pipeline show {self.run_id}`, fix the cause, then `tide pipeline resume`",
            )
