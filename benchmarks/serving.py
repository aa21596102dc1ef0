"""Serving benchmark: tideml's endpoint against MLflow's model server, same XGBoost model, same machine.

What it does, in one run:

1. Builds the article's model (the example flows over the article's raw data; XGBoost with the article's
   hyperparameters: max_depth 3, eta 0.2, 100 rounds), registers and approves it, and puts all 5,000
   policies' features in the online store (SQLite, and Redis if it answers).
2. Measures deploy-to-ready: `Endpoints.deploy()` plus `tide serve` (a new process, 2 workers) until
   `/ready` answers 200.
3. Loads each server from a separate process on loopback (a small asyncio HTTP/1.1 client with keep-alive
   connections):
   * fixed rate (open loop): `--rate` requests/s for `--rate-seconds`, p50/p99 latency;
   * peak (closed loop): `--connections` connections back to back for `--peak-seconds`, throughput.
   Servers: tideml `{"policy_id"}` with the SQLite and the Redis online store, tideml with the features
   inline (`{"features": {...}}`), and `mlflow models serve` (2 workers, features inline as
   `dataframe_split`, since it has no feature store) from `.venv-peers`.
4. Prints one table with medians over `--repeats` and the throughput ratio against MLflow.

Run: `.venv/bin/python benchmarks/serving.py` (a few minutes). Peer: `pip install -r
benchmarks/requirements-peers.txt` into `.venv-peers` (mlflow); `--skip-mlflow` runs without it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ARTICLE = REPO.parent / "shared" / "data" / "aws-autoclaims"
FLOWS = REPO / "examples" / "autoclaims" / "flows"
PEERS_PY = REPO / ".venv-peers" / "bin" / "python"
PEERS_MLFLOW = REPO / ".venv-peers" / "bin" / "mlflow"
REDIS_URL = os.environ.get("TIDE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
LAUNCH = "import tideml.cli.serving; from tideml.cli import main; main()"
GROUP = "autoclaims-fraud"


# -- load generator (runs in its own process) -----------------------------------------------------------
def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def _load(args: argparse.Namespace) -> dict[str, Any]:
    bodies = [b.encode() for b in json.loads(Path(args.payloads).read_text())]
    head = (
        f"POST {args.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Connection: keep-alive\r\nContent-Length: %d\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    lags: list[float] = []
    statuses: dict[int, int] = {}
    rng = random.Random(0)
    start = loop.time() + 0.05
    counter = {"i": 0}
    total = int(args.rate * args.seconds) if args.mode == "rate" else None
    deadline = start + args.seconds

    def next_job() -> float | None:
        i = counter["i"]
        if args.mode == "rate":
            if total is not None and i >= total:
                return None
            counter["i"] = i + 1
            return start + i / args.rate
        if loop.time() >= deadline:
            return None
        counter["i"] = i + 1
        return loop.time()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        try:
            while (scheduled := next_job()) is not None:
                delay = scheduled - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                body = bodies[rng.randrange(len(bodies))]
                sent = loop.time()
                writer.write(head % len(body) + body)
                header = await reader.readuntil(b"\r\n\r\n")
                status = int(header[9:12])
                length = 0
                for line in header.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                done = loop.time()
                latencies.append(done - sent)
                lags.append(max(0.0, sent - scheduled))
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    t0 = loop.time()
    await asyncio.gather(*(worker() for _ in range(args.connections)))
    elapsed = loop.time() - max(t0, start)
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "throughput": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": _percentile(latencies, 50) * 1e3,
        "p99_ms": _percentile(latencies, 99) * 1e3,
        "lag_p99_ms": _percentile(lags, 99) * 1e3,
        "statuses": statuses,
    }


def loadgen_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="serving.py loadgen")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/invocations")
    p.add_argument("--payloads", required=True)
    p.add_argument("--mode", choices=["rate", "peak"], required=True)
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=16, help="connections of the fixed-rate test")
    p.add_argument(
        "--peak-connections",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[4, 16],
        help="connection counts tried for peak throughput (the best is reported)",
    )
    args = p.parse_args(argv)
    print(json.dumps(asyncio.run(_load(args))))


def run_load(
    port: int, payloads: Path, mode: str, *, rate: float, seconds: float, connections: int
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "loadgen",
        "--port",
        str(port),
        "--payloads",
        str(payloads),
        "--mode",
        mode,
        "--rate",
        str(rate),
        "--seconds",
        str(seconds),
        "--connections",
        str(connections),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# -- servers ---------------------------------------------------------------------------------------------
def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def wait_http(port: int, path: str, timeout: float, proc: subprocess.Popen[bytes]) -> float:
    """Seconds until GET path answers 200 (raises if the process dies or the timeout passes)."""
    import httpx

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1.0).status_code == 200:
                return time.perf_counter() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"no 200 from {path} after {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_tideml(
    ws_root: Path, port: int, workers: int, online: str | None, log: Path, *, lean: bool = False
) -> subprocess.Popen[bytes]:
    """`tide serve` (the CLI), or with `lean` `python -m tideml.serving` (no CLI imports)."""
    launcher = ["-m", "tideml.serving", "fraud"] if lean else ["-c", LAUNCH, "serve", "fraud"]
    cmd = [sys.executable, *launcher, "-w", str(ws_root), "--port", str(port), "--workers", str(workers)]
    if online:
        cmd += ["--online-store", online]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDE_")}
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)


_MLFLOW_SAVE = """
import sys, xgboost as xgb, mlflow.xgboost
booster = xgb.Booster()
booster.load_model(sys.argv[1])
mlflow.xgboost.save_model(booster, sys.argv[2])
"""


def start_mlflow(
    booster_file: Path, work: Path, port: int, workers: int, log: Path
) -> subprocess.Popen[bytes]:
    model_dir = work / "mlflow-model"
    shutil.rmtree(model_dir, ignore_errors=True)
    subprocess.run(
        [str(PEERS_PY), "-c", _MLFLOW_SAVE, str(booster_file), str(model_dir)],
        check=True,
        capture_output=True,
    )
    cmd = [
        str(PEERS_MLFLOW),
        "models",
        "serve",
        "-m",
        str(model_dir),
        "-p",
        str(port),
        "--env-manager",
        "local",
        "-w",
        str(workers),
    ]
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"file://{work / 'mlruns'}",
        "PATH": f"{PEERS_PY.parent}{os.pathsep}{os.environ.get('PATH', '')}",  # its uvicorn
        # One OpenMP thread per worker: XGBoost's default (all cores in each of the 2 workers)
        # oversubscribes 2 cores; this is MLflow's best setting here, and what tideml's explain uses.
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)


# -- setup -----------------------------------------------------------------------------------------------
def build(work: Path, redis_prefix: str | None) -> dict[str, Any]:
    """Workspace, model, registry, online features; returns what the runs need."""
    import numpy as np
    import polars as pl
    import xgboost as xgb

    from tideml.features import FeatureStore
    from tideml.train.model import TrainedModel
    from tideml.workspace import Workspace
    from tideml.wrangle import Flow

    ws = Workspace.init(work / "ws")
    run_time = 1_700_000_000.0
    claims_flow = Flow.load(FLOWS / "claims.flow.json").fit(ARTICLE / "claims.csv", run_time=run_time)
    customers_flow = Flow.load(FLOWS / "customers.flow.json").fit(
        ARTICLE / "customers.csv", run_time=run_time
    )
    claims = claims_flow.transform(ARTICLE / "claims.csv", run_time=run_time)
    customers = customers_flow.transform(ARTICLE / "customers.csv", run_time=run_time)
    joined = claims.join(customers.drop("event_time"), on="policy_id").sort("policy_id")
    features = [c for c in joined.columns if c not in ("policy_id", "fraud", "event_time")]
    x = joined.select([pl.col(c).cast(pl.Float32) for c in features]).to_numpy().astype(np.float32)
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.2, "seed": 0, "nthread": 1}
    booster = xgb.train(params, xgb.DMatrix(x, joined["fraud"].to_numpy(), feature_names=features), 100)
    model = TrainedModel.build(
        booster,
        label="fraud",
        entity="policy_id",
        features=[{"name": f, "type": "float" if joined.schema[f].is_float() else "int"} for f in features],
        threshold=0.5,
        threshold_strategy="fixed",
        params=params,
        seed=0,
        best_iteration=99,
    )
    spec_bytes, booster_bytes = model.to_bytes()
    ws.put_artifact(booster_bytes, "application/ubjson")
    spec = ws.put_artifact(spec_bytes, "application/json")
    v = ws.registry.register(GROUP, spec.sha256, metrics={"cv_auc": 0.8})
    ws.registry.approve(v.ref, actor="bench")
    ws.registry.set_alias(GROUP, "production", v.version)
    online = [None]
    if redis_prefix is not None:
        online.append(f"{REDIS_URL}?prefix={redis_prefix}")
    for url in online:
        fs = FeatureStore(ws, online_url=url)
        fs.ingest(
            "claims",
            claims.drop("fraud"),
            record_identifier="policy_id",
            event_time="event_time",
            progress=False,
        )
        fs.ingest(
            "customers", customers, record_identifier="policy_id", event_time="event_time", progress=False
        )
        fs.close()
    booster_file = work / "model.json"
    booster.save_model(str(booster_file))
    ids = joined["policy_id"].to_list()
    rng = random.Random(0)
    sample = [rng.randrange(len(ids)) for _ in range(2000)]
    by_id = [json.dumps({"policy_id": ids[i]}) for i in sample]
    inline = [json.dumps({"features": dict(zip(features, map(float, x[i]), strict=True))}) for i in sample]
    mlflow = [
        json.dumps({"dataframe_split": {"columns": features, "data": [list(map(float, x[i]))]}})
        for i in sample
    ]
    files = {}
    for name, payload in (("by_id", by_id), ("inline", inline), ("mlflow", mlflow)):
        files[name] = work / f"{name}.json"
        files[name].write_text(json.dumps(payload))
    expected = booster.predict(xgb.DMatrix(x[sample[:20]], feature_names=features))
    ws.close()
    return {
        "ws_root": work / "ws",
        "files": files,
        "booster_file": booster_file,
        "online": online,
        "check": (json.loads(mlflow[0]), [float(p) for p in expected[:1]], json.loads(by_id[0])),
    }


def deploy_to_ready(
    ws_root: Path, workers: int, work: Path, online: str | None, *, lean: bool = False
) -> tuple[float, float, int]:
    """(deploy seconds, start-to-ready seconds, port) for one fresh deploy + `tide serve`."""
    from tideml.serving.service import Endpoints
    from tideml.workspace import Workspace

    with Workspace.open(ws_root) as ws:
        t0 = time.perf_counter()
        Endpoints(ws).deploy("fraud", f"{GROUP}@production", update=True, capture={"sampling_percent": 10})
        deploy = time.perf_counter() - t0
    port = free_port()
    t1 = time.perf_counter()
    proc = start_tideml(ws_root, port, workers, online, work / f"tideml-{port}.log", lean=lean)
    wait_http(port, "/ready", 60, proc)
    ready = time.perf_counter() - t1
    stop(proc)
    return deploy, ready, port


def bench_server(port: int, payload: Path, args: argparse.Namespace) -> dict[str, Any]:
    run_load(port, payload, "peak", rate=0, seconds=2, connections=4)  # warm-up
    rate_runs = [
        run_load(
            port, payload, "rate", rate=args.rate, seconds=args.rate_seconds, connections=args.connections
        )
        for _ in range(args.repeats)
    ]
    # Peak throughput: the best connection count for this server (MLflow, for one, peaks at fewer).
    best: list[dict[str, Any]] = []
    best_conns = 0
    for conns in args.peak_connections:
        runs = [
            run_load(port, payload, "peak", rate=0, seconds=args.peak_seconds, connections=conns)
            for _ in range(args.repeats)
        ]
        if not best or statistics.median(r["throughput"] for r in runs) > statistics.median(
            r["throughput"] for r in best
        ):
            best, best_conns = runs, conns
    errors = sum(n for r in rate_runs + best for s, n in r["statuses"].items() if s != "200")
    return {
        "rate_p50": statistics.median(r["p50_ms"] for r in rate_runs),
        "rate_p99": statistics.median(r["p99_ms"] for r in rate_runs),
        "rate_achieved": statistics.median(r["throughput"] for r in rate_runs),
        "rate_lag_p99": statistics.median(r["lag_p99_ms"] for r in rate_runs),
        "peak_rps": statistics.median(r["throughput"] for r in best),
        "peak_p50": statistics.median(r["p50_ms"] for r in best),
        "peak_p99": statistics.median(r["p99_ms"] for r in best),
        "peak_connections": best_conns,
        "errors": errors,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "loadgen":
        loadgen_main(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rate", type=float, default=500.0, help="fixed-rate test, requests/s")
    p.add_argument("--rate-seconds", type=float, default=10.0)
    p.add_argument("--peak-seconds", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=16, help="connections of the fixed-rate test")
    p.add_argument(
        "--peak-connections",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[4, 16],
        help="connection counts tried for peak throughput (the best is reported)",
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--deploy-repeats", type=int, default=3)
    p.add_argument("--skip-mlflow", action="store_true")
    p.add_argument("--skip-redis", action="store_true")
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="tide-bench-serving-"))
    work.mkdir(parents=True, exist_ok=True)
    redis_prefix = None
    if not args.skip_redis:
        import redis

        try:
            redis.Redis.from_url(REDIS_URL).ping()
            redis_prefix = f"tidebench:{uuid.uuid4().hex[:10]}:"
        except redis.exceptions.ConnectionError:
            print(f"(Redis does not answer at {REDIS_URL}: skipping the Redis online store)")
    load_before = os.getloadavg()
    print("building the model, registry and online features ...", flush=True)
    setup = build(work, redis_prefix)
    results: list[tuple[str, dict[str, Any]]] = []
    try:
        deploys = [
            deploy_to_ready(setup["ws_root"], args.workers, work, None) for _ in range(args.deploy_repeats)
        ]
        d_deploy = statistics.median(d for d, _, _ in deploys)
        d_ready = statistics.median(r for _, r, _ in deploys)
        lean = [
            deploy_to_ready(setup["ws_root"], args.workers, work, None, lean=True)
            for _ in range(args.deploy_repeats)
        ]
        l_deploy = statistics.median(d for d, _, _ in lean)
        l_ready = statistics.median(r for _, r, _ in lean)
        for label, online, payload in (
            ("tideml {policy_id}, SQLite online", None, "by_id"),
            ("tideml {policy_id}, Redis online", setup["online"][-1] if redis_prefix else "", "by_id"),
            ("tideml {features} inline", None, "inline"),
        ):
            if online == "":
                continue
            port = free_port()
            proc = start_tideml(setup["ws_root"], port, args.workers, online, work / f"tideml-{port}.log")
            try:
                wait_http(port, "/ready", 60, proc)
                print(f"loading: {label} ...", flush=True)
                results.append((label, bench_server(port, setup["files"][payload], args)))
            finally:
                stop(proc)
        if not args.skip_mlflow:
            if not PEERS_MLFLOW.exists():
                print(
                    f"(no MLflow at {PEERS_MLFLOW}: pip install -r benchmarks/requirements-peers.txt there)"
                )
            else:
                port = free_port()
                t0 = time.perf_counter()
                proc = start_mlflow(setup["booster_file"], work, port, args.workers, work / "mlflow.log")
                try:
                    wait_http(port, "/ping", 180, proc)
                    mlflow_ready = time.perf_counter() - t0
                    import httpx

                    body, expected, _ = setup["check"]
                    got = httpx.post(f"http://127.0.0.1:{port}/invocations", json=body).json()["predictions"][
                        0
                    ]
                    print(
                        f"loading: MLflow (ready in {mlflow_ready:.1f} s; "
                        f"|p - xgboost| = {abs(got - expected[0]):.1e}) ..."
                    )
                    results.append(
                        (
                            "MLflow models serve {dataframe_split}",
                            bench_server(port, setup["files"]["mlflow"], args),
                        )
                    )
                finally:
                    stop(proc)
    finally:
        if redis_prefix is not None:
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=redis_prefix + "*", count=1000))
            if keys:
                client.unlink(*keys)
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    load_after = os.getloadavg()
    print()
    print(
        f"load average (1 min) before/after: {load_before[0]:.1f} / {load_after[0]:.1f} "
        "(other processes share these cores; numbers are only comparable within this run)"
    )
    print(
        f"Serving on {os.cpu_count()} cores, {args.workers} workers per server, "
        "load from a separate process; "
        f"medians of {args.repeats} runs"
    )
    print(
        f"fixed rate: {args.rate:g} req/s for {args.rate_seconds:g} s over {args.connections} connections; "
        f"peak: best of {args.peak_connections} connections for {args.peak_seconds:g} s"
    )
    cols = ("p50 ms", "p99 ms", "got/s", "peak/s", "conns", "pk p50", "pk p99", "errors")
    hdr = f"{'server':<40} " + " ".join(f"{c:>7}" for c in cols)
    print(hdr)
    print("-" * len(hdr))
    for label, r in results:
        print(
            f"{label:<40} {r['rate_p50']:7.2f} {r['rate_p99']:7.2f} {r['rate_achieved']:7.0f} "
            f"{r['peak_rps']:7.0f} {r['peak_connections']:7d} {r['peak_p50']:7.2f} {r['peak_p99']:7.2f} "
            f"{r['errors']:6d}"
        )
    mlflow = dict(results).get("MLflow models serve {dataframe_split}")
    if mlflow:
        for label, r in results:
            if label.startswith("tideml"):
                print(f"throughput ratio  {label} / MLflow: {r['peak_rps'] / mlflow['peak_rps']:.2f}x")
    print(
        f"deploy-to-ready: deploy() {d_deploy:.2f} s + `tide serve` start to /ready {d_ready:.2f} s "
        f"= {d_deploy + d_ready:.2f} s"
    )
    print(
        f"deploy-to-ready: deploy() {l_deploy:.2f} s + `python -m tideml.serving` start to /ready "
        f"{l_ready:.2f} s = {l_deploy + l_ready:.2f} s"
    )


if __name__ == "__main__":
    main()
