"""Faults: the real Redis going away and coming back (through a proxy we cut), corrupt model files."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest

import tideml.cli.serving  # noqa: F401  -- registers the serving commands on the CLI app
from tideml.cli import main
from tideml.errors import IntegrityError
from tideml.serving.runtime import EndpointRuntime
from tideml.serving.server import check_endpoint

REDIS_URL = os.environ.get("TIDE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


class TcpProxy:
    """A loopback TCP forwarder to the real Redis that the test can cut and restore on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            self._listener.close()
            self._listener = None
        with self._lock:
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self._conns.clear()


@pytest.mark.redis
def test_redis_down_is_a_503_and_the_endpoint_recovers_by_itself(redis_served: Any) -> None:
    served = redis_served
    served.deploy()
    parts = urlsplit(REDIS_URL)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 6379))
    proxy.start()
    store_url = served.ws.settings.online_store.url
    proxied = store_url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    try:
        _, client = served.client(online_url=proxied)
        pid = served.ids[2]
        want = served.article.expected(pid)
        assert abs(client.post("/invocations", json={"policy_id": pid}).json()["probability"] - want) < 1e-6
        proxy.stop()
        for _ in range(3):
            r = client.post("/invocations", json={"policy_id": pid})
            assert r.status_code == 503, r.text
            err = r.json()["error"]
            assert err["code"] == "store_unavailable" and "cannot reach Redis" in err["message"]
            assert err["field"] == "url" and err["fix"]
            assert r.headers["Retry-After"] == "1"
        assert client.get("/ready").status_code == 503
        assert client.get("/ping").status_code == 200  # alive, just not ready
        # Requests that need no online feature still work while the store is down.
        feats = dict(zip(served.article.features, map(float, served.article.row(pid)), strict=True))
        assert client.post("/invocations", json={"features": feats}).status_code == 200
        proxy.start()
        r = client.post("/invocations", json={"policy_id": pid})
        assert r.status_code == 200 and abs(r.json()["probability"] - want) < 1e-6
        assert client.get("/ready").status_code == 200
    finally:
        proxy.stop()


@pytest.mark.redis
def test_an_endpoint_pointed_at_a_dead_port_answers_503(redis_served: Any) -> None:
    served = redis_served
    served.deploy()
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    dead = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    parts = urlsplit(REDIS_URL)
    url = served.ws.settings.online_store.url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{dead}")
    _, client = served.client(online_url=url)
    r = client.post("/invocations", json={"policy_id": served.ids[0]})
    assert r.status_code == 503 and "cannot reach Redis" in r.json()["error"]["message"]
    ready = client.get("/ready")
    assert ready.status_code == 503 and "cannot reach Redis" in ready.json()["online_store"]


def test_a_corrupt_model_file_stops_the_endpoint_at_start(
    served: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    served.deploy()
    spec = served.ws.artifacts.local_path(served.spec_sha[0], verify=False)
    booster_sha = orjson.loads(spec.read_bytes())["booster_sha256"]
    path = served.ws.artifacts.local_path(booster_sha, verify=False)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-100])  # truncated on disk
    with pytest.raises(IntegrityError) as exc:
        EndpointRuntime(served.ws, "fraud")
    assert booster_sha[:12] in str(exc.value) or "hash" in str(exc.value) or "sha256" in str(exc.value)
    with pytest.raises(IntegrityError):
        check_endpoint(served.ws, "fraud")
    with pytest.raises(SystemExit) as stop:
        main(["serve", "fraud", "--workspace", str(served.ws.root), "--port", "1"])
    assert stop.value.code == IntegrityError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
