"""Run one step attempt in whatever process the executor chose (driver, pool worker, Dask worker).

A task carries only references: the workspace folder and settings, the import address of the step's
function, its resolved parameters and, for each input, the stored artifact to read. The worker reads
the inputs from the shared artifact store, calls the function with stdout/stderr captured to a log
artifact, stores the outputs and returns their descriptions. It never raises: errors come back as data,
so that no exception object has to survive a trip between processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import io
import logging
import os
import sys
import tempfile
import threading
import time
import traceback
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tideml.errors import TideError
from tideml.pipelines.step import WORKSPACE_ARGUMENT

if TYPE_CHECKING:
    from tideml.workspace import Workspace

__all__ = [
    "FILE_MODULE_PREFIX",
    "InputLeaf",
    "Task",
    "TaskResult",
    "file_module_name",
    "load_target",
    "module_from_file",
    "run_task",
]


@dataclass(frozen=True)
class InputLeaf:
    """One input of a task: the stored artifact (OutputArtifact JSON), a field selector and the mode."""

    artifact: dict[str, Any]
    select: tuple[str, ...] = ()
    read_as: str = "value"


@dataclass
class Task:
    """Everything a worker needs to run one attempt of one step."""

    run_id: str
    step: str
    kind: str
    attempt: int
    workspace_root: str
    settings: dict[str, Any]
    module: str
    qualname: str
    file: str | None
    arguments: dict[str, Any]
    outputs: tuple[str, ...]
    service: str | None = None


@dataclass
class TaskResult:
    """What came of one attempt: outputs or an error, the log artifact and the timings."""

    step: str
    attempt: int
    ok: bool
    started_at: str
    ended_at: str
    duration_s: float
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: dict[str, Any] | None = None
    error_type: str | None = None
    error_types: list[str] = field(default_factory=list)
    error: str | None = None
    fatal: bool = False
    worker: str = ""


_WORKSPACES: dict[str, Workspace] = {}
_LOCK = threading.Lock()


def _workspace(root: str, settings: dict[str, Any]) -> Workspace:
    """One Workspace per (root, settings) in this process, opened from the driver's resolved settings."""
    from tideml.config import Settings
    from tideml.workspace import Workspace

    key = hashlib.sha256(repr((root, sorted(settings.items()))).encode()).hexdigest()
    with _LOCK:
        ws = _WORKSPACES.get(key)
        if ws is None:
            ws = Workspace(Path(root), Settings.model_validate(settings))
            _WORKSPACES[key] = ws
        return ws


FILE_MODULE_PREFIX = "_tide_file_"


def file_module_name(file: str) -> str:
    """The module name a file loaded by path gets: `_tide_file_<hash of its path>_<stem>`."""
    real = os.path.realpath(file)
    digest = hashlib.sha256(real.encode()).hexdigest()[:10]
    stem = "".join(c if c.isalnum() else "_" for c in Path(real).stem)
    return f"{FILE_MODULE_PREFIX}{digest}_{stem}"


def module_from_file(file: str) -> Any:
    """Load a Python file by path (once per process), with its folder importable, as a script would be."""
    name = file_module_name(file)
    if name in sys.modules:
        return sys.modules[name]
    folder = os.path.dirname(os.path.realpath(file))
    if folder not in sys.path:
        sys.path.insert(0, folder)  # sibling modules import as they do when the file runs as a script
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {file}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[name]
        raise
    return mod


def _same_file(mod: Any, file: str | None) -> bool:
    have = getattr(mod, "__file__", None)
    if file is None or have is None:
        return True
    try:
        return os.path.samefile(have, file)
    except OSError:
        return False


def load_target(module: str, qualname: str, file: str | None, *, unwrap: bool = True) -> Any:
    """Import a step function by module and qualname, falling back to loading its file by path.

    The fallback covers scripts (`__main__`), test modules and files given to `tide pipeline run`
    that are not importable by name in this process.
    """
    mod = None
    if module != "__main__" and not module.startswith(FILE_MODULE_PREFIX):
        mod = sys.modules.get(module)
        if mod is None:
            with contextlib.suppress(ImportError):
                mod = importlib.import_module(module)
        if mod is not None and not _same_file(mod, file):
            mod = None
    if mod is None:
        if not file:
            raise ImportError(f"cannot import {module}:{qualname} and its file is unknown")
        mod = module_from_file(file)
    obj: Any = mod
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not unwrap:
        return obj
    inner = getattr(obj, "fn", None)  # a StepDef: call its function
    return inner if callable(inner) else obj


# -- log capture ---------------------------------------------------------------------------------------
class _ThreadRouter(io.TextIOBase):
    """A stdout/stderr stand-in that sends each thread's writes to that thread's log, if it has one."""

    def __init__(self, fallback: TextIO) -> None:
        self.fallback = fallback
        self.local = threading.local()

    def write(self, text: str) -> int:
        target: TextIO | None = getattr(self.local, "target", None)
        return (target or self.fallback).write(text)

    def flush(self) -> None:
        target: TextIO | None = getattr(self.local, "target", None)
        (target or self.fallback).flush()


