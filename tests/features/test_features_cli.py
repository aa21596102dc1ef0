"""`tide features …` as a user runs it: the article's files, SQLite and Redis, errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

import tideml.cli.features  # noqa: F401  -- registers the command group (the lead wires it in cli/__init__)
from tide_cli import tide
from tideml.features import FeatureStore
from tideml.workspace import Workspace


@pytest.fixture
def article_csvs(article_data: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The article's raw files plus the event_time column the wrangling flows will add."""
    claims = pl.read_csv(article_data / "claims.csv").with_columns(
        pl.lit(1_709_251_200.0).alias("event_time")
    )
    customers = pl.read_csv(article_data / "customers.csv").with_columns(
        pl.lit(1_709_251_200.0).alias("event_time")
    )
    paths = tmp_path / "claims.csv", tmp_path / "customers.csv"
    claims.write_csv(paths[0])
    customers.write_csv(paths[1])
    return paths


def test_article_flow_on_sqlite_and_redis(
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
    article_csvs: tuple[Path, Path],
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    claims, customers = article_csvs
    ws = str(tmp_path / "ws")
    assert tide(capfd, "init", ws)[0] == 0
    monkeypatch.setenv("TIDE_WORKSPACE", ws)
    for group, path in (("claims", claims), ("customers", customers)):
        code, out, err = tide(
            capfd,
            "features",
            "ingest",
            group,
            str(path),
            "--record-id",
            "policy_id",
            "--event-time",
            "event_time",
        )
        assert code == 0, err
        assert "ingested 5,000 rows" in out
    code, out, _ = tide(capfd, "features", "get", "customers", "42", "--json")
    record = json.loads(out)
    expected = pl.read_csv(customers).filter(pl.col("policy_id") == 42).row(0, named=True)
    assert record == expected
    code, out, _ = tide(capfd, "features", "query", "select count(*) from claims_latest")
    assert code == 0 and out.strip() == "5000"
    # the same commands against Redis, chosen by configuration only
    monkeypatch.setenv("TIDE_ONLINE_STORE_URL", f"redis://127.0.0.1:6379/15?prefix={redis_prefix}")
    code, _, err = tide(capfd, "features", "ingest", "customers", str(customers), "--no-progress")
    assert code == 0, err
    code, out, _ = tide(capfd, "features", "get", "customers", "42", "--json")
    assert json.loads(out) == expected
    monkeypatch.delenv("TIDE_ONLINE_STORE_URL")
    # ingested twice, still one row per policy
    code, out, err = tide(
        capfd,
        "features",
        "dataset",
        "-f",
        "claims.*",
        "-f",
        "customers.*",
        "--label",
        "claims.fraud",
        "--json",
    )
    assert code == 0, err
    manifest = json.loads(out)
    assert manifest["rows"] == 5000 and manifest["columns"][-1] == "fraud"
    code, out, _ = tide(capfd, "features", "compact", "customers", "--json")
    assert json.loads(out)["files_after"] == 1
    assert tide(capfd, "features", "query", "select count(*) from customers_latest")[1].strip() == "5000"


def test_group_management_commands(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ws = str(tmp_path / "ws")
    tide(capfd, "init", ws)
    spec = tmp_path / "g.yaml"
    spec.write_text(
        "record_identifier: id\nevent_time: ts\ndescription: test group\ntags: {team: fraud}\n"
        "features:\n  - {name: id, type: Integral, nullable: false}\n"
        "  - {name: ts, type: String, nullable: false}\n  - {name: x, type: Fractional}\n"
    )
    assert tide(capfd, "features", "create", "g", "--spec", str(spec), "-w", ws)[0] == 0
    code, out, _ = tide(
        capfd, "features", "update", "g", "--add-feature", "y:Integral", "--ttl", "7d", "-w", ws, "--json"
    )
    info = json.loads(out)
    assert info["schema_version"] == 2 and info["online"]["ttl"] == {"unit": "Days", "value": 7}
    code, out, _ = tide(
        capfd, "features", "search", "--tag", "team=fraud", "--feature", "y", "-w", ws, "--json"
    )
    assert [g["name"] for g in json.loads(out)] == ["g"]
    recent = time.time() - 3600  # inside the 7-day TTL
    record = json.dumps({"id": 1, "ts": recent, "x": 0.5, "y": 3})
    assert tide(capfd, "features", "put", "g", record, "-w", ws)[0] == 0
    assert json.loads(tide(capfd, "features", "get", "g", "1", "-w", ws, "--json")[1])["y"] == 3
    code, out, _ = tide(capfd, "features", "delete-record", "g", "1", "--event-time", "0", "-w", ws)
    assert code == 0 and "NOT deleted online: the stored record is newer" in out  # older than the record
    assert tide(capfd, "features", "get", "g", "1", "-w", ws)[0] == 0
    code, out, _ = tide(capfd, "features", "delete-record", "g", "1", "-w", ws)
    assert code == 0 and "g 1: soft-deleted online; a tombstone was written offline" in out
    code, _, err = tide(capfd, "features", "get", "g", "1", "-w", ws)
    assert code == 3 and "deleted or expired" in err
    assert json.loads(tide(capfd, "features", "list", "-w", ws, "--json")[1])[0]["name"] == "g"
    assert tide(capfd, "features", "delete", "g", "--yes", "-w", ws)[0] == 0
    assert json.loads(tide(capfd, "features", "list", "-w", ws, "--json")[1]) == []


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (("features", "get", "nope", "1"), 3, "no such feature group"),
        (("features", "query", "COPY claims TO '/tmp/x.csv'"), 2, "read-only"),
        (("features", "query", "select * from read_csv('/etc/passwd')"), 2, "outside the feature store"),
        (("features", "dataset", "-f", "claims.nope"), 2, "no feature 'nope'"),
        (("features", "ingest", "claims", "missing.csv"), 3, "no file"),
        (("features", "search", "--tag", "=x"), 2, "has no key"),
        (
            ("features", "dataset", "-f", "claims.x", "--entities", "nope.csv"),
            3,
            "dataset entities: entities",
        ),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(
    capfd: pytest.CaptureFixture[str], tmp_path: Path, args: tuple[str, ...], code: int, text: str
) -> None:
    ws = str(tmp_path / "ws")
    tide(capfd, "init", ws)
    frame = pl.DataFrame({"policy_id": [1], "event_time": [1.0], "x": [1]})
    frame.write_csv(tmp_path / "c.csv")
    tide(
        capfd,
        "features",
        "ingest",
        "claims",
        str(tmp_path / "c.csv"),
        "--record-id",
        "policy_id",
        "--event-time",
        "event_time",
        "-w",
        ws,
    )
    got, _, err = tide(capfd, *args, "-w", ws)
    assert got == code and text in err
    assert "Traceback" not in err and err.strip().count("\n") == 0


def test_real_process_wrong_type_message(tmp_path: Path) -> None:
    """A real `tide` process: a wrong type names row and feature, writes nothing, prints no traceback."""
    (tmp_path / "bad.csv").write_text("policy_id,event_time,age\n2,2024-01-01,41\n3,2024-01-01,forty\n")
    with Workspace.init(tmp_path / "ws") as ws:
        fs = FeatureStore(ws)
        good = pl.DataFrame({"policy_id": [1], "event_time": ["2024-01-01"], "age": [40]})
        fs.ingest("people", good, record_identifier="policy_id", event_time="event_time", progress=False)
        fs.close()
    code = "import sys; import tideml.cli.features; from tideml.cli import main; sys.argv[0] = 'tide'; main()"
    r = subprocess.run(
        [sys.executable, "-c", code, "features", "ingest", "people", "bad.csv", "--no-progress", "-w", "ws"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "feature age" in r.stderr and "row 1: 'forty'" in r.stderr and "nothing was written" in r.stderr
    with Workspace.open(tmp_path / "ws") as ws:
        assert FeatureStore(ws).query("select count(*) from people").item() == 1
