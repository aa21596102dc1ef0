"""Ingest: whole-batch validation (nothing written on failure), inputs, idempotence, parallel workers."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

from tideml.errors import NotFound, ValidationError
from tideml.features import FeatureStore
from tideml.features.ingest import online_writes, prepare_batch
from tideml.features.online import decode_payload
from tideml.features.spec import FeatureGroupSpec


def small_spec(name: str = "g") -> FeatureGroupSpec:
    return FeatureGroupSpec.from_dict(
        {
            "name": name,
            "record_identifier": "id",
            "event_time": "ts",
            "features": [
                {"name": "id", "type": "Integral", "nullable": False},
                {"name": "ts", "type": "String", "nullable": False},
                {"name": "amount", "type": "Fractional"},
                {"name": "count", "type": "Integral", "nullable": False},
                {"name": "state", "type": "String"},
            ],
        }
    )


def good_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [1, 2, 3],
            "ts": ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00+01:00", "2024-01-02 08:00:00"],
            "amount": [1.5, None, float("nan")],
            "count": [1, 2, 3],
            "state": ["CA", None, "WA"],
        }
    )


def many_rows(n: int, *, ids: int, days: int) -> pl.DataFrame:
    """n rows of small_spec over `ids` ids and `days` days of hourly event times."""
    return pl.DataFrame(
        {
            "id": [i % ids for i in range(n)],
            "ts": [f"2024-01-{1 + i % days:02d}T{i % 24:02d}:00:00Z" for i in range(n)],
            "amount": [i * 0.5 for i in range(n)],
            "count": list(range(n)),
            "state": ["s"] * n,
        }
    )


def assert_nothing_written(fs: FeatureStore, group: str) -> None:
    assert fs.offline.files(group) == []
    assert fs.online.count(group) == 0


def test_prepare_types_times_and_nan() -> None:
    batch = prepare_batch(small_spec(), good_frame())
    f = batch.frame
    assert f.columns == ["id", "ts", "amount", "count", "state"]
    assert f.schema["ts"] == pl.Datetime("us", "UTC")
    assert f["ts"].dt.epoch("us").to_list() == [1704067200000000, 1704067200000000, 1704182400000000]
    assert f["amount"].to_list() == [1.5, None, None]  # NaN is stored as null (JSON has no NaN)
    writes = online_writes(small_spec(), f)
    payload = decode_payload(writes.payloads[0] or b"")
    assert payload == {"id": 1, "ts": "2024-01-01T00:00:00Z", "amount": 1.5, "count": 1, "state": "CA"}


def test_online_writes_are_the_latest_per_id_in_id_order() -> None:
    """Id order lets a store written in chunks append key ranges (SQLite's B-tree)."""
    frame = pl.DataFrame(
        {
            "id": [7, 30, 2, 100, 2, 30],
            "ts": [f"2024-01-0{d}" for d in (1, 1, 3, 1, 1, 2)],
            "amount": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "count": [1, 2, 3, 4, 5, 6],
            "state": ["a", "b", "c", "d", "e", "f"],
        }
    )
    writes = online_writes(small_spec(), prepare_batch(small_spec(), frame).frame)
    assert writes.ids == ["100", "2", "30", "7"]  # the stores' (text) key order, not the input's
    assert [decode_payload(p or b"")["count"] for p in writes.payloads] == [4, 3, 6, 1]


@pytest.mark.parametrize(
    ("column", "values", "field", "text"),
    [
        ("count", [1, "two", 3], "feature count", "row 1: 'two' is not a number"),
        ("count", [1, 2.5, 3], "feature count", "row 1: 2.5 is not a whole number"),
        ("count", [1, None, 3], "feature count", "row 1: None is missing"),
        ("id", [1, None, 3], "feature id", "record identifier needs a value"),
        (
            "ts",
            ["2024-01-01", "yesterday", "2024-01-03"],
            "feature ts",
            "row 1: 'yesterday' is not a point in time",
        ),
        ("ts", ["2024-01-01", "2024-01-02", None], "feature ts", "row 2: None is missing"),
        ("state", [1, 2, 3], "feature state", "not a String"),
        ("amount", [1.0, float("inf"), 2.0], "feature amount", "row 1: inf is infinite"),
    ],
)
def test_bad_batches_name_row_and_feature_and_write_nothing(
    fs: FeatureStore, column: str, values: list[object], field: str, text: str
) -> None:
    fs.create_group(small_spec())
    frame = good_frame().with_columns(pl.Series(column, values, strict=False))
    with pytest.raises(ValidationError) as err:
        fs.ingest("g", frame, progress=False)
    assert err.value.field == field
    assert text in str(err.value) and "nothing was written" in str(err.value)
    assert_nothing_written(fs, "g")


def test_unknown_and_missing_columns(fs: FeatureStore) -> None:
    fs.create_group(small_spec())
    with pytest.raises(ValidationError, match="'colour' is not a feature") as err:
        fs.ingest("g", good_frame().with_columns(pl.lit("red").alias("colour")), progress=False)
    assert "--add-feature" in (err.value.fix or "")
    with pytest.raises(ValidationError, match="record identifier column 'id' is missing"):
        fs.ingest("g", good_frame().drop("id"), progress=False)
    with pytest.raises(ValidationError, match="event time column 'ts' is missing"):
        fs.ingest("g", good_frame().drop("ts"), progress=False)
    with pytest.raises(ValidationError, match="non-nullable feature 'count' is missing"):
        fs.ingest("g", good_frame().drop("count"), progress=False)
    assert_nothing_written(fs, "g")
    report = fs.ingest("g", good_frame().drop("state"), progress=False)  # nullable: filled with null
    assert report.rows == 3 and fs.get_record("g", 3) == {
        "id": 3,
        "ts": "2024-01-02T08:00:00Z",
        "amount": None,
        "count": 3,
        "state": None,
    }
    report = fs.ingest("g", good_frame().with_columns(pl.lit(0).alias("x")), ignore_unknown_columns=True)
    assert report.rows == 3


def test_unknown_group_without_creation_options(fs: FeatureStore) -> None:
    with pytest.raises(NotFound, match="--record-id"):
        fs.ingest("nope", good_frame(), progress=False)


def test_create_from_data_validates_before_creating(fs: FeatureStore) -> None:
    bad = good_frame().with_columns(pl.Series("id", [1, None, 3]))
    with pytest.raises(ValidationError, match="record identifier"):
        fs.ingest("new", bad, record_identifier="id", event_time="ts", progress=False)
    assert not fs.catalog.exists("new")
    with pytest.raises(ValidationError, match="no event time column 'when'"):
        fs.ingest("new", good_frame(), record_identifier="id", event_time="when", progress=False)
    assert not fs.catalog.exists("new")


def test_pandas_csv_and_parquet_inputs(fs: FeatureStore, tmp_path: Path) -> None:
    fs.create_group(small_spec())
    pdf = good_frame().to_pandas()
    assert isinstance(pdf, pd.DataFrame)
    assert fs.ingest("g", pdf, progress=False).rows == 3
    csv = tmp_path / "d.csv"
    good_frame().with_columns(pl.Series("id", [4, 5, 6])).write_csv(csv)
    assert fs.ingest("g", csv, progress=False).rows == 3
    pq_path = tmp_path / "d.parquet"
    good_frame().with_columns(pl.Series("id", [7, 8, 9])).write_parquet(pq_path)
    assert fs.ingest("g", pq_path, progress=False).rows == 3
    assert fs.query("select count(*) from g_latest").item() == 9
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("id,ts,count\n1,2024-01-01,1\n2,2024-01-01,x\n")
    with pytest.raises(ValidationError, match="row 1: 'x' is not a number"):
        fs.ingest("g", bad_csv, progress=False)


def test_idempotent_reingest_and_in_batch_duplicates(fs: FeatureStore) -> None:
    fs.create_group(small_spec())
    frame = good_frame()
    fs.ingest("g", frame, progress=False)
    again = fs.ingest("g", frame, progress=False)
    assert again.online_applied == 3  # same event time: rewritten with identical content
    assert fs.query("select count(*) from g").item() == 6  # the log keeps both writes
    assert fs.query("select count(*) from g_latest").item() == 3
    assert fs.dataset(["g.*"], at="2025-01-01").frame.height == 3
    dup = pl.concat([frame, frame.with_columns(pl.lit(99, dtype=pl.Int64).alias("count"))])
    report = fs.ingest("g", dup, progress=False)
    assert report.duplicates_in_batch == 3 and report.offline_rows == 3
    assert fs.get_record("g", 1, ["count"]) == {"count": 99}  # the last row of the batch wins


def test_parallel_workers_match_a_single_worker(fs: FeatureStore) -> None:
    frame = many_rows(20_000, ids=5000, days=4)
    fs.create_group(small_spec("one"))
    fs.create_group(small_spec("many"))
    r1 = fs.ingest("one", frame, workers=1, progress=False)
    r4 = fs.ingest("many", frame, workers=4, progress=False)
    assert r1.offline_files == r4.offline_files > 1
    q = "select * exclude (write_time, api_invocation_time) from {} order by id, ts, count"
    assert fs.query(q.format("one")).equals(fs.query(q.format("many")))
    for rid in (0, 1234, 4999):
        assert fs.get_record("one", rid) == fs.get_record("many", rid)


def test_event_time_value_fills_a_missing_column(fs: FeatureStore) -> None:
    frame = good_frame().drop("ts")
    report = fs.ingest(
        "h", frame, record_identifier="id", event_time_value="2024-05-01T00:00:00Z", progress=False
    )
    assert report.rows == 3
    spec = fs.spec("h")
    assert spec.event_time == "event_time" and spec.feature("event_time").type.value == "Fractional"
    assert fs.get_record("h", 2, ["event_time"]) == {"event_time": 1714521600.0}
    with pytest.raises(ValidationError, match="already has an event-time column"):
        fs.ingest("h", good_frame().rename({"ts": "event_time"}), event_time_value="now", progress=False)


@pytest.mark.parametrize("workers", [1, 4])
def test_online_writes_in_many_chunks_land_like_one(online_url: str, workers: int, tmp_path: Path) -> None:
    """Latest rows encoded and written 7 at a time (in parallel where the store takes it) leave the
    online store exactly as one write of them all would: the latest row of every id."""
    from tideml.features.ingest import ingest_frame
    from tideml.features.offline import OfflineStore
    from tideml.features.online import open_online_store

    spec = small_spec()
    batch = prepare_batch(spec, many_rows(300, ids=61, days=9))
    store = open_online_store(online_url)
    try:
        report = ingest_frame(
            batch, offline=OfflineStore(tmp_path / "off"), online=store, workers=workers, chunk_rows=7
        )
        expected = online_writes(spec, batch.frame)
        assert report.online_applied == len(expected) == 61
        got = store.read_many([("g", rid) for rid in expected.ids])
        assert [(r.event_us if r else None) for r in got] == expected.event_us
        assert [r.payload if r else None for r in got] == expected.payloads
    finally:
        store.close()


def test_a_failing_online_chunk_fails_the_ingest_and_commits_no_offline_file(tmp_path: Path) -> None:
    """A chunk the online store refuses (here the third of nine, written in parallel) fails the whole
    ingest; the offline files written meanwhile are discarded, so the offline store stays empty."""
    from tideml.features.ingest import ingest_frame
    from tideml.features.offline import OfflineStore
    from tideml.features.online.base import WriteBatch
    from tideml.features.online.memory import MemoryOnlineStore

    class Refusing(MemoryOnlineStore):
        parallel_writes = True

        def __init__(self) -> None:
            super().__init__()
            self.calls = itertools.count(1)  # next() is atomic: the chunks are written on a pool

        def write(self, group: str, batch: WriteBatch) -> int:
            if next(self.calls) == 3:
                raise OSError("disk full")
            return super().write(group, batch)

    batch = prepare_batch(small_spec(), many_rows(60, ids=60, days=1))
    offline = OfflineStore(tmp_path / "off")
    with pytest.raises(OSError, match="disk full"):
        ingest_frame(batch, offline=offline, online=Refusing(), workers=4, chunk_rows=7)
    assert offline.files("g") == []


class _ThreadLoggedFrame(pl.DataFrame):
    """A DataFrame that notes the threads that touch it (a clone notes nothing; derived frames are
    plain ones)."""

    threads: set[int]

    def __getattribute__(self, name: str) -> object:
        threads = object.__getattribute__(self, "__dict__").get("threads")
        if threads is not None:
            threads.add(threading.get_ident())
        return super().__getattribute__(name)


def _logged(frame: pl.DataFrame) -> _ThreadLoggedFrame:
    logged = _ThreadLoggedFrame(frame)
    logged.threads = set()
    return logged


# Polars can deadlock when one DataFrame is used by two threads at once: a `to_arrow` on one and
# `schema` on the other hung an ingest here (pola-rs/polars#27396 is the same kind). An ingest hashes
# its input and writes the online store on other threads: each must get data of its own.
@pytest.mark.parametrize("workers", [1, 4])
def test_an_ingest_uses_the_callers_frame_on_the_callers_thread_only(fs: FeatureStore, workers: int) -> None:
    frame = _logged(many_rows(5000, ids=500, days=3))
    report = fs.ingest("g", frame, record_identifier="id", event_time="ts", workers=workers, progress=False)
    assert report.online_applied == 500
    assert frame.threads == {threading.get_ident()}


def test_the_online_writer_thread_gets_a_frame_of_its_own(tmp_path: Path) -> None:
    from tideml.features.ingest import ingest_frame
    from tideml.features.offline import OfflineStore
    from tideml.features.online.memory import MemoryOnlineStore

    batch = prepare_batch(small_spec(), many_rows(5000, ids=500, days=3))
    logged = dataclasses.replace(batch, frame=_logged(batch.frame))
    logged.frame.threads.clear()
    report = ingest_frame(
        logged, offline=OfflineStore(tmp_path / "off"), online=MemoryOnlineStore(), workers=4, progress=False
    )
    assert report.online_applied == 500
    assert logged.frame.threads == {threading.get_ident()}
