"""Traffic: approval gate, A/B weights, shadow, zero-downtime alias switch, data capture, API keys."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from tideml.errors import PolicyViolation
from tideml.meta.models import LineageAction
from tideml.meta.serving_tables import ApiKeyRow
from tideml.serving.capture import CaptureWriter


def test_only_approved_versions_deploy_and_an_override_is_in_lineage(served: Any) -> None:
    served.register(2, approve=False)
    with pytest.raises(PolicyViolation, match="PendingManualApproval; only Approved versions deploy") as exc:
        served.deploy("fraud", "autoclaims-fraud/2")
    assert exc.value.field == "variants.primary.model"
    info = served.deploy("fraud", "autoclaims-fraud/2", override_approval=True, reason="incident 7 hotfix")
    assert info.variants[0]["override_approval"] is True
    with served.ws.metadata.session() as s:
        actions = s.scalars(sa.select(LineageAction).where(LineageAction.type == "serving.deploy")).all()
        params = [a.parameters for a in actions if a.status == "Completed"]
    assert params[-1]["override_approval"] is True
    assert params[-1]["overridden_versions"] == ["autoclaims-fraud/2"]
    assert params[-1]["reason"] == "incident 7 hotfix"
    _, client = served.client()
    r = client.post("/invocations", json={"policy_id": served.ids[0]})
    assert r.json()["model_version"] == "autoclaims-fraud/2"
    served.deploy("plain", "autoclaims-fraud@production")
    with served.ws.metadata.session() as s:
        last = s.scalars(sa.select(LineageAction).where(LineageAction.type == "serving.deploy")).all()[-1]
    assert last.parameters["override_approval"] is False


def test_weighted_variants_and_target_variant(served: Any) -> None:
    served.register(2)
    served.deploy(
        "ab",
        variants=[
            {"name": "a", "model": "autoclaims-fraud/1", "weight": 0.75},
            {"name": "b", "model": "autoclaims-fraud/2", "weight": 0.25},
        ],
    )
    _, client = served.client("ab", seed=3)
    seen = {"a": 0, "b": 0}
    pid = served.ids[5]
    for _ in range(200):
        body = client.post("/invocations", json={"policy_id": pid}).json()
        seen[body["variant"]] += 1
        version = 1 if body["variant"] == "a" else 2
        assert body["model_version"] == f"autoclaims-fraud/{version}"
        assert abs(body["probability"] - served.article.expected(pid, version)) < 1e-6
    assert 0.66 < seen["a"] / 200 < 0.84
    r = client.post("/invocations", json={"policy_id": pid}, headers={"X-Tide-Target-Variant": "b"})
    assert r.json()["variant"] == "b"
    r = client.post("/invocations", json={"policy_id": pid}, headers={"X-Tide-Target-Variant": "zzz"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "X-Tide-Target-Variant"


def _events(folder: Path) -> list[dict[str, Any]]:
    out = []
    for f in sorted(folder.rglob("*.jsonl")):
        out += [orjson.loads(line) for line in f.read_bytes().splitlines()]
    return out


def test_shadow_is_captured_never_returned(served: Any) -> None:
    served.register(2)
    served.deploy("fraud", "autoclaims-fraud@production", shadow="autoclaims-fraud/2")
    runtime, client = served.client()
    ids = served.ids[:20]
    answers = [client.post("/invocations", json={"policy_id": p}) for p in ids]
    assert all(r.json()["model_version"] == "autoclaims-fraud/1" for r in answers)
    assert runtime.capture is not None
    runtime.capture.flush()
    events = _events(runtime.capture.folder)
    live = {e["inference_id"]: e for e in events if not e["shadow"]}
    shadow = {e["inference_id"]: e for e in events if e["shadow"]}
    assert len(live) == len(shadow) == 20
    for r, pid in zip(answers, ids, strict=True):
        iid = r.json()["inference_id"]
        assert live[iid]["output"][0]["probability"] == r.json()["probability"]
        assert shadow[iid]["variant"] == "shadow" and shadow[iid]["model_version"] == "autoclaims-fraud/2"
        assert abs(shadow[iid]["output"][0]["probability"] - served.article.expected(pid, 2)) < 1e-6
        assert shadow[iid]["input"] == [{"policy_id": pid}]
        assert shadow[iid]["features"]["names"] == served.article.features
    r = client.post("/invocations", json={"policy_id": ids[0]}, headers={"X-Tide-Target-Variant": "shadow"})
    assert r.status_code == 422  # a shadow cannot be asked for


def test_alias_move_switches_models_without_refusing_a_request(served: Any) -> None:
    served.deploy(poll_seconds=0.05)
    _, client = served.client()
    pid = served.ids[9]
    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            r = client.post("/invocations", json={"policy_id": pid})
            results.append((r.status_code, r.json().get("model_version", r.text)))

    thread = threading.Thread(target=hammer)
    thread.start()
    time.sleep(0.3)
    served.register(2, alias="production")  # approve v2 and move @production to it
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (not results or results[-1][1] != "autoclaims-fraud/2"):
        time.sleep(0.05)
    time.sleep(0.2)
    stop.set()
    thread.join()
    assert {s for s, _ in results} == {200}, [r for r in results if r[0] != 200][:3]
    versions = [v for _, v in results]
    assert versions[0] == "autoclaims-fraud/1" and versions[-1] == "autoclaims-fraud/2"
    switch = versions.index("autoclaims-fraud/2")
    assert set(versions[switch:]) == {"autoclaims-fraud/2"}  # no flapping back
    assert 'tide_model_switches_total{endpoint="fraud",variant="primary"} 1' in client.get("/metrics").text
    assert client.get("/health").json()["models"] == {"primary": "autoclaims-fraud/2"}


def test_capture_samples_rotates_and_writes_parquet(served: Any) -> None:
    served.deploy(capture={"sampling_percent": 50, "rotate_mb": 0.004})
    runtime, client = served.client(seed=1)
    for pid in served.ids[:200]:
        assert client.post("/invocations", json={"policy_id": pid}).status_code == 200
    assert runtime.capture is not None
    runtime.capture.flush()
    events = _events(runtime.capture.folder)
    assert 70 < len(events) < 130  # about half
    assert len({e["inference_id"] for e in events}) == len(events)
    files = list(runtime.capture.folder.rglob("*.jsonl"))
    assert len(files) > 3  # rotated by size
    assert not list(runtime.capture.folder.rglob("*.part"))
    assert {"time", "endpoint", "variant", "model_version", "input", "features", "output"} <= set(events[0])
    served.deploy("pq", capture={"format": "parquet"})
    runtime2, client2 = served.client("pq")
    for pid in served.ids[:10]:
        client2.post("/invocations", json={"policy_id": pid})
    assert runtime2.capture is not None
    runtime2.capture.flush()
    (table_file,) = list(runtime2.capture.folder.rglob("*.parquet"))
    table = pq.read_table(table_file)
    assert table.num_rows == 10
    assert orjson.loads(table.column("output")[0].as_py())[0]["decision"] in (0, 1)


def test_a_full_capture_queue_drops_and_counts_never_blocks(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path, queue_size=2)  # thread not started: nothing drains the queue
    t0 = time.perf_counter()
    accepted = [writer.put({"i": i}) for i in range(1000)]
    assert time.perf_counter() - t0 < 0.5
    assert accepted.count(True) == 2 and writer.dropped == 998
    writer.flush()
    assert [orjson.loads(x) for f in tmp_path.rglob("*.jsonl") for x in f.read_bytes().splitlines()] == [
        {"i": 0},
        {"i": 1},
    ]


def test_dropped_captures_are_counted_in_metrics(served: Any) -> None:
    served.deploy(capture={"queue_size": 1})
    runtime, client = served.client()
    assert runtime.capture is not None
    runtime.capture.close()  # the writer stops: the queue fills and further events are dropped
    for pid in served.ids[:5]:
        assert client.post("/invocations", json={"policy_id": pid}).status_code == 200
    text = client.get("/metrics").text
    assert 'tide_capture_events_total{endpoint="fraud",outcome="dropped"}' in text


def test_api_keys_are_hashed_rate_limited_and_revocable(served: Any) -> None:
    served.deploy(require_api_key=True)
    key, info = served.endpoints.create_key(name="claims-app", endpoint="fraud", rate_per_second=0.5, burst=2)
    other, _ = served.endpoints.create_key(name="other", endpoint="elsewhere")
    with served.ws.metadata.session() as s:
        rows = s.scalars(sa.select(ApiKeyRow)).all()
        stored = [str(v) for r in rows for v in (r.key_id, r.key_sha256, r.name, r.endpoint)]
    assert hashlib.sha256(key.encode()).hexdigest() in stored
    assert not any(key in v or key.split("_")[-1] in v for v in stored)  # the key itself is nowhere
    runtime, client = served.client()
    body = {"policy_id": served.ids[0]}
    r = client.post("/invocations", json=body)
    assert r.status_code == 401 and r.json()["error"]["field"] == "Authorization"
    r = client.post("/invocations", json=body, headers={"Authorization": "Bearer tide_00000000_nope"})
    assert r.status_code == 401
    r = client.post("/invocations", json=body, headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 401  # a key of another endpoint
    auth = {"Authorization": f"Bearer {key}"}
    assert client.post("/invocations", json=body, headers=auth).status_code == 200
    assert client.post("/invocations", json=body, headers={"X-API-Key": key}).status_code == 200
    r = client.post("/invocations", json=body, headers=auth)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"]["code"] == "rate_limited" and info.key_id in r.json()["error"]["message"]
    served.endpoints.revoke_key(info.key_id)
    runtime.refresh()
    r = client.post("/invocations", json=body, headers=auth)
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    assert [k.key_id for k in served.endpoints.list_keys(endpoint="fraud")] == []
