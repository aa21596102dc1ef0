"""The request path over HTTP (in-process ASGI): every request form, explanations, headers, bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pytest
import xgboost as xgb


def _features(served: Any, pid: int) -> dict[str, float]:
    row = served.article.row(pid)
    return {f: float(v) for f, v in zip(served.article.features, row, strict=True)}


def test_policy_id_claim_and_features_give_the_model_s_probability(served: Any) -> None:
    served.deploy()
    _, client = served.client()
    for pid in served.ids[:25]:
        want = served.article.expected(pid)
        by_id = client.post("/invocations", json={"policy_id": pid})
        assert by_id.status_code == 200, by_id.text
        body = by_id.json()
        assert math.isclose(body["probability"], want, abs_tol=1e-6)
        assert body["decision"] == int(body["probability"] >= 0.25)
        assert body["threshold"] == 0.25
        assert body["model_version"] == "autoclaims-fraud/1"
        assert body["variant"] == "primary"
        raw = dict(served.article.raw_claims[pid])
        by_claim = client.post("/invocations", json={"policy_id": pid, "claim": raw})
        assert by_claim.status_code == 200, by_claim.text
        assert by_claim.json()["probability"] == body["probability"]
        by_features = client.post("/invocations", json={"features": _features(served, pid)})
        assert by_features.status_code == 200, by_features.text
        assert by_features.json()["probability"] == body["probability"]


def test_a_claim_for_a_policy_without_online_claims_uses_the_flow(served: Any) -> None:
    """A new claim (not in the claims group) is transformed; the customer's features come online."""
    served.deploy()
    _, client = served.client()
    pid = served.ids[7]
    raw = dict(served.article.raw_claims[pid])
    raw["num_injuries"] = 3
    raw["incident_severity"] = "Totaled"
    raw["fraud"] = 1  # the label in a raw claim is never read
    got = client.post("/invocations", json={"policy_id": pid, "claim": raw}).json()["probability"]
    features = _features(served, pid)
    features["num_injuries"] = 3.0
    features["incident_severity"] = 2.0
    assert math.isclose(
        got, client.post("/invocations", json={"features": features}).json()["probability"], abs_tol=0
    )
    raw.pop("fraud")
    assert client.post("/invocations", json={"policy_id": pid, "claim": raw}).json()["probability"] == got


