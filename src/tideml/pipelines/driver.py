"""The driver loop: walks the graph, reuses cached results, submits the rest, retries, records everything.

For each step whose upstream steps have finished, in definition order:

1. skip it if its condition's branch was not taken or an upstream step was skipped;
2. resolve its arguments (parameters substituted, inputs replaced by stored artifacts) and compute its
   cache key from code version, parameters and the inputs' content hashes;
3. on a resume, keep its earlier result if it finished with the same key; otherwise
4. take it from the cache if a fresh entry exists; otherwise
5. submit it to the executor (condition and fail steps run in the driver), at most `max_parallel` at
   once, retrying failures as its policy says with exponential backoff.

Every step's status, key, outputs, log, timings and attempts go to the run history as they happen,
so a killed driver leaves a run that `resume_run` can finish.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tideml._progress import progress_bar
from tideml.artifacts import ArtifactRef
from tideml.errors import NotFound, TideError, ValidationError
from tideml.lineage import ActionRecorder, ArtifactSpec
from tideml.meta.models import utcnow
from tideml.pipelines.cache import StepCache
from tideml.pipelines.codecs import OutputArtifact, read_json
from tideml.pipelines.control import PipelineFailed
from tideml.pipelines.definition import Pipeline
from tideml.pipelines.executors import Executor
from tideml.pipelines.graph import OutputRef, StepNode, replace_refs
from tideml.pipelines.hashing import cache_key, cache_key_material, file_sha256
from tideml.pipelines.history import RunHistory, StepRunView
from tideml.pipelines.params import resolve_params
from tideml.pipelines.results import StepResult
from tideml.pipelines.services import service_code_version
from tideml.pipelines.worker import InputLeaf, Task, TaskResult, run_task

if TYPE_CHECKING:
    from tideml.workspace import Workspace

__all__ = ["Driver"]

_LINEAGE_TYPES = {"json": "Report", "polars": "Dataset", "pandas": "Dataset", "arrow": "Dataset"}


@dataclass
class _Inflight:
    node: StepNode
    task: Task
    action: contextlib.AbstractContextManager[ActionRecorder]
    recorder: ActionRecorder
    inputs: dict[str, str]


class Driver:
    """One driver invocation over one run (a fresh run or a resumed one)."""

    def __init__(
        self,
        ws: Workspace,
        pipe: Pipeline,
        run_id: str,
        params: dict[str, Any],
        *,
        selected: set[str],
        reference: set[str],
        executor: Executor,
        max_parallel: int,
        force: bool,
        prior: dict[str, StepRunView] | None,
        progress: bool,
    ) -> None:
        self.ws = ws
        self.pipe = pipe
        self.graph = pipe.graph
        self.run_id = run_id
        self.params = params
        self.selected = selected
        self.reference = reference
        self.executor = executor
        self.max_parallel = max(1, max_parallel)
        self.force = force
        self.prior = prior or {}
        self.show_progress = progress
        self.history = RunHistory(ws)
        self.cache = StepCache(ws)
        self.results: dict[str, StepResult] = {}
        self.state: dict[str, str] = {}  # pending | waiting | running | done | skipped | failed | blocked
        self.retry_at: dict[str, float] = {}
        self.failures: dict[str, int] = {}
        self.passed: dict[str, bool] = {}
        self.inflight: dict[Any, _Inflight] = {}
        self.run_error: str | None = None
        for node in self.graph:
            if node.name in selected or node.name in reference:
                self.state[node.name] = "pending"
                earlier = self.prior.get(node.name)
                self.results[node.name] = StepResult(
                    node.name, node.kind, "Pending", attempts=earlier.attempts if earlier else 0
                )

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> str | None:
        """Drive the run to its end; returns the run's error (None if it succeeded)."""
        total = sum(1 for s in self.state.values() if s == "pending")
        with progress_bar(f"Pipeline {self.pipe.name}", total=total, enabled=self.show_progress) as bar:
            self._bar = bar
            try:
                while True:
                    self._schedule()
                    if not self.inflight:
                        waiting = [t for n, t in self.retry_at.items() if self.state[n] == "waiting"]
                        if waiting and self.run_error is None:
                            time.sleep(max(0.0, min(waiting) - time.monotonic()))
                            continue
                        break
                    timeout = None
                    waiting = [t for n, t in self.retry_at.items() if self.state[n] == "waiting"]
                    if waiting:
                        timeout = max(0.0, min(waiting) - time.monotonic())
                    for handle in self.executor.wait(list(self.inflight), timeout):
                        flight = self.inflight.pop(handle)
                        self._finish(flight, self.executor.result(handle, flight.task))
            except BaseException as exc:
                self._abort(f"interrupted ({type(exc).__name__})")
                raise
        if self.run_error is None:
            blocked = [n for n, s in self.state.items() if s not in ("done", "skipped")]
            if blocked:
                self.run_error = f"steps did not run: {', '.join(blocked)}"
        return self.run_error

    def _abort(self, reason: str) -> None:
        for flight in self.inflight.values():
            err = PipelineFailed(reason, obj=f"step {flight.node.name}")
            with contextlib.suppress(Exception):
                flight.action.__exit__(PipelineFailed, err, None)
            with contextlib.suppress(Exception):
                self.history.update_step(
                    self.run_id, flight.node.name, status="Failed", error=reason, ended_at=utcnow()
                )
        self.inflight.clear()
        self.run_error = reason

    def _schedule(self) -> None:
        for node in self.graph:
            name = node.name
            if self.run_error is not None:
                return
            state = self.state.get(name)
            if state == "waiting" and time.monotonic() >= self.retry_at[name]:
                if len(self.inflight) < self.max_parallel or node.in_driver:
                    self._submit(node, retry=True)
                continue
            if state != "pending":
                continue
            ups = [self.state.get(u, "external") for u in node.upstream()]
            if any(u in ("failed", "blocked") for u in ups):
                self.state[name] = "blocked"
                continue
            if any(u in ("pending", "waiting", "running") for u in ups):
                continue
            if len(self.inflight) >= self.max_parallel and not node.in_driver:
                continue
            try:
                self._start(node)
            except TideError as exc:  # raised by the driver for this step: name it once
                self._fail(node, exc.message + (f" (fix: {exc.fix})" if exc.fix else ""))

    # -- one step ------------------------------------------------------------------------------------
    def _outputs_of(self, step: str) -> dict[str, OutputArtifact]:
        return self.results[step].outputs

    def _skip_reason(self, node: StepNode) -> str | None:
        for up in node.upstream():
            if self.state.get(up) == "skipped":
                return f"upstream step {up} was skipped"
        for cond, when in node.guards:
            if self.passed.get(cond) is not when:
                return f"branch {'if_true' if when else 'if_false'} of {cond} not taken"
        return None

    def _resolve(self, node: StepNode) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
        """(task arguments with InputLeafs, key parameters with $input markers, input hashes)."""
        values = resolve_params(node.arguments, self.params, templates=node.templates)
        inputs: dict[str, str] = {}

        def leaf(where: str, ref: OutputRef) -> InputLeaf:
            outs = self._outputs_of(ref.step)
            if ref.output not in outs:
                raise ValidationError(
                    f"step {ref.step} produced no output {ref.output!r}",
                    obj=f"step {node.name}",
                    field=where,
                    fix=f"its outputs are {', '.join(outs) or '(none)'}",
                )
            art = outs[ref.output]
            tag = art.sha256 + "".join(f"[{k}]" for k in ref.select)
            inputs[where] = tag if ref.read_as == "value" else f"{tag}@{ref.read_as}"
            return InputLeaf(art.to_json(), ref.select, ref.read_as)

        task_args = replace_refs(values, leaf)
        key_params = replace_refs(values, lambda where, _ref: {"$input": where})
        return task_args, key_params, inputs

    def _key(
        self, node: StepNode, key_params: dict[str, Any], inputs: dict[str, str]
    ) -> tuple[str, dict[str, Any]]:
        if node.service is not None:
            version = node.code_version or service_code_version(self.ws, node.service.split("|")[0])
            if node.version is not None:
                version = cache_key({"service": node.service, "version": node.version})
        else:
            version = node.code_version or ""
        files: dict[str, str] = {}
        for name in node.files:
            path = key_params.get(name)
            if not isinstance(path, str):
                raise ValidationError(
                    "a file parameter needs a path",
                    obj=f"step {node.name}",
                    field=name,
                    fix="pass a path string",
                )
            try:
                files[name] = file_sha256(path)
            except OSError as exc:
                raise NotFound(f"cannot read {path!r} ({exc})", obj=f"step {node.name}", field=name) from exc
        material = cache_key_material(
            kind=node.kind,
            code_version=version,
            parameters=key_params,
            inputs=inputs,
            files=files,
            outputs=node.outputs,
        )
        if node.service is not None:
            material["service"] = node.service
        return cache_key(material), material

    def _start(self, node: StepNode) -> None:
        name = node.name
        reason = self._skip_reason(node)
        if reason is not None:
            self._mark(node, "Skipped", note=reason)
            return
        task_args, key_params, inputs = self._resolve(node)
        key, material = self._key(node, key_params, inputs)
        result = self.results[name]
        result.cache_key = key
        # (3) a resumed run keeps what it finished with the same key
        prior = self.prior.get(name)
        if prior is not None and prior.status in ("Succeeded", "Cached") and prior.cache_key == key:
            outputs = {k: OutputArtifact.from_json(v) for k, v in prior.outputs.items()}
            if all(self.ws.artifacts.exists(a.sha256) for a in outputs.values()):
                result.reused = True
                result.cached_from_run = prior.cached_from_run
                self._mark(node, prior.status, outputs=outputs, record=False, note=prior.note)
                return
        # steps needed only as inputs to a selection: a result for exactly this key, never a stale one
        if name in self.reference:
            hit = self.cache.lookup(key)
            if hit is not None:
                self._cached(node, key, material, hit.outputs, hit.run_id, "not selected: from the cache")
                return
            latest = self.history.latest_with_key(key)
            if latest is None:
                raise ValidationError(
                    f"is needed by the selected steps but has no result for its current inputs "
                    f"and parameters (cache key {key[:12]})",
                    obj=f"step {name}",
                    fix=f"add {name} to the selection, or run the whole pipeline",
                )
            outputs = {k: OutputArtifact.from_json(v) for k, v in latest[1].items()}
            if all(self.ws.artifacts.exists(a.sha256) for a in outputs.values()):
                self._cached(node, key, material, outputs, latest[0], f"not selected: from run {latest[0]}")
                return
            raise ValidationError(
                "is needed by the selected steps but its stored result is gone",
                obj=f"step {name}",
                fix=f"add {name} to the selection, or run the whole pipeline",
            )
        # (4) the cache
        if node.cache.enabled and not self.force:
            hit = self.cache.lookup(key, node.cache)
            if hit is not None:
                self._cached(node, key, material, hit.outputs, hit.run_id, None)
                return
        # (5) execute
        self.history.update_step(self.run_id, name, cache_key=key, cache_material=material)
        self._submit(node, retry=False, task_args=task_args, inputs=inputs)

    def _submit(
        self,
        node: StepNode,
        *,
        retry: bool,
        task_args: dict[str, Any] | None = None,
        inputs: dict[str, str] | None = None,
    ) -> None:
        name = node.name
        if retry or task_args is None or inputs is None:
            task_args, _, inputs = self._resolve(node)
        result = self.results[name]
        result.attempts += 1
        task = Task(
            run_id=self.run_id,
            step=name,
            kind=node.kind,
            attempt=result.attempts,
            workspace_root=str(self.ws.root),
            settings=self.ws.settings.model_dump(),
            module=node.target.module,
            qualname=node.target.qualname,
            file=node.target.file,
            arguments=task_args,
            outputs=node.outputs,
            service=node.service,
        )
        action = self.ws.lineage.action(
            "pipeline.step",
            parameters={
                "pipeline": self.pipe.name,
                "run_id": self.run_id,
                "step": name,
                "kind": node.kind,
                "attempt": result.attempts,
                "cache_key": result.cache_key,
                "cached": False,
            },
            context=("pipeline_run", self.run_id),
        )
        recorder = action.__enter__()
        for where, tag in sorted(inputs.items()):
            digest = tag.split("[", 1)[0].split("@", 1)[0]
            recorder.input(
                ArtifactSpec(self._lineage_type(digest), f"sha256:{digest}", sha256=digest, name=where)
            )
        self.history.update_step(
            self.run_id,
            name,
            status="Running",
            attempts=result.attempts,
            started_at=utcnow(),
            lineage_action_id=recorder.id,
            error=None,
        )
        self.state[name] = "running"
        flight = _Inflight(node, task, action, recorder, inputs)
        if node.in_driver:
            self._finish(flight, run_task(task))
        else:
            self.inflight[self.executor.submit(task)] = flight

    def _lineage_type(self, digest: str) -> str:
        for res in self.results.values():
            for art in res.outputs.values():
                if art.sha256 == digest:
                    return _LINEAGE_TYPES.get(art.codec, "File")
        return "File"

    def _finish(self, flight: _Inflight, res: TaskResult) -> None:
        node = flight.node
        name = node.name
        result = self.results[name]
        if res.log is not None:
            self._index(res.log)
            result.log_sha256 = str(res.log["sha256"])
        if res.ok:
            outputs = {k: OutputArtifact.from_json(v) for k, v in res.outputs.items()}
            for art in outputs.values():
                self._index(art.to_json())
                flight.recorder.output(
                    ArtifactSpec(
                        _LINEAGE_TYPES.get(art.codec, "File"),
                        f"sha256:{art.sha256}",
                        sha256=art.sha256,
                        name=f"{name}.{next(k for k, v in outputs.items() if v is art)}",
                    )
                )
            flight.recorder.set(duration_s=round(res.duration_s, 6), worker=res.worker)
            flight.action.__exit__(None, None, None)
            if node.cache.enabled and result.cache_key is not None:
                self.cache.store(result.cache_key, name, outputs, self.run_id)
            result.duration_s = res.duration_s
            self._mark(
                node,
                "Succeeded",
                outputs=outputs,
                extra={"duration_s": res.duration_s, "worker": res.worker, "log_sha256": result.log_sha256},
            )
            return
        err = PipelineFailed(res.error or "failed", obj=f"step {name}")
        flight.action.__exit__(PipelineFailed, err, None)
        failures = self.failures[name] = self.failures.get(name, 0) + 1
        if node.retry.should_retry(failures, res.error_types, fatal=res.fatal):
            delay = node.retry.delay(failures)
            self.retry_at[name] = time.monotonic() + delay
            self.state[name] = "waiting"
            self.history.update_step(
                self.run_id,
                name,
                status="Pending",
                error=res.error,
                log_sha256=result.log_sha256,
                note=f"attempt {result.attempts} failed; retrying in {delay:.3g}s",
            )
            return
        result.duration_s = res.duration_s
        self._fail(node, res.error or "failed", fatal=res.fatal)

    def _fail(self, node: StepNode, error: str, *, fatal: bool = False) -> None:
        result = self.results[node.name]
        result.status = "Failed"
        result.error = error
        self.state[node.name] = "failed"
        self.history.update_step(
            self.run_id,
            node.name,
            status="Failed",
            error=error,
            ended_at=utcnow(),
            duration_s=result.duration_s,
            log_sha256=result.log_sha256,
        )
        if self.run_error is None:
            self.run_error = (
                f"stopped by {node.kind} step {node.name}: {error}"
                if fatal
                else f"step {node.name} failed: {error}"
            )
        self._bar.advance()

    def _cached(
        self,
        node: StepNode,
        key: str,
        material: dict[str, Any],
        outputs: dict[str, OutputArtifact],
        source_run: str,
        note: str | None,
    ) -> None:
        result = self.results[node.name]
        result.cached_from_run = source_run
        with self.ws.lineage.action(
            "pipeline.step",
            parameters={
                "pipeline": self.pipe.name,
                "run_id": self.run_id,
                "step": node.name,
                "kind": node.kind,
                "cache_key": key,
                "cached": True,
                "cached_from_run": source_run,
            },
            context=("pipeline_run", self.run_id),
        ) as act:
            for out, art in outputs.items():
                act.output(
                    ArtifactSpec(
                        _LINEAGE_TYPES.get(art.codec, "File"),
                        f"sha256:{art.sha256}",
                        sha256=art.sha256,
                        name=f"{node.name}.{out}",
                    )
                )
        self._mark(
            node,
            "Cached",
            outputs=outputs,
            note=note,
            extra={
                "cache_key": key,
                "cache_material": material,
                "cached_from_run": source_run,
                "lineage_action_id": act.id,
            },
        )

    def _mark(
        self,
        node: StepNode,
        status: str,
        *,
        outputs: dict[str, OutputArtifact] | None = None,
        note: str | None = None,
        record: bool = True,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        name = node.name
        result = self.results[name]
        result.status = status
        result.note = note
        result.outputs = outputs or {}
        self.state[name] = "skipped" if status == "Skipped" else "done"
        if node.kind == "condition" and "return" in result.outputs:
            self.passed[name] = bool(read_json(self.ws.artifacts, result.outputs["return"].sha256)["passed"])
        if record:
            now = utcnow()
            values: dict[str, Any] = {
                "status": status,
                "outputs": {k: a.to_json() for k, a in result.outputs.items()},
                "note": note,
                "ended_at": now,
                "error": None,
                **(extra or {}),
            }
            if status in ("Cached", "Skipped"):
                values.setdefault("started_at", now)
                values.setdefault("duration_s", 0.0)
            self.history.update_step(self.run_id, name, **values)
        self._bar.advance()

    def _index(self, art: Mapping[str, Any]) -> None:
        self.ws.metadata.record_blob(
            ArtifactRef(str(art["sha256"]), int(art["size"]), str(art["media_type"]))
        )
