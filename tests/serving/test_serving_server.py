"""`tide serve` for real: a uvicorn subprocess with two workers on loopback, then a clean stop."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import httpx

from tideml.serving.client import EndpointClient, EndpointError

LAUNCH = "import tideml.cli.serving; from tideml.cli import main; main()"


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def test_tide_serve_answers_and_stops_cleanly(served: Any) -> None:
    served.deploy()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDE_") or k.startswith("TIDE_TEST_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            LAUNCH,
            "serve",
            "fraud",
            "-w",
            str(served.ws.root),
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        with EndpointClient(f"http://127.0.0.1:{port}") as client:
            try:
                client.wait_ready(timeout=60)
            except Exception:
                proc.kill()
                raise AssertionError(proc.communicate(timeout=10)) from None
            assert client.ping()
            # Nagle's algorithm on the forked workers' sockets would add ~40 ms to every answer.
            latencies = []
            for _ in range(15):
                t0 = time.perf_counter()
                client.ping()
                latencies.append(time.perf_counter() - t0)
            assert sorted(latencies)[7] < 0.03, latencies
            pid = served.ids[4]
            answer = client.predict(pid, explain=True)
            assert abs(answer["probability"] - served.article.expected(pid)) < 1e-6
            assert answer["model_version"] == "autoclaims-fraud/1" and len(answer["reasons"]) == 3
            for p in served.ids[:9]:
                client.predict(p)
            try:
                client.predict(10**9)
            except EndpointError as exc:
                assert exc.status == 404 and exc.field == "policy_id"
            else:
                raise AssertionError("an unknown policy must be refused")
            time.sleep(1.5)  # workers share their metrics once a second
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            ok = re.search(
                r'tide_requests_total\{endpoint="fraud",variant="primary",status="200"\} (\d+)', text
            )
            assert ok is not None and int(ok.group(1)) == 10, text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"serving fraud" in out
    assert b"Traceback" not in err
