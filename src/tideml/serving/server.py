"""`serve(ws, name, workers=N, port=P)`: run an endpoint under uvicorn, one process per worker.

The parent process first loads the endpoint exactly as a worker will (configuration, approval, every
model with its hash checks): a corrupt model or an unapproved version stops the server here with one
clear message, before any port is bound. Each worker then builds its own runtime from the environment
(`app_factory`) in a forked process, and the workers share their metrics through a run folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tideml.errors import TideError

if TYPE_CHECKING:
    from tideml.serving.app import ServingApp
    from tideml.workspace import Workspace

__all__ = ["app_factory", "check_endpoint", "serve"]

ENV_WORKSPACE = "TIDE_SERVING_WORKSPACE"
ENV_ENDPOINT = "TIDE_SERVING_ENDPOINT"
ENV_WORKERS = "TIDE_SERVING_WORKERS"
ENV_RUN_DIR = "TIDE_SERVING_RUN_DIR"
ENV_ONLINE_URL = "TIDE_SERVING_ONLINE_URL"


def app_factory() -> ServingApp:
    """The ASGI app of one worker, from the environment `serve` sets (uvicorn's `--factory`)."""
    from tideml.serving.app import create_app
    from tideml.serving.runtime import EndpointRuntime
    from tideml.workspace import Workspace

    ws = Workspace.open(os.environ[ENV_WORKSPACE])
    run_dir = os.environ.get(ENV_RUN_DIR)
    runtime = EndpointRuntime(
        ws,
        os.environ[ENV_ENDPOINT],
        online_url=os.environ.get(ENV_ONLINE_URL) or None,
        workers=int(os.environ.get(ENV_WORKERS, "1")),
        metrics_folder=Path(run_dir) / "metrics" if run_dir else None,
    )
    return create_app(runtime)


def check_endpoint(ws: Workspace, name: str) -> list[str]:
    """Load the endpoint's configuration and every model as a worker would; return what each serves.

    Raises NotFound, PolicyViolation or IntegrityError (a corrupt model file) with a clear message.
    """
    from tideml.serving.service import Endpoints, load_group_infos, resolve_variant

    endpoints = Endpoints(ws)
    info = endpoints.get(name)
    config = endpoints.config(name)
    deployed = {v["name"]: v for v in info.variants}
    groups = load_group_infos(ws, config.feature_groups)
    served = []
    for v in config.variants:
        version, model, _ = resolve_variant(ws, v.model, groups)
        d = deployed.get(v.name, {})
        if version.status != "Approved" and not (
            d.get("override_approval") and d.get("deployed_version") == version.version
        ):
            from tideml.errors import PolicyViolation

            raise PolicyViolation(
                f"model {version.ref} is {version.status}; only Approved versions are served",
                obj=f"endpoint {name}",
                field=f"variants.{v.name}.model",
                fix="approve it, or redeploy with override_approval=True",
            )
        served.append(f"{v.name}={model.ref}")
    return served


def serve(
    ws: Workspace,
    name: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    online_url: str | None = None,
    log_level: str = "warning",
    check: bool = True,
) -> int:
    """Run the endpoint until SIGTERM/SIGINT; returns the exit code (0 after a clean stop).

    With several workers the parent binds the port, then forks the workers after everything is
    imported (as gunicorn's preload does): each worker only opens its own stores and loads the models,
    so the endpoint is ready in a fraction of a second instead of re-importing the stack per worker.
    A worker that dies is replaced; one that cannot start three times in a row stops the server.
    """
    import uvicorn

    if check:
        check_endpoint(ws, name)
    run_dir = ws.root / "serving" / name / f"run-{port}"
    shutil.rmtree(run_dir, ignore_errors=True)  # stale metrics of a previous server on this port
    (run_dir / "metrics").mkdir(parents=True, exist_ok=True)
    os.environ[ENV_WORKSPACE] = str(ws.root)
    os.environ[ENV_ENDPOINT] = name
    os.environ[ENV_WORKERS] = str(workers)
    os.environ[ENV_RUN_DIR] = str(run_dir)
    if online_url:
        os.environ[ENV_ONLINE_URL] = online_url
    ws.close()  # no connection may be shared with forked workers
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
        "lifespan": "on",
    }
    if workers == 1:
        uvicorn.Server(uvicorn.Config(app_factory(), **options)).run()
        return 0
    import tideml.serving.app
    import tideml.serving.runtime  # noqa: F401

    sock = uvicorn.Config("tideml.serving.server:app_factory", factory=True, **options).bind_socket()
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        # Accepted sockets inherit this. asyncio sets it only on sockets created with proto=IPPROTO_TCP,
        # which a pre-bound socket is not: without it Nagle's algorithm and delayed ACKs add ~40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        return _supervise(sock, workers, options)
    finally:
        sock.close()


def _worker(sock: socket.socket, options: dict[str, Any]) -> None:
    """The body of a forked worker process (never returns)."""
    import uvicorn

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    code = 0
    try:
        app = app_factory()
        uvicorn.Server(uvicorn.Config(app, **options)).run(sockets=[sock])
    except TideError as exc:
        sys.stderr.write(f"error: worker {os.getpid()}: {exc}\n")
        code = exc.exit_code
    except BaseException as exc:  # the worker must exit, whatever happened
        sys.stderr.write(f"error: worker {os.getpid()}: {type(exc).__name__}: {exc}\n")
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def _supervise(sock: socket.socket, workers: int, options: dict[str, Any]) -> int:
    """Fork the workers, replace any that dies, stop them all on SIGTERM/SIGINT."""
    children: dict[int, float] = {}
    state = {"stopping": False, "code": 0, "quick_failures": 0}

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:
            _worker(sock, options)
        children[pid] = time.monotonic()

    def stop_all(signum: int, _frame: Any) -> None:
        state["stopping"] = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop_all) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for _ in range(workers):
            spawn()
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            started = children.pop(pid, None)
            if started is None or state["stopping"]:
                continue
            code = os.waitstatus_to_exitcode(status)
            quick = time.monotonic() - started < 5.0
            state["quick_failures"] = state["quick_failures"] + 1 if quick else 0
            if state["quick_failures"] >= 3:
                sys.stderr.write("error: workers keep failing at start; stopping the server\n")
                state["code"] = code or 1
                stop_all(signal.SIGTERM, None)
                continue
            sys.stderr.write(f"warning: worker {pid} exited with {code}; starting a new one\n")
            spawn()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return int(state["code"])
