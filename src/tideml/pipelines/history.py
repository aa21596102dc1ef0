"""Run history in the metadata DB: definitions, runs, step runs; read back as frozen views."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psutil
import sqlalchemy as sa

from tideml.errors import Conflict, NotFound
from tideml.lineage import current_user
from tideml.meta.models import utcnow
from tideml.meta.pipelines_tables import PipelineDefinitionRow, PipelineRunRow, PipelineStepRunRow
from tideml.pipelines.hashing import JSONValue

if TYPE_CHECKING:
    from tideml.workspace import Workspace

__all__ = ["RunHistory", "RunView", "StepRunView", "driver_identity"]

STEP_STATUSES = ("Pending", "Running", "Succeeded", "Cached", "Failed", "Skipped")
RUN_STATUSES = ("Running", "Succeeded", "Failed")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True)
class StepRunView:
    """One step of one run as recorded."""

    step: str
    kind: str
    position: int
    status: str
    cache_key: str | None
    cache_material: dict[str, Any] | None
    attempts: int
    outputs: dict[str, Any]
    log_sha256: str | None
    cached_from_run: str | None
    lineage_action_id: int | None
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    worker: str | None
    error: str | None
    note: str | None

    @property
    def executed(self) -> bool:
        """Whether this run executed the step (as opposed to reusing a cached result)."""
        return self.status == "Succeeded"

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "step": self.step,
            "kind": self.kind,
            "status": self.status,
            "cache_key": self.cache_key,
            "attempts": self.attempts,
            "outputs": self.outputs,
            "log_sha256": self.log_sha256,
            "cached_from_run": self.cached_from_run,
            "lineage_action_id": self.lineage_action_id,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "duration_s": self.duration_s,
            "worker": self.worker,
            "error": self.error,
            "note": self.note,
        }


@dataclass(frozen=True)
class RunView:
    """One pipeline run as recorded, with its steps in definition order."""

    id: str
    pipeline: str
    status: str
    parameters: dict[str, Any]
    selection: dict[str, Any]
    source: dict[str, Any]
    executor: str
    who: str
    driver: str
    resumes: int
    started_at: datetime
    ended_at: datetime | None
    error: str | None
    definition_sha256: str
    definition: dict[str, Any]
    steps: list[StepRunView] = field(default_factory=list)

    def step(self, name: str) -> StepRunView:
        for s in self.steps:
            if s.step == name:
                return s
        raise NotFound(
            "no such step in the run", obj=f"run {self.id}", field=name, fix="see `tide pipeline show`"
        )

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STEP_STATUSES, 0)
        for s in self.steps:
            out[s.status] = out.get(s.status, 0) + 1
        return out

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else (self.ended_at - self.started_at).total_seconds()

    def to_json(self, *, steps: bool = True) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {
            "id": self.id,
            "pipeline": self.pipeline,
            "status": self.status,
            "parameters": self.parameters,
            "selection": self.selection,
            "executor": self.executor,
            "who": self.who,
            "driver": self.driver,
            "resumes": self.resumes,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "duration_s": self.duration_s,
            "error": self.error,
            "definition_sha256": self.definition_sha256,
            "counts": dict(self.counts()),
        }
        if steps:
            out["steps"] = [s.to_json() for s in self.steps]
        return out


def driver_identity() -> tuple[str, int, float]:
    """(host, pid, process start time) of this process: enough to tell if a run's driver still lives."""
    pid = os.getpid()
    return socket.gethostname(), pid, psutil.Process(pid).create_time()


def _driver_alive(host: str, pid: int, started: float) -> bool | None:
    """True / False when it can be told from here; None for a driver on another host."""
    if host != socket.gethostname():
        return None
    try:
        return abs(psutil.Process(pid).create_time() - started) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _step_view(r: PipelineStepRunRow) -> StepRunView:
    return StepRunView(
        step=r.step,
        kind=r.kind,
        position=r.position,
        status=r.status,
        cache_key=r.cache_key,
        cache_material=r.cache_material,
        attempts=r.attempts,
        outputs=dict(r.outputs or {}),
        log_sha256=r.log_sha256,
        cached_from_run=r.cached_from_run,
        lineage_action_id=r.lineage_action_id,
        started_at=r.started_at,
        ended_at=r.ended_at,
        duration_s=r.duration_s,
        worker=r.worker,
        error=r.error,
        note=r.note,
    )


