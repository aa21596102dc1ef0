"""SQL over the offline store: group views, `_latest` views and the read-only sandbox."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pytest

from tideml.errors import Conflict, ValidationError
from tideml.features import FeatureStore
from tideml.workspace import Workspace


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeatureStore]:
    """One workspace for the module: these tests only read (or are refused)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("TIDE_") and not name.startswith("TIDE_TEST_"):
                mp.delenv(name)
        ws = Workspace.init(tmp_path_factory.mktemp("sql") / "ws")
        fs = FeatureStore(ws)
    frame = pl.DataFrame(
        {
            "policy_id": [1, 2, 3, 1],
            "event_time": [100.0, 100.0, 100.0, 200.0],
            "amount": [1.0, 2.0, 3.0, 10.0],
        }
    )
    fs.ingest("claims", frame, record_identifier="policy_id", event_time="event_time", progress=False)
    fs.delete_record("claims", 3, 150.0)
    yield fs
    fs.close()
    ws.close()


def test_group_view_is_the_log_and_latest_is_one_row_per_live_id(loaded: FeatureStore) -> None:
    log = loaded.query("select policy_id, amount, is_deleted from claims order by policy_id, event_time")
    assert log.rows() == [
        (1, 1.0, False),
        (1, 10.0, False),
        (2, 2.0, False),
        (3, 3.0, False),
        (3, None, True),
    ]
    latest = loaded.query("select policy_id, amount from claims_latest order by policy_id")
    assert latest.rows() == [(1, 10.0), (2, 2.0)]
    cols = loaded.query("select * from claims limit 0").columns
    assert cols == ["policy_id", "event_time", "amount", "write_time", "api_invocation_time", "is_deleted"]


def test_the_views_are_the_only_way_to_the_store_files(loaded: FeatureStore) -> None:
    """The views read Arrow datasets, so no file is open to the query, not even the store's own:
    a `COPY … TO` a partition file (even wrapped in EXPLAIN ANALYZE, which runs it) would overwrite it."""
    root = Path(loaded.offline.location("claims"))
    files = sorted(root.rglob("*.parquet"))
    before = {f: f.read_bytes() for f in files}
    with pytest.raises(ValidationError, match="outside the feature store"):
        loaded.query(f"select count(*) from read_parquet('{root}/**/*.parquet')")
    for sql in (
        f"EXPLAIN ANALYZE COPY (select 1 as a) TO '{files[0]}'",
        f"EXPLAIN ANALYZE (FORMAT json) COPY (select 1 as a) TO '{root}/evil.parquet'",
    ):
        with pytest.raises(ValidationError, match="COPY statements are not allowed"):
            loaded.query(sql)
    with loaded.sql_engine() as engine, pytest.raises(duckdb.PermissionException):  # below the check
        engine.con.execute(f"COPY (select 1 as a) TO '{files[0]}'")
    assert {f: f.read_bytes() for f in sorted(root.rglob("*.parquet"))} == before
    assert loaded.query("explain analyze select count(*) from claims").height >= 1


