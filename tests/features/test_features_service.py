"""FeatureStore service: the catalog on SQLite and PostgreSQL, records API on every online backend,
datasets with manifest and lineage, and the article's data."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from tideml.artifacts import HashStopped
from tideml.errors import Conflict, NotFound, ValidationError
from tideml.features import FeatureDefinition, FeatureStore, FeatureType
from tideml.features import dataset as dataset_module
from tideml.meta.models import LineageAction
from tideml.workspace import Workspace


def customers_spec(name: str = "customers", ttl: dict[str, object] | None = None) -> dict[str, object]:
    return {
        "name": name,
        "record_identifier": "policy_id",
        "event_time": "event_time",
        "description": "customer profile per policy",
        "tags": {"team": "fraud", "pii": "no"},
        "features": [
            {"name": "policy_id", "type": "Integral", "nullable": False},
            {"name": "event_time", "type": "String", "nullable": False},
            {"name": "customer_age", "type": "Integral", "description": "age in years"},
            {"name": "policy_state", "type": "String"},
        ],
        "online": {"ttl": ttl},
    }


@pytest.fixture
def catalog_fs(metadata_url: str, tmp_path: Path) -> FeatureStore:
    ws = Workspace.init(tmp_path / "ws")
    (ws.root / "tide.toml").write_text(f'[metadata]\nurl = "{metadata_url}"\n')
    ws = Workspace.open(ws.root)
    return FeatureStore(ws)


def test_catalog_create_describe_update_search_delete(catalog_fs: FeatureStore) -> None:
    fs = catalog_fs
    fs.create_group(customers_spec())
    fs.create_group({**customers_spec("claims"), "tags": {"team": "claims"}, "description": "claims"})
    with pytest.raises(Conflict, match="case-insensitive"):
        fs.create_group(customers_spec("Customers"))
    info = fs.describe_group("customers")
    assert info["schema_version"] == 1 and info["record_identifier"] == "policy_id"
    assert info["offline_location"].endswith("/customers")
    assert [g["name"] for g in fs.list_groups()] == ["claims", "customers"]
    assert [g["name"] for g in fs.search("profile")] == ["customers"]
    assert [g["name"] for g in fs.search(tags=["team=fraud"])] == ["customers"]
    assert [g["name"] for g in fs.search(tags=["team"])] == ["claims", "customers"]
    assert [g["name"] for g in fs.search(feature="AGE", tags=["pii"])] == ["customers"]
    spec = fs.update_group(
        "customers", add_features=[FeatureDefinition(name="auto_year", type=FeatureType.INTEGRAL)], ttl="7d"
    )
    assert spec.feature_names[-1] == "auto_year" and spec.ttl_seconds == 7 * 86400
    assert fs.describe_group("customers")["schema_version"] == 2
    assert [g["name"] for g in fs.search(feature="auto_year")] == ["customers"]
    f = fs.update_feature_metadata("customers", "customer_age", parameters={"unit": "years"})
    assert f.parameters == {"unit": "years"} and f.description == "age in years"
    with pytest.raises(ValidationError, match="no feature 'nope'"):
        fs.update_feature_metadata("customers", "nope", description="x")
    fs.delete_group("customers")
    with pytest.raises(NotFound, match="tide features list"):
        fs.describe_group("customers")
    assert [g["name"] for g in fs.list_groups()] == ["claims"]
    fs.create_group(customers_spec())  # the name is free again, with an empty history
    assert fs.describe_group("customers")["offline_files"] == 0


def test_records_api_on_every_backend(ws: Workspace, online_url: str) -> None:
    fs = FeatureStore(ws, online_url=online_url)
    fs.create_group(customers_spec())
    fs.create_group({**customers_spec("other"), "tags": {}})
    g = fs.group("customers")
    g.put_record(
        {"policy_id": 1, "event_time": "2024-01-02T00:00:00Z", "customer_age": 40, "policy_state": "CA"}
    )
    g.put_record(
        [
            {"FeatureName": "policy_id", "ValueAsString": "1"},
            {"FeatureName": "event_time", "ValueAsString": "2024-01-01T00:00:00Z"},  # older: ignored online
            {"FeatureName": "customer_age", "ValueAsString": "39"},
        ]
    )
    assert g.get_record(1) == {
        "policy_id": 1,
        "event_time": "2024-01-02T00:00:00Z",
        "customer_age": 40,
        "policy_state": "CA",
    }
    assert g.get_record("1", ["customer_age"]) == {"customer_age": 40}
    assert g.get_record(2) is None
    with pytest.raises(ValidationError, match="no feature 'age'"):
        g.get_record(1, ["age"])
    with pytest.raises(ValidationError, match="not an integer record identifier"):
        g.get_record("abc")
    fs.put_record("other", {"policy_id": 1, "event_time": "2024-01-01", "customer_age": 7})
    batch = fs.batch_get_record(
        [
            {"group": "customers", "ids": [1, 2], "feature_names": ["customer_age"]},
            {"group": "other", "ids": [1]},
        ]
    )
    assert [(r["group"], r["record"].get("customer_age")) for r in batch.records] == [
        ("customers", 40),
        ("other", 7),
    ]
    assert batch.missing == [("customers", "2")]
    kept = g.delete_record(1, "2024-01-01T12:00:00Z")  # older than the stored record: stays online
    assert (kept.online, kept.offline) == ("newer-kept", True) and g.get_record(1) is not None
    assert g.delete_record(1, "2024-01-03T00:00:00Z").online == "deleted"  # soft delete
    assert g.get_record(1) is None
    g.put_record({"policy_id": 1, "event_time": "2024-01-04T00:00:00Z", "customer_age": 41})
    assert g.get_record(1, ["customer_age"]) == {"customer_age": 41}
    with pytest.raises(ValidationError, match=r"later event time \(2024-01-04T00:00:00Z\)"):
        g.delete_record(1, "2024-01-03T00:00:00Z", mode="hard")
    assert g.delete_record(1, "2024-01-05T00:00:00Z", mode="hard").online == "deleted"
    assert g.get_record(1) is None
    assert g.delete_record(1, "2024-01-06T00:00:00Z", mode="hard").online == "absent"
    # the offline log holds every write and every tombstone
    log = fs.query("select customer_age, is_deleted from customers order by event_time, api_invocation_time")
    assert log.rows() == [
        (39, False),
        (None, True),
        (40, False),
        (None, True),
        (41, False),
        (None, True),
        (None, True),
    ]
    assert fs.query("select count(*) from customers_latest").item() == 0
    fs.close()


def test_ttl_enforced_on_online_reads(ws: Workspace, online_url: str) -> None:
    fs = FeatureStore(ws, online_url=online_url)
    fs.create_group(customers_spec(ttl={"unit": "Seconds", "value": 60}))
    now = time.time()
    fs.put_record("customers", {"policy_id": 1, "event_time": now - 120, "customer_age": 1})
    fs.put_record("customers", {"policy_id": 2, "event_time": now, "customer_age": 2})
    assert fs.get_record("customers", 1) is None  # expired at event time + 60 s
    assert fs.get_record("customers", 2, ["customer_age"]) == {"customer_age": 2}
    assert fs.record_expiry("customers", 2) is not None
    fs.put_record("customers", {"policy_id": 3, "event_time": now - 120, "customer_age": 3}, ttl="1h")
    assert fs.get_record("customers", 3) is not None  # a per-put TTL overrides the group's
    fs.close()


def article_frames(article_data: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    claims = pl.read_csv(article_data / "claims.csv")
    customers = pl.read_csv(article_data / "customers.csv")
    t = pl.lit("2024-03-01T00:00:00Z")
    return claims.with_columns(t.alias("event_time")), customers.with_columns(t.alias("event_time"))


def test_article_data_twice_gives_one_row_per_policy_with_label_group(
    fs: FeatureStore, article_data: Path, tmp_path: Path
) -> None:
    claims, customers = article_frames(article_data)
    labels = claims.select("policy_id", "event_time", "fraud")
    for _ in range(2):  # the article's offline store held two ingestions; its join multiplied rows 4x
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
    labels_path = tmp_path / "labels.csv"
    labels.write_csv(labels_path)
    fs.create_group_from_frame(
        "claim_labels", labels, record_identifier="policy_id", event_time="event_time", online=False
    )
    fs.ingest("claim_labels", labels_path, progress=False)
    assert fs.query("select count(*) from claims").item() == 10_000
    assert fs.query("select count(*) from claims_latest").item() == 5000
    with pytest.raises(ValidationError, match="no online store"):
        fs.get_record("claim_labels", 1)  # the label is never served online
    result = fs.dataset(
        ["claims.*", "customers.*"], at="2024-06-01", label="claim_labels.fraud", name="fraud-train"
    )
    frame = result.frame
    assert frame.height == 5000 and frame["policy_id"].n_unique() == 5000
    claim_cols = [c for c in claims.columns if c not in ("policy_id", "event_time", "fraud")]
    cust_cols = [c for c in customers.columns if c not in ("policy_id", "event_time")]
    assert frame.columns == ["policy_id", *claim_cols, *cust_cols, "fraud"]  # request order, label last
    joined = claims.join(customers.drop("event_time"), on="policy_id").sort("policy_id")
    assert frame.sort("policy_id")["fraud"].to_list() == joined["fraud"].to_list()
    assert frame.sort("policy_id")["customer_age"].to_list() == joined["customer_age"].to_list()
    # the artifact is the Parquet file, its manifest names groups, versions, rows and hash
    data = fs.ws.artifacts.get(result.artifact.sha256)
    assert hashlib.sha256(data).hexdigest() == result.manifest["sha256"]
    assert result.manifest["rows"] == 5000
    assert [(g["name"], g["schema_version"]) for g in result.manifest["groups"]] == [
        ("claims", 1),
        ("customers", 1),
        ("claim_labels", 1),
    ]
    assert fs.datasets("fraud-train")[0]["sha256"] == result.artifact.sha256
    # same request, same bytes
    again = fs.dataset(["claims.*", "customers.*"], at="2024-06-01", label="claim_labels.fraud")
    assert again.artifact.sha256 == result.artifact.sha256
    # lineage: feature groups -> dataset, and inputs -> feature groups
    ds_id = fs.ws.lineage.find_artifact(sha256=result.artifact.sha256)
    upstream = fs.ws.lineage.graph(ds_id, "upstream")
    names = {n.name for n in upstream.nodes if getattr(n, "name", None)}
    assert {"claims", "customers", "claim_labels", "labels.csv"} <= names
    with fs.ws.metadata.session() as s:
        kinds = set(s.scalars(sa.select(LineageAction.type)).all())
    assert {"features.ingest", "features.dataset", "features.create_group"} <= kinds


def test_dataset_with_entities_and_clear_errors(fs: FeatureStore, article_data: Path) -> None:
    _, customers = article_frames(article_data)
    fs.ingest("customers", customers, record_identifier="policy_id", event_time="event_time", progress=False)
    later = customers.with_columns(
        pl.lit("2024-04-01T00:00:00Z").alias("event_time"), (pl.col("customer_age") + 1).alias("customer_age")
    )
    fs.ingest("customers", later, progress=False)
    ent = pl.DataFrame({"policy_id": [1, 1, 1], "when": ["2024-02-01", "2024-03-15", "2024-05-01"]})
    result = fs.dataset(["customers.customer_age"], entities=ent, entity_time="when")
    age = customers.filter(pl.col("policy_id") == 1)["customer_age"].item()
    assert result.frame["customer_age"].to_list() == [None, age, age + 1]
    assert result.manifest["joins"] == {"customers": "sorted-keys"}  # two ingests, disjoint times
    with pytest.raises(NotFound, match="no such feature group"):
        fs.dataset(["nope.x"], entities=ent, entity_time="when")
    with pytest.raises(ValidationError, match="no feature 'age'"):
        fs.dataset(["customers.age"], entities=ent, entity_time="when")
    with pytest.raises(ValidationError, match="no column 'policy_id' to join group customers"):
        fs.dataset(
            ["customers.customer_age"], entities=ent.rename({"policy_id": "policy"}), entity_time="when"
        )
    with pytest.raises(ValidationError, match="full_feature_names"):
        fs.dataset(["customers.event_time"], entities=ent.rename({"when": "event_time"}))
    with pytest.raises(ValidationError, match="mode='all'"):
        fs.dataset(["customers.customer_age"], entities=ent, entity_time="when", include_duplicates=True)
    full = fs.dataset(["customers.event_time"], entities=ent, entity_time="when", full_feature_names=True)
    assert full.frame.columns == ["policy_id", "when", "customers__event_time"]


def test_dataset_request_is_checked_before_any_work(fs: FeatureStore, tmp_path: Path) -> None:
    for group, key, col, values in (
        ("notes", "note_id", "x", [0.5, 1.5]),
        ("claims", "policy_id", "amount", [10.0, 20.0]),
    ):
        frame = pl.DataFrame({key: [1, 2], "t": [1, 1], col: values})
        fs.ingest(group, frame, record_identifier=key, event_time="t", progress=False)
    with pytest.raises(ValidationError) as err:  # claims would silently be joined on note ids
        fs.dataset(["notes.x", "claims.amount"])
    assert "keyed by 'policy_id'" in str(err.value) and err.value.field == "entity_keys"
    joined = fs.dataset(["notes.x", "claims.amount"], entity_keys={"claims": "note_id"})
    assert joined.frame.rows() == [(1, 0.5, 10.0), (2, 1.5, 20.0)]
    before = len(fs.datasets())
    cases = [
        ({"name": "bad name!"}, "name", "not a valid dataset name"),
        ({"output": tmp_path / "x.csv"}, "output", "must end in .parquet"),
        ({"event_time_range": ("2027-01-01", "2026-01-01")}, "event_time_range", "ends before it starts"),
        ({"output": tmp_path / "missing" / "x.parquet"}, "output", "does not exist"),
    ]
    for kwargs, field, text in cases:
        with pytest.raises(ValidationError) as err:
            fs.dataset(["notes.x"], **kwargs)  # type: ignore[arg-type]
        assert text in str(err.value) and err.value.field == field
    with pytest.raises(NotFound) as missing:
        fs.dataset(["notes.x"], entities=tmp_path / "nope.csv")
    assert (missing.value.obj, missing.value.field) == ("dataset entities", "entities")
    assert len(fs.datasets()) == before and not (tmp_path / "missing").exists()
    done = fs.dataset(["notes.x"], output=tmp_path / "x.parquet")
    assert pl.read_parquet(tmp_path / "x.parquet").equals(done.frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws", "x.parquet"]  # no probe or part left


@pytest.mark.parametrize("one_pass_rows", [2_000_000, 0])
def test_dataset_reads_files_that_predate_an_added_feature(
    fs: FeatureStore, monkeypatch: pytest.MonkeyPatch, one_pass_rows: int
) -> None:
    """Rows written before `update_group(add_features=…)` read the new feature as null, in every mode
    (the entity join reads the files with polars, in one pass or two, the other modes with DuckDB)."""
    monkeypatch.setattr(dataset_module, "_ONE_PASS_ROWS", one_pass_rows)
    fs.create_group(customers_spec())
    empty = fs.dataset(["customers.customer_age"], entities=pl.DataFrame({"policy_id": [1]})).frame
    assert empty.rows() == [(1, None)]  # a group without files: every feature null
    fs.put_record("customers", {"policy_id": 1, "event_time": "2024-01-01", "customer_age": 30})
    fs.put_record("customers", {"policy_id": 2, "event_time": "2024-01-01", "policy_state": "OH"})
    fs.update_group(
        "customers", add_features=[FeatureDefinition(name="auto_year", type=FeatureType.INTEGRAL)]
    )
    fs.put_record(
        "customers",
        {"policy_id": 2, "event_time": "2024-02-01", "policy_state": "CA", "auto_year": 2019},
    )
    ent = pl.DataFrame(
        {"policy_id": [2, 1, 2, 3], "when": ["2024-01-15", "2024-03-01", "2024-03-01", "2024-03-01"]}
    )
    wanted = ["customers.policy_state", "customers.auto_year", "customers.customer_age"]
    keyed = fs.dataset(wanted, entities=ent, entity_time="when").frame
    assert keyed.rows() == [
        (2, "2024-01-15", "OH", None, None),
        (1, "2024-03-01", None, None, 30),
        (2, "2024-03-01", "CA", 2019, None),
        (3, "2024-03-01", None, None, None),
    ]
    assert keyed.schema["auto_year"] == pl.Int64 and keyed.schema["policy_state"] == pl.String
    every = fs.dataset(wanted, entities=ent, entity_time="when", mode="all").frame
    assert every.rows() == [
        (2, "2024-01-15", "OH", None, None),
        (1, "2024-03-01", None, None, 30),
        (2, "2024-03-01", "CA", 2019, None),
        (2, "2024-03-01", "OH", None, None),
        (3, "2024-03-01", None, None, None),
    ]
    snapshot = fs.dataset(wanted, at="2024-03-01").frame.sort("policy_id")
    assert snapshot.rows() == [(1, None, None, 30), (2, "CA", 2019, None)]


def test_ingest_lineage_names_its_input_even_when_the_ingest_fails(tmp_path: Path) -> None:
    """The input's hash (computed beside the writes) is the action's `source` and its input edge, for a
    completed ingest and for one whose online store was unreachable."""
    from tideml.errors import StoreUnavailable
    from tideml.features.service import frame_sha256

    ws = Workspace.init(tmp_path / "ws")
    frame = pl.DataFrame({"id": [1, 2], "ts": [1_700_000_000, 1_700_000_001], "x": [0.5, 1.5]})
    FeatureStore(ws).ingest("g", frame, record_identifier="id", event_time="ts", progress=False)
    unreachable = FeatureStore(ws, online_url="redis://127.0.0.1:1/0")
    with pytest.raises(StoreUnavailable, match="cannot reach Redis"):
        unreachable.ingest("g", frame.with_columns(pl.col("x") * 2), progress=False)
    with ws.metadata.session() as s:
        actions = s.scalars(
            sa.select(LineageAction).where(LineageAction.type == "features.ingest").order_by(LineageAction.id)
        ).all()
        done, failed = [(a.status, a.parameters["source"]) for a in actions]
    assert done == ("Completed", f"frame:sha256:{frame_sha256(frame)}")
    assert failed == ("Failed", f"frame:sha256:{frame_sha256(frame.with_columns(pl.col('x') * 2))}")
    for digest in (done[1], failed[1]):
        assert ws.lineage.find_artifact(uri=digest) is not None
    assert FeatureStore(ws).query("select count(*) as n from g")["n"].item() == 2  # the failure wrote nothing
    ws.close()


def test_input_hash_stops_when_told_and_a_failed_hash_creates_no_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lineage hash runs beside validation; a failing ingest tells it to stop (between record
    batches or 1 MiB reads), and the group is created only once the hash is in hand."""
    import threading

    from tideml.features import service

    stop = threading.Event()
    stop.set()
    frame = pl.DataFrame({"id": [1, 2], "ts": [1_700_000_000, 1_700_000_001], "x": [0.5, 1.5]})
    with pytest.raises(HashStopped):
        service.frame_sha256(frame, stop=stop)
    path = tmp_path / "g.csv"
    frame.write_csv(path)
    with pytest.raises(HashStopped):
        service.file_sha256(path, stop=stop)
    assert service.file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()

    def unreadable(path: Path, *, stop: threading.Event | None = None) -> str:
        raise PermissionError(f"{path} became unreadable")

    monkeypatch.setattr(service, "file_sha256", unreadable)
    fs = FeatureStore(Workspace.init(tmp_path / "ws"))
    with pytest.raises(PermissionError, match="became unreadable"):
        fs.ingest("g", path, record_identifier="id", event_time="ts", progress=False)
    assert fs.list_groups() == []


