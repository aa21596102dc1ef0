"""Batch transform (streaming Parquet) equals the record path; the `tide` commands of serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import tideml.cli.serving  # noqa: F401  -- registers the serving commands on the CLI app
from tideml.cli import app
from tideml.errors import PolicyViolation, ValidationError
from tideml.serving.batch import batch_transform


def _dataset(served: Any, path: Path, n: int | None = None) -> Path:
    art = served.article
    frame = pl.DataFrame(art.matrix[:n], schema=art.features, orient="row").with_columns(
        pl.Series("policy_id", art.policy_ids[:n]), pl.lit(0).alias("fraud")
    )
    frame.write_parquet(path)
    return path


def test_record_path_and_batch_path_give_the_same_probability(served: Any, tmp_path: Path) -> None:
    served.deploy()
    _, client = served.client()
    src = _dataset(served, tmp_path / "in.parquet")
    report = batch_transform(
        served.ws,
        "autoclaims-fraud@production",
        src,
        tmp_path / "out.parquet",
        batch_rows=777,
        progress=False,
    )
    assert report.rows == 5000 and report.batches == 7 and report.model_version == "autoclaims-fraud/1"
    out = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert list(out[0]) == ["policy_id", "probability", "decision", "model_version"]  # no label copied
    by_id = {row["policy_id"]: row for row in out}
    for pid in served.ids[:60]:
        record = client.post("/invocations", json={"policy_id": pid}).json()
        claim = client.post(
            "/invocations", json={"policy_id": pid, "claim": served.article.raw_claims[pid]}
        ).json()
        assert record["probability"] == by_id[pid]["probability"] == claim["probability"]
        assert record["decision"] == by_id[pid]["decision"]
    expected = [served.article.expected(p) for p in served.article.policy_ids[:200]]
    np.testing.assert_allclose([r["probability"] for r in out[:200]], expected, atol=1e-6)
    assert report.positives == sum(r["decision"] for r in out)


def test_batch_transform_refusals_leave_no_output(served: Any, tmp_path: Path) -> None:
    served.register(2, approve=False)
    src = _dataset(served, tmp_path / "in.parquet", 50)
    with pytest.raises(PolicyViolation):
        batch_transform(served.ws, "autoclaims-fraud/2", src, tmp_path / "out.parquet", progress=False)
    report = batch_transform(
        served.ws, "autoclaims-fraud/2", src, tmp_path / "out.parquet", override_approval=True, progress=False
    )
    assert report.rows == 50
    pl.read_parquet(src).drop(served.article.features[3]).write_parquet(tmp_path / "bad.parquet")
    with pytest.raises(ValidationError) as exc:
        batch_transform(
            served.ws, "autoclaims-fraud/1", tmp_path / "bad.parquet", tmp_path / "o2.parquet", progress=False
        )
    assert exc.value.field == served.article.features[3]
    assert not (tmp_path / "o2.parquet").exists()
    assert not list(tmp_path.glob(".o2.parquet*"))


def _run(args: list[str], ws: Any) -> Any:
    result = CliRunner().invoke(app, [*args, "--workspace", str(ws.root)])
    return result


def test_cli_endpoints_keys_and_batch_transform(served: Any, tmp_path: Path) -> None:
    ws = served.ws
    r = _run(["endpoints", "deploy", "fraud", "--model", "autoclaims-fraud@production", "--json"], ws)
    assert r.exit_code == 0, r.output
    assert orjson.loads(r.stdout)["variants"][0]["deployed_version"] == 1
    served.register(2, approve=False)
    r = _run(
        [
            "endpoints",
            "deploy",
            "ab",
            "--variant",
            "a=autoclaims-fraud/1:0.9",
            "--variant",
            "b=autoclaims-fraud/2:0.1",
        ],
        ws,
    )
    assert isinstance(r.exception, PolicyViolation)  # `tide` (main) prints it as one line, exit 7
    r = _run(["endpoints", "list", "--json"], ws)
    assert [e["name"] for e in orjson.loads(r.stdout)] == ["fraud"]
    r = _run(["endpoints", "describe", "fraud", "--json"], ws)
    described = orjson.loads(r.stdout)
    assert described["resolved"][0]["serves"] == "autoclaims-fraud/1"
    assert set(described["resolved"][0]["plan"]["groups"]) == {"claims", "customers"}
    assert _run(["endpoints", "describe", "fraud"], ws).exit_code == 0
    r = _run(["keys", "create", "--name", "app", "--endpoint", "fraud", "--rate", "5", "--json"], ws)
    key = orjson.loads(r.stdout)
    assert key["key"].startswith("tide_") and key["burst"] == 10
    r = _run(["keys", "list", "--json"], ws)
    listed = orjson.loads(r.stdout)
    assert [k["key_id"] for k in listed] == [key["key_id"]] and "key" not in listed[0]
    assert _run(["keys", "revoke", key["key_id"]], ws).exit_code == 0
    assert orjson.loads(_run(["keys", "list", "--json"], ws).stdout) == []
    src = _dataset(served, tmp_path / "in.parquet", 30)
    r = _run(
        [
            "batch-transform",
            "autoclaims-fraud@production",
            "-i",
            str(src),
            "-o",
            str(tmp_path / "o.parquet"),
            "--json",
        ],
        ws,
    )
    assert r.exit_code == 0, r.output
    assert orjson.loads(r.stdout)["rows"] == 30
    assert _run(["endpoints", "delete", "fraud"], ws).exit_code == 0
    assert orjson.loads(_run(["endpoints", "list", "--json"], ws).stdout) == []