class _ThreadFilter(logging.Filter):
    def __init__(self, ident: int) -> None:
        super().__init__()
        self.ident = ident

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread == self.ident


@contextlib.contextmanager
def _capture(log: TextIO) -> Iterator[None]:
    """Send this thread's stdout, stderr and log records to `log` while the block runs."""
    handler = logging.StreamHandler(log)
    handler.addFilter(_ThreadFilter(threading.get_ident()))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        if threading.current_thread() is threading.main_thread():
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        else:  # a Dask worker thread: others may be running steps too
            with _LOCK:
                for name in ("stdout", "stderr"):
                    if not isinstance(getattr(sys, name), _ThreadRouter):
                        setattr(sys, name, _ThreadRouter(getattr(sys, name)))
            routers = [typing.cast(_ThreadRouter, sys.stdout), typing.cast(_ThreadRouter, sys.stderr)]
            for r in routers:
                r.local.target = log
            try:
                yield
            finally:
                for r in routers:
                    r.local.target = None
    finally:
        logging.getLogger().removeHandler(handler)


# -- running ---------------------------------------------------------------------------------------
def _annotations(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # unresolved string annotations: fall back to the codecs' defaults
        return {}


def _decode_arguments(ws: Workspace, fn: Callable[..., Any] | None, task: Task) -> dict[str, Any]:
    from tideml.pipelines.codecs import OutputArtifact, decode

    hints = _annotations(fn) if fn is not None else {}

    def walk(value: Any, where: str, annotation: Any) -> Any:
        if isinstance(value, InputLeaf):
            return decode(
                ws.artifacts,
                OutputArtifact.from_json(value.artifact),
                annotation=annotation,
                read_as=value.read_as,
                path=value.select,
                where=f"{task.step}.{where}",
            )
        if isinstance(value, dict):
            return {k: walk(v, f"{where}.{k}", None) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{where}[{i}]", None) for i, v in enumerate(value)]
        return value

    return {name: walk(v, name, hints.get(name)) for name, v in task.arguments.items()}


def _split_outputs(task: Task, value: Any) -> dict[str, Any]:
    from tideml.errors import ValidationError

    if task.outputs == ("return",):
        return {"return": value}
    if isinstance(value, tuple | list) and len(value) == len(task.outputs):
        return dict(zip(task.outputs, value, strict=True))
    if isinstance(value, dict) and set(value) == set(task.outputs):
        return {k: value[k] for k in task.outputs}
    raise ValidationError(
        f"returned {type(value).__name__}, not its declared outputs {', '.join(task.outputs)}",
        obj=f"step {task.step}",
        field="outputs",
        fix="return a dict with exactly those keys, or a tuple in that order",
    )


def _error_types(exc: BaseException) -> list[str]:
    return [f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__ if c not in (object, BaseException)]


def run_task(task: Task) -> TaskResult:
    """Run one attempt of a step; every outcome, including errors, comes back as a TaskResult."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    result = TaskResult(
        step=task.step,
        attempt=task.attempt,
        ok=False,
        started_at=started.isoformat(),
        ended_at="",
        duration_s=0.0,
        worker=f"{os.uname().nodename}:{os.getpid()}",
    )
    fd, log_name = tempfile.mkstemp(prefix=f"tide-{task.step}-", suffix=".log")
    ws: Workspace | None = None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as log:
            try:
                ws = _workspace(task.workspace_root, task.settings)
                with _capture(log):
                    if task.service is not None:
                        from tideml.pipelines.services import call_service

                        target, _, reshape = task.service.partition("|")
                        arguments = _decode_arguments(ws, None, task)
                        value = call_service(ws, target, arguments, reshape or None)
                    else:
                        fn = load_target(task.module, task.qualname, task.file)
                        arguments = _decode_arguments(ws, fn, task)
                        if WORKSPACE_ARGUMENT in inspect.signature(fn).parameters:
                            arguments[WORKSPACE_ARGUMENT] = ws
                        value = fn(**arguments)
                    from tideml.pipelines.codecs import encode

                    for name, item in _split_outputs(task, value).items():
                        art = encode(ws.artifacts, item, step=task.step, output=name)
                        result.outputs[name] = art.to_json()
                result.ok = True
            except BaseException as exc:  # a step's error, reported as data
                if isinstance(exc, KeyboardInterrupt):
                    raise
                from tideml.pipelines.control import PipelineFailed

                result.outputs = {}
                result.error_type = type(exc).__name__
                result.error_types = _error_types(exc)
                result.error = (
                    exc.message
                    if isinstance(exc, PipelineFailed)
                    else str(exc)
                    if isinstance(exc, TideError)
                    else f"{type(exc).__name__}: {exc}"
                )
                result.fatal = isinstance(exc, PipelineFailed)
                log.write("".join(traceback.format_exception(exc)))
        if ws is not None and os.path.getsize(log_name) > 0:
            ref = ws.artifacts.put_file(Path(log_name), "text/plain")
            result.log = {"sha256": ref.sha256, "size": ref.size, "media_type": "text/plain", "codec": "file"}
    finally:
        Path(log_name).unlink(missing_ok=True)
        result.ended_at = datetime.now(UTC).isoformat()
        result.duration_s = time.perf_counter() - t0
    return result