def test_lists_and_csv(served: Any) -> None:
    served.deploy()
    _, client = served.client()
    ids = served.ids[:40]
    many = client.post("/invocations", json=[{"policy_id": p} for p in ids])
    assert many.status_code == 200
    preds = many.json()["predictions"]
    assert [round(p["probability"], 6) for p in preds] == [round(served.article.expected(p), 6) for p in ids]
    rows = [served.article.row(p) for p in ids[:5]]
    text = "\n".join(",".join(repr(float(v)) for v in r) for r in rows)
    csv = client.post("/invocations", content=text, headers={"Content-Type": "text/csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    values = [float(x) for x in csv.text.split()]
    np.testing.assert_allclose(values, [served.article.expected(p) for p in ids[:5]], atol=1e-6)
    header = ",".join(served.article.features) + "\n" + text
    assert client.post("/invocations", content=header, headers={"Content-Type": "text/csv"}).text == csv.text
    as_json = client.post(
        "/invocations", content=text, headers={"Content-Type": "text/csv", "Accept": "application/json"}
    ).json()
    assert [p["probability"] for p in as_json["predictions"]] == values


def test_explanations_are_xgboost_treeshap(served: Any) -> None:
    served.deploy()
    _, client = served.client()
    pid = served.ids[11]
    r = client.post("/invocations?explain=true&top_k=4", json={"policy_id": pid})
    assert r.status_code == 200, r.text
    reasons = r.json()["reasons"]
    assert len(reasons) == 4
    booster = served.article.models[0].booster
    dm = xgb.DMatrix(served.article.row(pid)[None, :], feature_names=served.article.features)
    contribs = booster.predict(dm, pred_contribs=True)[0]
    by_name = dict(zip(served.article.features, contribs[:-1].tolist(), strict=True))
    top = sorted(by_name.items(), key=lambda kv: -abs(kv[1]))[:4]
    assert [x["feature"] for x in reasons] == [name for name, _ in top]
    for x in reasons:
        assert math.isclose(x["contribution"], by_name[x["feature"]], abs_tol=1e-5)
        assert x["value"] == pytest.approx(_features(served, pid)[x["feature"]])
    margin = float(contribs.sum())
    assert math.isclose(1 / (1 + math.exp(-margin)), r.json()["probability"], abs_tol=1e-5)
    assert "reasons" not in client.post("/invocations", json={"policy_id": pid}).json()


def test_headers_report_version_variant_timing_and_inference_id(served: Any) -> None:
    served.deploy()
    _, client = served.client()
    r = client.post(
        "/invocations", json={"policy_id": served.ids[0]}, headers={"X-Tide-Inference-Id": "claim-0001"}
    )
    assert r.headers["X-Tide-Model-Version"] == "autoclaims-fraud/1"
    assert r.headers["X-Tide-Variant"] == "primary"
    assert r.headers["X-Tide-Inference-Id"] == "claim-0001" == r.json()["inference_id"]
    timing = dict(part.strip().split(";dur=") for part in r.headers["Server-Timing"].split(","))
    assert {"lookup", "transform", "model", "total"} <= set(timing)
    assert all(float(v) >= 0 for v in timing.values())


BAD: list[tuple[str, Any, dict[str, str], int, str | None]] = [
    ("malformed json", b'{"policy_id": ', {}, 400, "body"),
    ("empty body", b"", {}, 400, "body"),
    ("not an object", b"42", {}, 422, "body"),
    ("empty list", b"[]", {}, 422, "body"),
    ("list of non-objects", b"[1, 2]", {}, 422, "[0]"),
    ("missing id", b"{}", {}, 422, "policy_id"),
    ("extra field", b'{"policy_id": 1, "colour": "red"}', {}, 422, "colour"),
    ("unknown field only", b'{"colour": "red"}', {}, 422, "colour"),
    ("id of the wrong type", b'{"policy_id": "abc"}', {}, 422, "policy_id"),
    ("id as a float", b'{"policy_id": 1.5}', {}, 422, "policy_id"),
    ("id as a boolean", b'{"policy_id": true}', {}, 422, "policy_id"),
    ("unknown policy", b'{"policy_id": 987654}', {}, 404, "policy_id"),
    ("claim not an object", b'{"policy_id": 1, "claim": 3}', {}, 422, "claim"),
    ("claim with a wrong type", b'{"policy_id": 1, "claim": {"num_injuries": "many"}}', {}, 422, None),
    ("features not an object", b'{"features": [1]}', {}, 422, "features"),
    ("features with a neighbour", b'{"features": {}, "policy_id": 1}', {}, 422, "policy_id"),
    ("second record bad", b'[{"policy_id": 1}, {"policy_id": null}]', {}, 422, "[1].policy_id"),
    ("csv with a word", b"1,2,x", {"Content-Type": "text/csv"}, 422, None),
    ("csv too short", b"1,2,3", {"Content-Type": "text/csv"}, 422, "row 1"),
    ("unsupported type", b"<xml/>", {"Content-Type": "application/xml"}, 415, "Content-Type"),
    ("bad content length", b"{}", {"Content-Length": "abc"}, 400, None),
]


def test_bad_input_is_a_4xx_naming_the_field(served: Any) -> None:
    served.deploy()
    _, client = served.client()
    wrong = []
    for case, body, headers, status, field in BAD:
        r = client.post("/invocations", content=body, headers={"Content-Type": "application/json", **headers})
        err = r.json().get("error", {}) if r.headers["content-type"] == "application/json" else {}
        named = err.get("field") == field if field is not None else bool(err.get("field"))
        if r.status_code != status or err.get("status") != status or not err.get("message") or not named:
            wrong.append((case, r.status_code, r.text[:200]))
    assert not wrong, wrong


def test_feature_payload_errors_name_the_feature(served: Any) -> None:
    served.deploy()
    _, client = served.client()
    feats = _features(served, served.ids[0])
    first = served.article.features[0]
    missing = {k: v for k, v in feats.items() if k != first}
    r = client.post("/invocations", json={"features": missing})
    assert r.status_code == 422 and r.json()["error"]["field"] == f"features.{first}"
    r = client.post("/invocations", json={"features": {**feats, "fraud": 1}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "features.fraud"
    r = client.post("/invocations", json={"features": {**feats, first: "high"}})
    assert r.status_code == 422 and r.json()["error"]["field"] == f"features.{first}"
    r = client.post("/invocations", content=orjson.dumps({"features": {**feats, first: 1e300}}))
    assert r.status_code == 422 and "out of range" in r.json()["error"]["message"]
    nulls = {**feats, first: None}
    assert client.post("/invocations", json={"features": nulls}).status_code == 200  # null = missing value


def test_size_and_batch_limits_are_413(served: Any) -> None:
    served.deploy(limits={"max_body_bytes": 4096, "max_batch": 10})
    _, client = served.client()
    r = client.post("/invocations", json=[{"policy_id": p} for p in served.ids[:11]])
    assert r.status_code == 413 and r.json()["error"]["code"] == "batch_too_large"
    big = b'{"policy_id": 1, "pad": "' + b"x" * 5000 + b'"}'
    r = client.post("/invocations", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["field"] == "body"

    def chunks() -> Any:  # no Content-Length: the limit is enforced while streaming
        for _ in range(10):
            yield b" " * 1000

    r = client.post("/invocations", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    r = client.post("/invocations?explain=true&top_k=999", json={"policy_id": served.ids[0]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "top_k"


def test_health_ready_metrics_model_and_openapi(served: Any) -> None:
    served.deploy()
    _, client = served.client()
    assert client.get("/ping").status_code == 200
    assert client.get("/health").json()["models"] == {"primary": "autoclaims-fraud/1"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["online_store"] == "ok"
    for pid in served.ids[:3]:
        client.post("/invocations", json={"policy_id": pid})
    client.post("/invocations", json={"policy_id": "x"})
    text = client.get("/metrics").text
    assert 'tide_requests_total{endpoint="fraud",variant="primary",status="200"} 3' in text
    assert 'tide_requests_total{endpoint="fraud",variant="-",status="422"} 1' in text
    assert 'tide_model_info{endpoint="fraud",variant="primary",model_version="autoclaims-fraud/1"' in text
    assert "tide_stage_duration_seconds_bucket" in text
    model = client.get("/model").json()["variants"][0]
    assert model["features"] == served.article.features and model["threshold"] == 0.25
    assert set(model["online_groups"]) == {"claims", "customers"}
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/invocations"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "text/csv"}
    record = body["application/json"]["schema"]["oneOf"][0]["oneOf"]
    assert record[0]["required"] == ["policy_id"]
    assert record[2]["properties"]["features"]["required"] == served.article.features
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.get("/invocations").status_code == 405