def test_the_sandbox_temp_folder_is_private(
    loaded: FeatureStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB allows its temp folder (default ./.tmp): the sandbox's is its own, gone after."""
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "secret.csv").write_text("password\nhunter2\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError, match="outside the feature store"):
        loaded.query("select * from read_csv('.tmp/secret.csv')")
    with loaded.sql_engine() as engine:
        private = Path(engine._tmp)
        assert private.is_dir() and not private.is_relative_to(tmp_path)
    assert not private.exists()


def test_explain_must_wrap_a_select_and_pivot_needs_its_values(loaded: FeatureStore) -> None:
    with pytest.raises(ValidationError, match="INSERT statements are not allowed"):
        loaded.query("EXPLAIN ANALYZE INSERT INTO claims SELECT * FROM claims")
    with pytest.raises(ValidationError, match="EXPLAIN must wrap exactly one SELECT"):
        loaded.query("EXPLAIN (select 1)")
    with pytest.raises(ValidationError) as err:
        loaded.query("PIVOT claims_latest ON policy_id USING sum(amount)")
    assert "IN (" in (err.value.fix or "")
    pivot = loaded.query(
        "PIVOT (select policy_id, amount from claims_latest) ON policy_id IN (1, 2) USING sum(amount)"
    )
    assert pivot.rows() == [(10.0, 2.0)]


@pytest.mark.parametrize(
    ("sql", "text"),
    [
        ("select * from read_csv('/etc/passwd')", "outside the feature store"),
        ("select * from read_text('/etc/hostname')", "outside the feature store"),
        ("select * from glob('/etc/*')", "outside the feature store"),
        ("COPY claims TO '/tmp/tideml-stolen.csv'", "COPY statements are not allowed"),
        ("COPY (select 1) TO 'x.csv'", "COPY statements are not allowed"),
        ("ATTACH '/tmp/tideml-evil.db' AS evil", "ATTACH statements are not allowed"),
        ("INSTALL httpfs", "not allowed"),
        ("LOAD httpfs", "not allowed"),
        ("CREATE TABLE t AS SELECT 1", "CREATE statements are not allowed"),
        ("DROP VIEW claims", "DROP statements are not allowed"),
        ("INSERT INTO claims SELECT * FROM claims", "INSERT statements are not allowed"),
        ("SET enable_external_access = true", "not allowed"),
        ("PRAGMA version", "PRAGMA statements are not allowed"),
        ("select 1; select 2", "expected one SQL statement"),
    ],
)
def test_sandbox_refuses_writes_and_outside_reads(loaded: FeatureStore, sql: str, text: str) -> None:
    with pytest.raises(ValidationError) as err:
        loaded.query(sql)
    assert text in str(err.value) and err.value.fix
    assert not Path("/tmp/tideml-stolen.csv").exists() and not Path("/tmp/tideml-evil.db").exists()


def test_sandbox_configuration_is_locked_even_below_the_statement_check(loaded: FeatureStore) -> None:
    """Layer 3: even SQL that bypassed the statement filter could not switch file access back on."""
    with loaded.sql_engine() as engine:
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            engine.con.execute("SET enable_external_access = true")
        with pytest.raises(duckdb.PermissionException):
            engine.con.execute("COPY (select 1) TO '/tmp/tideml-stolen.csv'")


def test_unknown_view_and_bad_syntax_are_clear(loaded: FeatureStore) -> None:
    with pytest.raises(ValidationError) as err:
        loaded.query("select * from clams")
    assert "claims_latest" in (err.value.fix or "")
    with pytest.raises(ValidationError, match="syntax"):
        loaded.query("selec 1")
    with pytest.raises(ValidationError) as err:
        loaded.query("select getenv('HOME')")
    assert "getenv" in str(err.value) and "function" in (err.value.fix or "")


def test_explain_reads_past_comments(loaded: FeatureStore) -> None:
    for sql in (
        "EXPLAIN /* why */ SELECT count(*) FROM claims",
        "EXPLAIN -- note\nSELECT 1",
        "/* c */ EXPLAIN ANALYZE (FORMAT json) /* c */ SELECT 1",
    ):
        assert loaded.query(sql).height >= 1
    with pytest.raises(ValidationError, match="COPY statements are not allowed"):
        loaded.query("EXPLAIN ANALYZE /* x */ COPY (select 1) TO 'x.csv'")


def test_files_gone_under_a_query_are_a_conflict_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace.init(tmp_path / "ws")
    fs = FeatureStore(ws)
    frame = pl.DataFrame({"id": [1, 2], "t": [100.0, 4000.0], "x": [1.0, 2.0]})  # two hour files
    fs.ingest("g", frame, record_identifier="id", event_time="t", progress=False)
    files = sorted(Path(fs.offline.location("g")).rglob("*.parquet"))
    with fs.sql_engine() as engine:  # opened, then a file goes away (as a compaction would do)
        files[0].rename(tmp_path / "moved.parquet")
        with pytest.raises(Conflict, match="run the query again"):
            engine.query("select count(*) from g")
        private = Path(engine._tmp)
    made: list[str] = []
    real_mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda **kw: made.append(real_mkdtemp(**kw)) or made[-1])
    with pytest.raises(Conflict, match="offline files changed"):  # gone before the engine opens
        fs.query("select count(*) from g")
    assert made and not [p for p in [private, *map(Path, made)] if p.exists()]
    fs.close()
    ws.close()