def test_an_empty_input_creates_no_group_and_warns_an_existing_one(fs: FeatureStore, tmp_path: Path) -> None:
    header = tmp_path / "h.csv"
    header.write_text("policy_id,event_time,x\n")
    with pytest.raises(ValidationError, match="no rows to infer"):
        fs.ingest("g", header, record_identifier="policy_id", event_time="event_time", progress=False)
    with pytest.raises(ValidationError, match="no rows to infer"):
        fs.create_group_from_frame("g", header, record_identifier="policy_id", event_time="event_time")
    assert fs.list_groups() == []
    typed = pl.DataFrame(schema={"policy_id": pl.Int64, "event_time": pl.Int64, "x": pl.Float64})
    fs.create_group_from_frame("typed", typed, record_identifier="policy_id", event_time="event_time")
    assert fs.spec("typed").feature("x").type.value == "Fractional"
    fs.delete_group("typed")
    frame = pl.DataFrame({"policy_id": [1], "event_time": [1], "x": [0.5]})
    fs.ingest("g", frame, record_identifier="policy_id", event_time="event_time", progress=False)
    report = fs.ingest("g", header, progress=False)
    assert report.rows == 0 and report.warnings == ["the input had no rows: nothing was written"]


def test_a_dataset_matched_without_sql_does_not_import_duckdb(tmp_path: Path) -> None:
    """Unique integer keys are matched without SQL, so the process never pays DuckDB's import."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import sys
        import polars as pl
        from tideml.features import FeatureStore
        from tideml.workspace import Workspace

        fs = FeatureStore(Workspace.init({str(tmp_path / "ws")!r}))
        frame = pl.DataFrame({{"id": [1, 2], "ts": [1_700_000_000, 1_700_000_100], "x": [0.5, 1.5]}})
        fs.ingest("g", frame, record_identifier="id", event_time="ts", progress=False)
        entities = pl.DataFrame({{"id": [1, 2, 3], "ts": [1_700_000_050, 1_700_000_200, 1_700_000_200]}})
        result = fs.dataset(["g.x"], entities=entities, entity_time="ts")
        assert result.manifest["joins"] == {{"g": "sorted-keys"}}, result.manifest["joins"]
        assert result.frame["x"].to_list() == [0.5, 1.5, None]
        print("duckdb" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
