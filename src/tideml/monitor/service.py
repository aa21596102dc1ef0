"""`MonitorService(ws)`: baselines, monitors, runs (on demand or scheduled) and the retraining trigger.

The shell around the functional core (`run_checks`): it resolves baselines, capture folders and models from
the workspace, stores every output as a content-addressed artifact, keeps monitors and runs in the metadata
DB, and records lineage through `ws.lineage.action`:

- `monitor.baseline`: data → statistics.json, constraints.json, … (Report artifacts);
- `monitor.run`: baseline files + capture files + label files + model → constraint_violations.json,
  statistics.json, monitoring_results.json, report.html, associated with the context ("monitor", NAME);
- `monitor.trigger`: constraint_violations.json → the started pipeline run, associated with the context
  ("pipeline_run", RUN_ID) under which the pipeline engine records its steps.

Capture files are only read; nothing under the capture folder is ever written.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pydantic
import sqlalchemy as sa

from tideml._progress import progress_bar
from tideml.artifacts import file_sha256
from tideml.errors import Conflict, NotFound, TideError, ValidationError
from tideml.lineage import ArtifactSpec, current_user
from tideml.meta.models import utcnow
from tideml.meta.monitor_tables import MonitorRow, MonitorRunRow
from tideml.monitor._jsonfile import json_safe
from tideml.monitor.baseline import FILES, Baseline, load_baseline, suggest_baseline
from tideml.monitor.capture import Window, read_labels, read_window
from tideml.monitor.report import OUTPUT_FILES, run_files
from tideml.monitor.run import MonitorConfig, MonitorResult, run_checks
from tideml.monitor.schedule import Schedule
from tideml.monitor.trigger import (
    LaunchedRun,
    PipelineLauncher,
    TriggerSpec,
    counting_violations,
    pipelines_launcher,
)

if TYPE_CHECKING:
    from tideml.workspace import Workspace

__all__ = ["BaselineRef", "MonitorRunOutcome", "MonitorRunView", "MonitorService", "MonitorView"]

_NAME_FIX = "use letters, digits, '-', '_' and '.', starting with a letter or digit (at most 100)"


def _check_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name or ""):
        raise ValidationError(
            f"{name!r} is not a valid monitor name", obj="monitor", field="name", fix=_NAME_FIX
        )


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _pyd(model: type[pydantic.BaseModel], data: Any, obj: str) -> Any:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or None
        raise ValidationError(
            f"{err['msg']} (got {err.get('input')!r})", obj=obj, field=where, fix="see docs/monitor.md"
        ) from None


@dataclass(frozen=True)
class BaselineRef:
    """A stored baseline: file name → artifact sha256, and the lineage action that produced it."""

    files: dict[str, str]
    action_id: int | None = None


@dataclass(frozen=True)
class MonitorView:
    """A monitor as stored."""

    name: str
    endpoint: str | None
    capture: str
    labels: str | None
    baseline: dict[str, str]
    schedule: Schedule
    config: MonitorConfig
    trigger: TriggerSpec | None
    model_sha256: str | None
    enabled: bool
    next_run_at: datetime | None
    created_at: datetime
    created_by: str

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "name": self.name,
            "endpoint": self.endpoint,
            "capture": self.capture,
            "labels": self.labels,
            "baseline": self.baseline,
            "schedule": self.schedule.describe(),
            "window_seconds": self.schedule.window.total_seconds(),
            "config": self.config.model_dump(mode="json", exclude_none=True),
            "trigger": self.trigger.model_dump(mode="json") if self.trigger else None,
            "model_sha256": self.model_sha256,
            "enabled": self.enabled,
            "next_run_at": _iso(self.next_run_at),
            "created_at": _iso(self.created_at),
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class MonitorRunView:
    """One run as stored."""

    id: int
    monitor: str
    status: str
    trigger_kind: str
    started_at: datetime
    ended_at: datetime | None
    window_start: datetime | None
    window_end: datetime | None
    rows: int
    labelled_rows: int
    violations: int
    summary: dict[str, Any]
    outputs: dict[str, str]
    streak: int
    pipeline_run: str | None
    lineage_action_id: int | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        out = dict(self.__dict__)
        for k in ("started_at", "ended_at", "window_start", "window_end"):
            out[k] = _iso(out[k])
        return out


@dataclass
class MonitorRunOutcome:
    """What `run` did: the stored run, the in-memory result, and the pipeline it started (if any)."""

    run: MonitorRunView
    result: MonitorResult | None
    launched: LaunchedRun | None = None
    trigger_error: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)


def _run_view(row: MonitorRunRow, monitor: str) -> MonitorRunView:
    return MonitorRunView(
        id=row.id,
        monitor=monitor,
        status=row.status,
        trigger_kind=row.trigger_kind,
        started_at=row.started_at,
        ended_at=row.ended_at,
        window_start=row.window_start,
        window_end=row.window_end,
        rows=row.rows,
        labelled_rows=row.labelled_rows,
        violations=row.violations,
        summary=dict(row.summary or {}),
        outputs=dict(row.outputs or {}),
        streak=row.streak,
        pipeline_run=row.pipeline_run,
        lineage_action_id=row.lineage_action_id,
        error=row.error,
    )


def _view(row: MonitorRow) -> MonitorView:
    return MonitorView(
        name=row.name,
        endpoint=row.endpoint,
        capture=row.capture,
        labels=row.labels,
        baseline=dict(row.baseline),
        schedule=Schedule.model_validate(row.schedule),
        config=MonitorConfig.model_validate(row.config or {}),
        trigger=TriggerSpec.model_validate(row.trigger) if row.trigger else None,
        model_sha256=row.model_sha256,
        enabled=row.enabled,
        next_run_at=row.next_run_at,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _frame_digest(frame: pl.DataFrame) -> str:
    return hashlib.sha256(frame.write_ipc(None).getvalue()).hexdigest()


class MonitorService:
    """Model monitoring on a workspace (wired as `ws.monitor`)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    # -- baselines --------------------------------------------------------------------------------------
    def suggest_baseline(
        self, data: Any, *, out_dir: str | Path | None = None, **options: Any
    ) -> tuple[Baseline, BaselineRef]:
        """Profile `data` (frame or file), store every baseline file as an artifact, optionally write them.

        `options` are those of `tideml.monitor.suggest_baseline` (label_column, prediction_column, threshold,
        bias, model, …). Lineage: the data → `monitor.baseline` → the files.
        """
        if isinstance(data, str | Path):
            path = Path(data).expanduser().resolve()
            data_spec = ArtifactSpec(
                "Dataset", path.as_uri(), sha256=file_sha256(path) if path.is_file() else None, name=path.name
            )
        else:
            from tideml.monitor.capture import as_frame

            data = as_frame(data, what="baseline data")
            digest = _frame_digest(data)
            data_spec = ArtifactSpec("Dataset", f"frame:{digest}", sha256=digest, name="in-memory frame")
        params = {
            k: (v if isinstance(v, str | int | float | bool | list | dict | None) else repr(v))
            for k, v in options.items()
            if k != "model"
        }
        with self.ws.lineage.action("monitor.baseline", parameters=params) as act:
            act.input(data_spec)
            model = options.get("model")
            if model is not None:
                booster, model_spec = self._resolve_model(model)
                options = {**options, "model": booster}
                act.input(model_spec)
            baseline = suggest_baseline(data, **options)
            ref = self._store_baseline(baseline, act)
            act.set(rows=baseline.settings.rows, features=len(baseline.constraints.features))
        if out_dir is not None:
            baseline.write(out_dir)
        return baseline, BaselineRef(ref, act.id)

    def store_baseline(self, source: Baseline | str | Path) -> BaselineRef:
        """Validate and store a baseline (an object, or a folder after editing constraints.json by hand)."""
        baseline = source if isinstance(source, Baseline) else load_baseline(source)
        with self.ws.lineage.action(
            "monitor.baseline",
            parameters={"source": str(source) if not isinstance(source, Baseline) else "object"},
        ) as act:
            if not isinstance(source, Baseline):
                folder = Path(source).resolve()
                for name in sorted(baseline.documents()):
                    path = folder / name
                    if path.exists():
                        act.input(ArtifactSpec("File", path.as_uri(), sha256=file_sha256(path), name=name))
            ref = self._store_baseline(baseline, act)
        return BaselineRef(ref, act.id)

    def _store_baseline(self, baseline: Baseline, act: Any) -> dict[str, str]:
        refs: dict[str, str] = {}
        for name, data in baseline.files().items():
            stored = self.ws.put_artifact(data, "application/json")
            refs[name] = stored.sha256
            act.output(
                ArtifactSpec(
                    "Report",
                    stored.uri,
                    sha256=stored.sha256,
                    name=name,
                    properties={"kind": "monitor.baseline"},
                )
            )
        return refs

    def load_baseline(self, refs: Mapping[str, str]) -> Baseline:
        """A stored baseline from its file → sha256 map (every file re-validated)."""
        files = {name: self.ws.artifacts.get(sha) for name, sha in refs.items()}
        return Baseline.from_files(files, where="baseline " + refs.get(FILES["constraints"], "?")[:12])

    def _baseline_refs(
        self, baseline: Baseline | BaselineRef | Mapping[str, str] | str | Path
    ) -> dict[str, str]:
        if isinstance(baseline, BaselineRef):
            refs = dict(baseline.files)
        elif isinstance(baseline, Mapping):
            refs = dict(baseline)
        else:
            refs = self.store_baseline(baseline).files
        for required in (FILES["statistics"], FILES["constraints"]):
            if required not in refs:
                raise ValidationError(
                    f"the baseline has no {required}",
                    obj="monitor",
                    field="baseline",
                    fix="pass a baseline folder or the BaselineRef that suggest_baseline returned",
                )
            if not self.ws.artifacts.exists(refs[required]):
                raise NotFound(
                    f"baseline file {required} is not in the artifact store",
                    obj="monitor",
                    field="baseline",
                    fix="store the baseline again",
                )
        return refs

    # -- models -----------------------------------------------------------------------------------------
    def _model_sha(self, model: Any) -> str:
        if isinstance(model, str):
            digest = model.removeprefix("sha256:")
            if (
                len(digest) == 64
                and all(c in "0123456789abcdef" for c in digest)
                and self.ws.artifacts.exists(digest)
            ):
                return digest
            path = Path(model).expanduser()
            if path.is_file():
                return self.ws.put_artifact(path.resolve()).sha256
            try:
                return self.ws.registry.get_version(model.removeprefix("model:")).model_sha256
            except TideError as exc:
                raise NotFound(
                    f"{model!r} is neither a model file, a stored sha256 nor a registry version",
                    obj="monitor",
                    field="model",
                    fix="pass an XGBoost model file, sha256:HASH or GROUP/VERSION (GROUP@ALIAS)",
                ) from exc
        import xgboost as xgb

        if isinstance(model, xgb.Booster):
            return self.ws.put_artifact(bytes(model.save_raw("ubj")), "application/ubjson").sha256
        raise ValidationError(
            f"unsupported model type {type(model).__name__}",
            obj="monitor",
            field="model",
            fix="pass an XGBoost Booster, a model file, sha256:HASH or GROUP/VERSION",
        )

    def _load_model(self, sha: str) -> Any:
        import xgboost as xgb

        booster = xgb.Booster()
        try:
            booster.load_model(bytearray(self.ws.artifacts.get(sha)))
        except xgb.core.XGBoostError as exc:
            raise ValidationError(
                f"artifact {sha[:12]}… is not an XGBoost model ({str(exc).splitlines()[0]})",
                obj="monitor",
                field="model",
                fix="point the monitor at an XGBoost JSON/UBJSON model",
            ) from None
        return booster

    def _resolve_model(self, model: Any) -> tuple[Any, ArtifactSpec]:
        sha = self._model_sha(model)
        return self._load_model(sha), ArtifactSpec(
            "Model", f"sha256:{sha}", sha256=sha, name=f"model {sha[:12]}"
        )

    # -- monitors ---------------------------------------------------------------------------------------
    def _endpoint_capture(self, endpoint: str) -> str:
        try:
            from tideml.serving.service import Endpoints
        except ImportError as exc:  # pragma: no cover - serving ships with tideml
            raise ValidationError(
                "cannot resolve the endpoint's capture folder",
                obj="monitor",
                field="endpoint",
                fix="pass --capture",
            ) from exc
        endpoints = Endpoints(self.ws)
        return str(endpoints.capture_folder(endpoints.config(endpoint)))

    def create(
        self,
        name: str,
        *,
        baseline: Baseline | BaselineRef | Mapping[str, str] | str | Path,
        capture: str | Path | None = None,
        endpoint: str | None = None,
        labels: str | Path | None = None,
        every: Any = None,
        cron: str | None = None,
        window: Any = None,
        config: MonitorConfig | Mapping[str, Any] | None = None,
        trigger: TriggerSpec | Mapping[str, Any] | None = None,
        model: Any = None,
        enabled: bool = True,
        replace: bool = False,
    ) -> MonitorView:
        """Create (or with `replace`, redefine) a monitor. Without `every`/`cron` it runs on demand only."""
        _check_name(name)
        if capture is None:
            if endpoint is None:
                raise ValidationError(
                    "a monitor needs captured data",
                    obj=f"monitor {name}",
                    field="capture",
                    fix="pass capture= (a folder or glob) or endpoint= (its capture folder is used)",
                )
            capture = self._endpoint_capture(endpoint)
        cfg = (
            config
            if isinstance(config, MonitorConfig)
            else _pyd(MonitorConfig, dict(config or {}), f"monitor {name} config")
        )
        trig = (
            trigger
            if isinstance(trigger, TriggerSpec) or trigger is None
            else _pyd(TriggerSpec, dict(trigger), f"monitor {name} trigger")
        )
        refs = self._baseline_refs(baseline)
        self.load_baseline(refs)  # validate now, not at the first scheduled run
        model_sha = self._model_sha(model) if model is not None else None
        now = utcnow()
        schedule = Schedule.build(every=every, cron=cron, window=window, anchor=now)
        values = {
            "endpoint": endpoint,
            "capture": str(capture),
            "labels": str(labels) if labels is not None else None,
            "baseline": refs,
            "schedule": schedule.model_dump(mode="json"),
            "config": cfg.model_dump(mode="json", exclude_none=True),
            "trigger": trig.model_dump(mode="json") if trig else None,
            "model_sha256": model_sha,
            "enabled": enabled,
            "next_run_at": schedule.next_after(now) if enabled else None,
        }
        with self.ws.metadata.session() as s:
            row = s.scalars(sa.select(MonitorRow).where(MonitorRow.name == name)).first()
            if row is not None and not replace:
                raise Conflict(
                    "a monitor of this name exists",
                    obj=f"monitor {name}",
                    fix="pass replace=True (--replace) or pick another name",
                )
            if row is None:
                row = MonitorRow(name=name, created_by=current_user(), **values)
                s.add(row)
            else:
                for k, v in values.items():
                    setattr(row, k, v)
            s.flush()
            return _view(row)

    def _row(self, s: Any, name: str) -> MonitorRow:
        row: MonitorRow | None = s.scalars(sa.select(MonitorRow).where(MonitorRow.name == name)).first()
        if row is None:
            raise NotFound("no such monitor", obj=f"monitor {name}", fix="see `tide monitor list`")
        return row

    def get(self, name: str) -> MonitorView:
        """One monitor."""
        with self.ws.metadata.session() as s:
            return _view(self._row(s, name))

    def list(self) -> list[MonitorView]:
        """Every monitor, by name."""
        with self.ws.metadata.session() as s:
            return [_view(r) for r in s.scalars(sa.select(MonitorRow).order_by(MonitorRow.name))]

    def set_enabled(self, name: str, enabled: bool) -> MonitorView:
        """Pause or resume a monitor's schedule."""
        with self.ws.metadata.session() as s:
            row = self._row(s, name)
            row.enabled = enabled
            sched = Schedule.model_validate(row.schedule)
            row.next_run_at = sched.next_after(utcnow()) if enabled else None
            s.flush()
            return _view(row)

    def delete(self, name: str) -> None:
        """Delete a monitor and its run history (stored outputs and lineage stay)."""
        with self.ws.metadata.session() as s:
            row = self._row(s, name)
            s.execute(sa.delete(MonitorRunRow).where(MonitorRunRow.monitor_id == row.id))
            s.delete(row)

    def runs(self, name: str, *, limit: int = 20) -> builtins.list[MonitorRunView]:
        """The monitor's latest runs, newest first."""
        with self.ws.metadata.session() as s:
            row = self._row(s, name)
            q = (
                sa.select(MonitorRunRow)
                .where(MonitorRunRow.monitor_id == row.id)
                .order_by(MonitorRunRow.id.desc())
                .limit(limit)
            )
            return [_run_view(r, name) for r in s.scalars(q)]

    def read_output(self, run: MonitorRunView, name: str = OUTPUT_FILES["violations"]) -> bytes:
        """A stored output of a run (`constraint_violations.json`, `report.html`, …)."""
        if name not in run.outputs:
            raise NotFound(
                f"run {run.id} has no {name}",
                obj=f"monitor {run.monitor}",
                fix=f"its outputs: {', '.join(run.outputs)}",
            )
        return self.ws.artifacts.get(run.outputs[name])

    # -- running ----------------------------------------------------------------------------------------
    def check(
        self,
        baseline: Baseline | str | Path,
        window: Any,
        *,
        labels: Any = None,
        model: Any = None,
        config: MonitorConfig | None = None,
    ) -> MonitorResult:
        """An ad-hoc check of any frame or capture files against a baseline (nothing stored)."""
        base = baseline if isinstance(baseline, Baseline) else load_baseline(baseline)
        booster = self._resolve_model(model)[0] if model is not None and not _is_booster(model) else model
        return run_checks(base, window, labels=labels, model=booster, config=config)

    def run(
        self,
        name: str,
        *,
        window: Any = None,
        labels: Any = None,
        start: datetime | None = None,
        end: datetime | None = None,
        launcher: PipelineLauncher | None = None,
        trigger_kind: str = "manual",
        progress: bool = True,
    ) -> MonitorRunOutcome:
        """Run a monitor now. By default its capture over the last window (all of it for on-demand monitors);
        `window` / `labels` replace the configured sources (a frame, a file, a folder or a glob)."""
        monitor = self.get(name)
        schedule = monitor.schedule
        now = utcnow()
        # Scheduled monitors (and on-demand ones given a window length) look at their last window; an
        # explicit end alone means the window before it; an explicit start alone reads from it onwards.
        bounded = not schedule.on_demand or schedule.window_seconds is not None
        if bounded and window is None:
            if start is None and end is None:
                end = now
            if start is None and end is not None:
                start = end - schedule.window
        with self.ws.metadata.session() as s:
            mrow = self._row(s, name)
            run_row = MonitorRunRow(
                monitor_id=mrow.id,
                status="InProgress",
                trigger_kind=trigger_kind,
                window_start=start,
                window_end=end,
                who=current_user(),
            )
            s.add(run_row)
            s.flush()
            run_id = run_row.id
        try:
            outcome = self._execute(monitor, run_id, window, labels, start, end, launcher, progress)
        except BaseException as exc:
            with self.ws.metadata.session() as s:
                row = s.get(MonitorRunRow, run_id)
                assert row is not None
                row.status = "Failed"
                row.error = f"{exc.__class__.__name__}: {exc}"[:4000]
                row.ended_at = utcnow()
            raise
        return outcome

    def _execute(
        self,
        monitor: MonitorView,
        run_id: int,
        window_source: Any,
        labels_source: Any,
        start: datetime | None,
        end: datetime | None,
        launcher: PipelineLauncher | None,
        progress: bool,
    ) -> MonitorRunOutcome:
        cfg = monitor.config
        baseline = self.load_baseline(monitor.baseline)
        fmt = cfg.capture or baseline.settings.capture
        with progress_bar(f"Monitor {monitor.name}", total=4, enabled=progress) as bar:
            params = {
                "monitor": monitor.name,
                "run": run_id,
                "window_start": _iso(start),
                "window_end": _iso(end),
                "capture": monitor.capture if window_source is None else "override",
            }
            with self.ws.lineage.action(
                "monitor.run", parameters=params, context=("monitor", monitor.name)
            ) as act:
                for fname, sha in sorted(monitor.baseline.items()):
                    act.input(ArtifactSpec("Report", f"sha256:{sha}", sha256=sha, name=fname))
                win = read_window(
                    window_source if window_source is not None else monitor.capture,
                    fmt=fmt,
                    start=start,
                    end=end,
                )
                qwin: Window | None = None
                if (
                    cfg.label_delay_seconds > 0
                    and start is not None
                    and end is not None
                    and window_source is None
                ):
                    delay = timedelta(seconds=cfg.label_delay_seconds)
                    qwin = read_window(monitor.capture, fmt=fmt, start=start - delay, end=end - delay)
                lab: Window | None = None
                label_source = labels_source if labels_source is not None else monitor.labels
                if label_source is not None:
                    lab = read_labels(label_source, fmt=fmt)
                for f in [*win.files, *(qwin.files if qwin else []), *(lab.files if lab else [])]:
                    act.input(ArtifactSpec("File", f.path.as_uri(), sha256=f.sha256, name=f.path.name))
                if window_source is not None and not isinstance(window_source, str | Path):
                    digest = _frame_digest(win.frame)
                    act.input(ArtifactSpec("Dataset", f"frame:{digest}", sha256=digest, name="window frame"))
                bar.advance()
                model = None
                if monitor.model_sha256 is not None:
                    model = self._load_model(monitor.model_sha256)
                    act.input(
                        ArtifactSpec(
                            "Model",
                            f"sha256:{monitor.model_sha256}",
                            sha256=monitor.model_sha256,
                            name="monitored model",
                        )
                    )
                result = run_checks(baseline, win, labels=lab, model=model, config=cfg, quality_window=qwin)
                bar.advance()
                files = run_files(
                    result,
                    baseline.statistics,
                    title=f"Monitor {monitor.name} — run {run_id}",
                    max_plots=cfg.report_plots,
                )
                outputs: dict[str, str] = {}
                specs: dict[str, ArtifactSpec] = {}
                for fname, data in files.items():
                    media = "text/html" if fname.endswith(".html") else "application/json"
                    ref = self.ws.put_artifact(data, media)
                    outputs[fname] = ref.sha256
                    spec = ArtifactSpec(
                        "Report",
                        ref.uri,
                        sha256=ref.sha256,
                        name=fname,
                        properties={"kind": "monitor.run", "monitor": monitor.name, "run": run_id},
                    )
                    specs[fname] = spec
                    act.output(spec)
                summary = result.summary()
                act.set(**{k: v for k, v in summary.items() if k != "model_quality"})
                bar.advance()
            counting = counting_violations(result.violations, monitor.trigger)
            prev = self._previous_streak(monitor.name, run_id)
            streak = prev + 1 if counting else 0
            launched: LaunchedRun | None = None
            trigger_error: str | None = None
            if monitor.trigger is not None and counting and streak == monitor.trigger.after:
                launched, trigger_error = self._fire(
                    monitor, run_id, streak, counting, specs[OUTPUT_FILES["violations"]], launcher
                )
            bar.advance()
        labelled = (
            result.model_quality.join.matched if result.model_quality and result.model_quality.join else 0
        )
        summary["timings"] = result.timings
        if trigger_error:
            summary["trigger_error"] = trigger_error
        with self.ws.metadata.session() as s:
            row = s.get(MonitorRunRow, run_id)
            assert row is not None
            row.status = "CompletedWithViolations" if result.violations else "Completed"
            row.ended_at = utcnow()
            row.rows = result.rows
            row.labelled_rows = labelled
            row.violations = len(result.violations)
            row.summary = json_safe(summary)
            row.outputs = outputs
            row.streak = streak
            row.pipeline_run = launched.run_id if launched else None
            row.lineage_action_id = act.id
            s.flush()
            view = _run_view(row, monitor.name)
        return MonitorRunOutcome(view, result, launched, trigger_error, files)

    def _previous_streak(self, name: str, run_id: int) -> int:
        with self.ws.metadata.session() as s:
            mid = self._row(s, name).id
            prev = s.scalars(
                sa.select(MonitorRunRow)
                .where(
                    MonitorRunRow.monitor_id == mid,
                    MonitorRunRow.id < run_id,
                    MonitorRunRow.status != "Failed",
                    MonitorRunRow.status != "InProgress",
                )
                .order_by(MonitorRunRow.id.desc())
                .limit(1)
            ).first()
            return prev.streak if prev is not None else 0

    def _fire(
        self,
        monitor: MonitorView,
        run_id: int,
        streak: int,
        counting: builtins.list[Any],
        violations_spec: ArtifactSpec,
        launcher: PipelineLauncher | None,
    ) -> tuple[LaunchedRun | None, str | None]:
        spec = monitor.trigger
        assert spec is not None
        reason = {
            "monitor": monitor.name,
            "run": run_id,
            "streak": streak,
            "violations": [v.to_json() | {"monitor": v.monitor} for v in counting[:20]],
            "constraint_violations_sha256": violations_spec.sha256,
        }
        params = {
            "monitor": monitor.name,
            "run": run_id,
            "pipeline": spec.pipeline,
            "parameters": spec.parameters,
            "streak": streak,
        }
        try:
            launch = launcher if launcher is not None else pipelines_launcher(self.ws)
            launched = launch(spec.pipeline, dict(spec.parameters), reason=reason)
        except Exception as exc:  # the run's own results stay; the failed start is recorded in lineage
            error = f"{exc.__class__.__name__}: {exc}"[:2000]
            # the lineage recorder marks an action Failed when an exception leaves its block: re-raise the
            # launcher's error inside one, then keep it from ending the run
            failed = self.ws.lineage.action("monitor.trigger", parameters={**params, "error": error})
            with contextlib.suppress(type(exc)), failed as act:
                act.input(violations_spec)
                raise exc
            return None, error
        with self.ws.lineage.action(
            "monitor.trigger",
            parameters={**params, "pipeline_run": launched.run_id, "status": launched.status},
            context=launched.lineage_context,
        ) as act:
            act.input(violations_spec)
            act.set(
                pipeline_run=launched.run_id,
                status=launched.status,
                **{
                    k: v
                    for k, v in launched.details.items()
                    if isinstance(v, str | int | float | bool | list | None)
                },
            )
        return launched, None

    # -- scheduling --------------------------------------------------------------------------------------
    def _claim_due(self, now: datetime) -> builtins.list[tuple[str, datetime]]:
        """Monitors due at `now`, each claimed by moving its next run on (a concurrent scheduler loses)."""
        with self.ws.metadata.session() as s:
            due = [
                r.name
                for r in s.scalars(
                    sa.select(MonitorRow)
                    .where(MonitorRow.enabled.is_(True), MonitorRow.next_run_at <= now)
                    .order_by(MonitorRow.next_run_at)
                )
            ]
        claimed: builtins.list[tuple[str, datetime]] = []
        for name in due:
            try:
                with self.ws.metadata.session() as s:
                    row = self._row(s, name)
                    slot = row.next_run_at
                    if slot is None or slot > now or not row.enabled:
                        continue
                    row.next_run_at = Schedule.model_validate(row.schedule).next_after(now)
                claimed.append((name, slot))
            except Conflict:
                continue  # another scheduler took it
        return claimed

    def run_due(
        self,
        now: datetime | None = None,
        *,
        launcher: PipelineLauncher | None = None,
        on_error: Callable[[str, Exception], None] | None = None,
    ) -> builtins.list[MonitorRunOutcome]:
        """Run every monitor that is due; each run's window ends at its scheduled time, so windows tile."""
        now = now or utcnow()
        out: builtins.list[MonitorRunOutcome] = []
        for name, slot in self._claim_due(now):
            monitor = self.get(name)
            try:
                out.append(
                    self.run(
                        name,
                        start=slot - monitor.schedule.window,
                        end=slot,
                        launcher=launcher,
                        trigger_kind="schedule",
                        progress=False,
                    )
                )
            except Exception as exc:  # one failing monitor must not stop the others; the run row says why
                if on_error is not None:
                    on_error(name, exc)
        return out

    def serve(
        self,
        *,
        poll_seconds: float = 30.0,
        stop: threading.Event | None = None,
        max_iterations: int | None = None,
        launcher: PipelineLauncher | None = None,
        on_run: Callable[[MonitorRunOutcome], None] | None = None,
        on_error: Callable[[str, Exception], None] | None = None,
    ) -> int:
        """The scheduler loop: run due monitors, sleep until the next one is due (at most `poll_seconds`)."""
        stop = stop or threading.Event()
        iterations = 0
        runs = 0
        while not stop.is_set():
            for outcome in self.run_due(launcher=launcher, on_error=on_error):
                runs += 1
                if on_run is not None:
                    on_run(outcome)
            iterations += 1
            if max_iterations is not None and iterations >= max_iterations:
                break
            stop.wait(self._sleep_seconds(poll_seconds))
        return runs

    def _sleep_seconds(self, poll: float) -> float:
        with self.ws.metadata.session() as s:
            nxt = s.scalars(
                sa.select(sa.func.min(MonitorRow.next_run_at)).where(MonitorRow.enabled.is_(True))
            ).first()
        if nxt is None:
            return poll
        if nxt.tzinfo is None:
            nxt = nxt.replace(tzinfo=UTC)
        return float(min(poll, max(0.2, (nxt - datetime.now(UTC)).total_seconds())))


def _is_booster(model: Any) -> bool:
    return type(model).__name__ == "Booster"
