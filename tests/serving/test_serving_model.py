"""Loading a registered model for serving: UBJSON without xgboost, every link checked, feature plans."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
import xgboost as xgb

from tideml.errors import IntegrityError, ValidationError
from tideml.serving.model import load_serving_model
from tideml.serving.sources import GroupInfo, plan_features
from tideml.serving.ubjson import decode_ubjson


def _same(a: Any, b: Any, path: str = "") -> None:
    if isinstance(b, dict):
        assert set(a) == set(b), path
        for k in b:
            _same(a[k], b[k], f"{path}/{k}")
    elif isinstance(b, list):
        assert len(a) == len(b), path
        if isinstance(a, np.ndarray):
            np.testing.assert_allclose(a.astype(float), np.asarray(b, dtype=float), rtol=1e-6, err_msg=path)
        else:
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                _same(x, y, f"{path}[{i}]")
    elif isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-6), path
    else:
        assert a == b, path


def test_ubjson_decodes_to_xgboost_s_own_json(article_model: Any) -> None:
    booster = article_model.models[0].booster
    ubj = bytes(booster.save_raw("ubj"))
    _same(decode_ubjson(ubj), orjson.loads(bytes(booster.save_raw("json"))))
    for bad in (ubj[:-7], ubj + b"}", b"{L\x00\x00\x00\x00\x00\x00\x00\x05lea", b"\x00"):
        with pytest.raises(IntegrityError, match="not a valid UBJSON model"):
            decode_ubjson(bad)


def test_loaded_model_matches_xgboost_on_the_article_data(served: Any) -> None:
    art = served.article
    model = load_serving_model(served.ws.artifacts, group="g", version=1, model_sha256=served.spec_sha[0])
    assert model.features == tuple(art.features) and model.entity == "policy_id" and model.label == "fraud"
    expected = art.models[0].booster.predict(xgb.DMatrix(art.matrix, feature_names=art.features))
    np.testing.assert_allclose(model.predict_matrix(art.matrix), expected, atol=1e-6, rtol=0)
    rows = [[float(v) for v in r] for r in art.matrix[:300]]
    np.testing.assert_allclose(model.predict_rows(rows), expected[:300], atol=1e-6, rtol=0)
    np.testing.assert_allclose(model.predict_rows(rows[:5]), expected[:5], atol=1e-6, rtol=0)


def _put_spec(served: Any, **changes: Any) -> str:
    spec = orjson.loads(served.article.models[0].spec.to_json_bytes())
    spec.update(changes)
    return str(served.ws.put_artifact(orjson.dumps(spec), "application/json").sha256)


def test_corrupt_models_are_refused_with_a_clear_message(served: Any) -> None:
    ws = served.ws

    def load(sha: str) -> Any:
        return load_serving_model(ws.artifacts, group="g", version=9, model_sha256=sha)

    garbage = ws.put_artifact(b"{L\x00\x00\x00\x00\x00\x00\x00\x03abc", "application/ubjson").sha256
    with pytest.raises(IntegrityError, match="not a valid UBJSON model"):
        load(_put_spec(served, booster_sha256=garbage))
    with pytest.raises(IntegrityError, match="missing from the artifact store"):
        load(_put_spec(served, booster_sha256="0" * 64))
    with pytest.raises(IntegrityError, match="unknown model format"):
        load(_put_spec(served, format="other/2"))
    with pytest.raises(IntegrityError, match=r"the booster has \d+ features, the spec lists \d+"):
        load(
            _put_spec(
                served, features=orjson.loads(served.article.models[0].spec.to_json_bytes())["features"][:-1]
            )
        )
    feats = orjson.loads(served.article.models[0].spec.to_json_bytes())["features"]
    feats[0], feats[1] = feats[1], feats[0]
    with pytest.raises(IntegrityError, match="feature names differ"):
        load(_put_spec(served, features=feats))
    # Bytes changed on disk after they were stored: the artifact store's hash check catches it.
    stored = ws.artifacts.local_path(served.spec_sha[0], verify=False)
    booster_sha = orjson.loads(stored.read_bytes())["booster_sha256"]
    path = ws.artifacts.local_path(booster_sha, verify=False)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        load(served.spec_sha[0])


def test_feature_plans() -> None:
    claims = GroupInfo(
        "claims", "policy_id", True, frozenset({"policy_id", "event_time", "a", "b"}), "event_time"
    )
    customers = GroupInfo(
        "customers", "policy_id", True, frozenset({"policy_id", "event_time", "c"}), "event_time"
    )
    other = GroupInfo("agents", "agent_id", False, frozenset({"agent_id", "d"}))
    plan = plan_features(
        ["a", "c", "customers__c", "d", "b"], entity="policy_id", groups=[claims, customers, other]
    )
    assert {s.group: s.columns for s in plan.sources} == {
        "claims": ((0, "a"), (4, "b")),
        "customers": ((1, "c"), (2, "c")),
    }
    assert plan.uncovered == ("d",)  # held only by a group keyed by another entity
    both = GroupInfo("copy", "policy_id", True, frozenset({"policy_id", "a"}))
    with pytest.raises(ValidationError, match="several online groups") as exc:
        plan_features(["a"], entity="policy_id", groups=[claims, both])
    assert exc.value.field == "feature_groups"
    assert plan_features(["a"], entity=None, groups=[claims]).uncovered == ("a",)
