"""Where step attempts run: in the driver, in a local process pool (spawn), or on a Dask cluster.

Chosen by a string, so the same pipeline moves from a laptop to a cluster by configuration:

    inline            in the driver process, one step at a time (debugging, tiny steps)
    local[:N]         a ProcessPoolExecutor with the spawn start method, N workers (default: CPUs)
    dask-local[:N]    a distributed.LocalCluster of N worker processes started for the run
    dask://HOST:PORT  an existing Dask scheduler (tcp://HOST:PORT works too)

The default is `$TIDE_PIPELINES_EXECUTOR`, else `local`. Workers must see the workspace folder and the
pipeline's source files at the same paths (a shared filesystem on a real cluster).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Iterable
from typing import Any, Protocol

from tideml.errors import ConfigError, StoreUnavailable
from tideml.pipelines.worker import Task, TaskResult, run_task

__all__ = [
    "DaskExecutor",
    "Executor",
    "InlineExecutor",
    "ProcessExecutor",
    "default_executor_spec",
    "make_executor",
]


class Executor(Protocol):
    """Submit tasks, wait for some to finish, collect results; close when the run ends."""

    spec: str
    max_workers: int

    def submit(self, task: Task) -> Any: ...

    def wait(self, handles: Iterable[Any], timeout: float | None) -> set[Any]: ...

    def result(self, handle: Any, task: Task) -> TaskResult: ...

    def close(self) -> None: ...


def _lost(task: Task, exc: BaseException) -> TaskResult:
    """A result for an attempt whose worker died (killed, out of memory) before it could answer."""
    return TaskResult(
        step=task.step,
        attempt=task.attempt,
        ok=False,
        started_at="",
        ended_at="",
        duration_s=0.0,
        error_type="WorkerLost",
        error_types=["tideml.pipelines.WorkerLost"],
        error=f"the worker running the step died ({type(exc).__name__}: {exc})",
    )


class InlineExecutor:
    """Runs each task in the driver at submit time."""

    def __init__(self) -> None:
        self.spec = "inline"
        self.max_workers = 1

    def submit(self, task: Task) -> cf.Future[TaskResult]:
        fut: cf.Future[TaskResult] = cf.Future()
        fut.set_result(run_task(task))
        return fut

    def wait(self, handles: Iterable[Any], timeout: float | None) -> set[Any]:
        return {h for h in handles if h.done()}

    def result(self, handle: Any, task: Task) -> TaskResult:
        res: TaskResult = handle.result()
        return res

    def close(self) -> None:
        pass


class ProcessExecutor:
    """A local pool of spawned worker processes, created on the first submit (a cached run needs none)."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or os.cpu_count() or 1
        self.spec = f"local:{self.max_workers}"
        self._pool: cf.ProcessPoolExecutor | None = None

    def _ensure(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.max_workers, mp_context=multiprocessing.get_context("spawn")
            )
        return self._pool

    def submit(self, task: Task) -> cf.Future[TaskResult]:
        try:
            return self._ensure().submit(run_task, task)
        except cf.process.BrokenProcessPool:
            self._reset()
            return self._ensure().submit(run_task, task)

    def wait(self, handles: Iterable[Any], timeout: float | None) -> set[Any]:
        done, _ = cf.wait(list(handles), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return set(done)

    def result(self, handle: Any, task: Task) -> TaskResult:
        try:
            res: TaskResult = handle.result()
            return res
        except cf.process.BrokenProcessPool as exc:
            self._reset()
            return _lost(task, exc)

    def _reset(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor:
    """Tasks on a Dask distributed cluster: an existing scheduler, or a LocalCluster for the run."""

    def __init__(self, address: str | None = None, n_workers: int = 2) -> None:
        try:
            import distributed
        except ImportError as exc:  # pragma: no cover - dask[distributed] is a dependency
            raise ConfigError(
                "dask.distributed is not installed", obj="executor", fix="pip install 'dask[distributed]'"
            ) from exc
        self._distributed: Any = distributed
        self._cluster: Any = None
        self._client: Any = None
        self._n_workers = n_workers
        if address is None:  # started on the first submit: a fully cached run needs no cluster
            self.spec = f"dask-local:{n_workers}"
            self.max_workers = n_workers
            return
        self.spec = f"dask://{address.removeprefix('tcp://')}"
        try:
            self._client = self._distributed.Client(address, timeout="10s")
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot reach the Dask scheduler at {address} ({exc})",
                obj="executor",
                field="address",
                fix="start the scheduler, or correct --executor / $TIDE_PIPELINES_EXECUTOR",
            ) from exc
        threads = self._client.nthreads()
        self.max_workers = max(1, sum(threads.values()) if threads else n_workers)

    def _ensure(self) -> Any:
        if self._client is None:
            self._cluster = self._distributed.LocalCluster(
                n_workers=self._n_workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
            self._client = self._distributed.Client(self._cluster)
        return self._client

    def submit(self, task: Task) -> Any:
        key = f"tide-{task.run_id}-{task.step}-{task.attempt}"
        return self._ensure().submit(run_task, task, key=key, pure=False, retries=0)

    def wait(self, handles: Iterable[Any], timeout: float | None) -> set[Any]:
        import distributed

        wait: Any = distributed.wait
        pending = list(handles)
        if not pending:
            return set()
        try:
            done, _ = wait(pending, timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return set()
        return set(done)

    def result(self, handle: Any, task: Task) -> TaskResult:
        try:
            res: TaskResult = handle.result()
            return res
        except Exception as exc:  # KilledWorker, CancelledError: the worker died under the task
            return _lost(task, exc)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None


def default_executor_spec() -> str:
    """`$TIDE_PIPELINES_EXECUTOR`, else `local` (a workspace passes its `[pipelines] executor`)."""
    return os.environ.get("TIDE_PIPELINES_EXECUTOR") or "local"


def _count(spec: str, text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(
            f"{spec!r} has a bad worker count",
            obj="executor",
            fix="write e.g. local:4 or dask-local:2",
        )
    return int(text)


def make_executor(spec: str | None = None, *, max_workers: int | None = None) -> Executor:
    """An executor from its configuration string (see the module docstring)."""
    spec = (spec or default_executor_spec()).strip()
    kind, _, arg = spec.partition(":")
    if spec.startswith(("dask://", "tcp://")):
        return DaskExecutor(address="tcp://" + spec.split("://", 1)[1])
    if kind == "inline" and not arg:
        return InlineExecutor()
    if kind == "local":
        return ProcessExecutor(_count(spec, arg) or max_workers)
    if kind == "dask-local":
        return DaskExecutor(n_workers=_count(spec, arg) or max_workers or 2)
    raise ConfigError(
        f"unknown executor {spec!r}",
        obj="executor",
        fix="use inline, local[:N], dask-local[:N] or dask://HOST:PORT",
    )