class RunHistory:
    """Reads and writes the pipeline tables of one workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def save_definition(self, name: str, sha256: str, definition: dict[str, Any]) -> int:
        """The id of this definition, stored once per (name, content hash)."""
        query = sa.select(PipelineDefinitionRow.id).where(
            PipelineDefinitionRow.name == name, PipelineDefinitionRow.definition_sha256 == sha256
        )
        with self.ws.metadata.session() as s:
            found = s.scalars(query).first()
            if found is not None:
                return found
        try:
            with self.ws.metadata.session() as s:
                row = PipelineDefinitionRow(name=name, definition_sha256=sha256, definition=definition)
                s.add(row)
                s.flush()
                return row.id
        except Conflict:  # stored concurrently by another run
            with self.ws.metadata.session() as s:
                again = s.scalars(query).first()
                assert again is not None
                return again

    def create_run(
        self,
        *,
        run_id: str,
        pipeline: str,
        definition_id: int,
        parameters: dict[str, Any],
        selection: dict[str, Any],
        source: dict[str, Any],
        executor: str,
        steps: list[tuple[str, str, str, str | None]],
    ) -> None:
        """Insert a Running run and one row per step: (name, kind, status, note)."""
        host, pid, started = driver_identity()
        with self.ws.metadata.session() as s:
            s.add(
                PipelineRunRow(
                    id=run_id,
                    pipeline=pipeline,
                    definition_id=definition_id,
                    status="Running",
                    parameters=parameters,
                    selection=selection,
                    source=source,
                    executor=executor,
                    who=current_user(),
                    driver_host=host,
                    driver_pid=pid,
                    driver_started=started,
                )
            )
            s.flush()
            for position, (name, kind, status, note) in enumerate(steps):
                s.add(
                    PipelineStepRunRow(
                        run_id=run_id, step=name, kind=kind, position=position, status=status, note=note
                    )
                )

    def claim_for_resume(self, run_id: str, executor: str, *, takeover: bool = False) -> None:
        """Make this process the driver of a failed or abandoned run (refuses a live one)."""
        with self.ws.metadata.session() as s:
            row = s.get(PipelineRunRow, run_id)
            if row is None:
                raise NotFound("no such run", obj=f"run {run_id}", fix="list runs with `tide pipeline list`")
            if row.status == "Succeeded":
                raise Conflict(
                    "succeeded already; nothing to resume",
                    obj=f"run {run_id}",
                    fix="start a new run (unchanged steps come from the cache)",
                )
            if row.status == "Running":
                alive = _driver_alive(row.driver_host, row.driver_pid, row.driver_started)
                if alive or (alive is None and not takeover):
                    where = f"{row.driver_host} pid {row.driver_pid}"
                    raise Conflict(
                        f"is still running (driver {where})" if alive else f"may still run on {where}",
                        obj=f"run {run_id}",
                        fix="wait for it to end"
                        if alive
                        else "if that driver is gone, resume with --takeover",
                    )
            host, pid, started = driver_identity()
            row.status = "Running"
            row.executor = executor
            row.driver_host, row.driver_pid, row.driver_started = host, pid, started
            row.resumes += 1
            row.ended_at = None
            row.error = None

    def update_step(self, run_id: str, step: str, **values: Any) -> None:
        """Set columns of one step row."""
        with self.ws.metadata.session() as s:
            row = s.scalars(
                sa.select(PipelineStepRunRow).where(
                    PipelineStepRunRow.run_id == run_id, PipelineStepRunRow.step == step
                )
            ).one()
            for key, value in values.items():
                setattr(row, key, value)

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        with self.ws.metadata.session() as s:
            row = s.get(PipelineRunRow, run_id)
            assert row is not None
            row.status = status
            row.error = error
            row.ended_at = utcnow()

    def get_run(self, run_id: str) -> RunView:
        """A run with its steps; NotFound names the fix."""
        with self.ws.metadata.session() as s:
            row = s.get(PipelineRunRow, run_id)
            if row is None:
                raise NotFound("no such run", obj=f"run {run_id}", fix="list runs with `tide pipeline list`")
            steps = s.scalars(
                sa.select(PipelineStepRunRow)
                .where(PipelineStepRunRow.run_id == run_id)
                .order_by(PipelineStepRunRow.position)
            ).all()
            definition = s.get(PipelineDefinitionRow, row.definition_id)
            assert definition is not None
            return self._view(row, definition, [_step_view(r) for r in steps])

    def list_runs(self, pipeline: str | None = None, *, limit: int = 50) -> list[RunView]:
        """Most recent runs first, with their steps."""
        query = sa.select(PipelineRunRow).order_by(PipelineRunRow.started_at.desc(), PipelineRunRow.id)
        if pipeline:
            query = query.where(PipelineRunRow.pipeline == pipeline)
        with self.ws.metadata.session() as s:
            rows = s.scalars(query.limit(limit)).all()
            ids = [r.id for r in rows]
            steps: dict[str, list[StepRunView]] = {i: [] for i in ids}
            if ids:
                for r in s.scalars(
                    sa.select(PipelineStepRunRow)
                    .where(PipelineStepRunRow.run_id.in_(ids))
                    .order_by(PipelineStepRunRow.position)
                ):
                    steps[r.run_id].append(_step_view(r))
            defs = {
                d.id: d
                for d in s.scalars(
                    sa.select(PipelineDefinitionRow).where(
                        PipelineDefinitionRow.id.in_({r.definition_id for r in rows})
                    )
                )
            }
            return [self._view(r, defs[r.definition_id], steps[r.id]) for r in rows]

    def latest_with_key(self, cache_key: str) -> tuple[str, dict[str, Any]] | None:
        """(run id, outputs) of the latest successful execution of a step with this cache key."""
        with self.ws.metadata.session() as s:
            found = s.execute(
                sa.select(PipelineStepRunRow.run_id, PipelineStepRunRow.outputs)
                .where(
                    PipelineStepRunRow.cache_key == cache_key,
                    PipelineStepRunRow.status.in_(("Succeeded", "Cached")),
                )
                .order_by(PipelineStepRunRow.ended_at.desc(), PipelineStepRunRow.id.desc())
            ).first()
        return None if found is None else (found[0], dict(found[1]))

    @staticmethod
    def _view(row: PipelineRunRow, definition: PipelineDefinitionRow, steps: list[StepRunView]) -> RunView:
        return RunView(
            id=row.id,
            pipeline=row.pipeline,
            status=row.status,
            parameters=dict(row.parameters),
            selection=dict(row.selection),
            source=dict(row.source),
            executor=row.executor,
            who=row.who,
            driver=f"{row.driver_host}:{row.driver_pid}",
            resumes=row.resumes,
            started_at=row.started_at,
            ended_at=row.ended_at,
            error=row.error,
            definition_sha256=definition.definition_sha256,
            definition=dict(definition.definition),
            steps=steps,
        )
