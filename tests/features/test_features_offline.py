"""The offline store: Hive layout by event time, system columns, atomic batches, verified compaction."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tideml.features.dataset import build_dataset
from tideml.features.offline import OfflineStore, _partition_scanner
from tideml.features.spec import FeatureDefinition, FeatureGroupSpec, FeatureType
from tideml.features.sql import SqlEngine

SPEC = FeatureGroupSpec.from_dict(
    {
        "name": "g",
        "record_identifier": "id",
        "event_time": "et",
        "features": [
            {"name": "id", "type": "Integral", "nullable": False},
            {"name": "et", "type": "Fractional", "nullable": False},
            {"name": "v", "type": "Integral"},
        ],
    }
)
T0 = 1_704_067_200  # 2024-01-01T00:00:00Z


def frame(
    ids: list[int], seconds: list[int], values: list[int | None], deleted: bool = False
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": ids,
            "et": [datetime.fromtimestamp(T0 + s, UTC) for s in seconds],
            "v": values,
            "is_deleted": [deleted] * len(ids),
        },
        schema={"id": pl.Int64, "et": pl.Datetime("us", "UTC"), "v": pl.Int64, "is_deleted": pl.Boolean},
    )


def test_layout_partitions_by_event_time_with_system_columns(tmp_path: Path) -> None:
    store = OfflineStore(tmp_path)
    files = store.append(
        SPEC, frame([1, 2, 3], [0, 3600 * 5 + 10, 86400 * 40], [1, 2, 3]), api_invocation_us=5, write_us=7
    )
    parts = sorted(f.partition for f in files)
    assert parts == [
        "year=2024/month=01/day=01/hour=00",
        "year=2024/month=01/day=01/hour=05",
        "year=2024/month=02/day=10/hour=00",
    ]
    for f in files:
        path = tmp_path / "g" / f.path
        assert path.name.endswith(".parquet") and len(path.stem.split("_")[1]) == 16
        table = pq.read_table(path)
        assert table.schema.names == ["id", "et", "v", "write_time", "api_invocation_time", "is_deleted"]
        assert str(table.schema.field("et").type) == "timestamp[us, tz=UTC]"
        assert table.column("write_time").to_pylist()[0] == datetime.fromtimestamp(7 / 1e6, UTC)
        assert table.column("is_deleted").to_pylist() == [False]
    # readable by any engine straight from the folder, with Hive partitions
    ds = pads.dataset(tmp_path / "g", format="parquet", partitioning="hive")
    assert sorted(ds.to_table().column("id").to_pylist()) == [1, 2, 3]
    assert not [p for p in (tmp_path / "g").rglob("*") if p.name.startswith(".tmp-")]


def test_each_file_holds_its_rows_in_event_time_order(tmp_path: Path) -> None:
    """Arrow's writer encodes record batches in parallel; the rows go to it in batches of whole
    partitions, so each partition's file is in event-time order, an hour of more rows than one writer
    batch (2^17) included."""
    n = 300_000
    # 150k rows in hour 3, the rest over 30 hours (~5k each), shuffled
    seconds = [3 * 3600 + (i * 7) % 3600 if i < 150_000 else (i * 7919) % (3600 * 30) for i in range(n)]
    shuffled = pl.Series(range(n)).shuffle(seed=3)
    batch = frame([i % 5000 for i in range(n)], seconds, list(range(n))).select(pl.all().gather(shuffled))
    files = OfflineStore(tmp_path).append(SPEC, batch, api_invocation_us=1, unique_keys=False)
    assert len(files) == 30 and sum(f.rows for f in files) == n
    for f in files:
        assert pq.read_table(tmp_path / "g" / f.path).column("et").to_pandas().is_monotonic_increasing


@pytest.mark.parametrize("chunks", [1, 3])
def test_the_writer_gets_batches_of_whole_partitions(chunks: int) -> None:
    sizes = [50_000, 100_000, 20_000, 200_000, 10_000, 1, 90_000]
    parts = [p for p, size in enumerate(sizes) for _ in range(size)]
    table = pa.table({"p": parts})
    if chunks > 1:  # a table of several chunks, cut inside partitions
        table = pa.concat_tables([table.slice(0, 60_000), table.slice(60_000, 200_000), table.slice(260_000)])
    batches = list(_partition_scanner(table, sizes).to_batches())
    seen: list[int] = []
    for b in batches:
        ps = b.column("p").to_pylist()
        assert ps == sorted(ps)
        assert b.num_rows <= 1 << 17 or len(set(ps)) == 1  # only a partition larger than 2^17 alone
        seen += sorted(set(ps))
    assert seen == list(range(len(sizes)))  # each partition in exactly one batch, in order
    assert sum(b.num_rows for b in batches) == sum(sizes)


def test_a_batch_is_invisible_until_committed_and_gone_after_abort(tmp_path: Path) -> None:
    store = OfflineStore(tmp_path)
    txn = store.begin(SPEC)
    txn.write(frame([1, 2], [0, 7200], [1, 2]), api_invocation_us=1)
    assert store.files("g") == [] and len(list((tmp_path / "g").rglob("*.parquet"))) == 2
    txn.abort()
    assert store.files("g") == [] and list((tmp_path / "g").rglob("*.parquet")) == []
    with pytest.raises(RuntimeError), store.begin(SPEC) as txn2:
        txn2.write(frame([1], [0], [1]), api_invocation_us=1)
        raise RuntimeError("crash mid-ingest")
    assert store.files("g") == [] and list((tmp_path / "g").rglob("*.parquet")) == []
    with store.begin(SPEC) as txn3:
        txn3.write(frame([1], [0], [1]), api_invocation_us=1)
    assert len(store.files("g")) == 1


@pytest.mark.parametrize("n_hours", [8, 9])  # file by file in place; the dataset writer + staging
def test_a_write_failing_halfway_leaves_no_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n_hours: int
) -> None:
    """Files already renamed into their partitions belong to the transaction; temporary files and the
    staging folder are cleaned up."""
    import tideml.features.offline as offline

    assert (n_hours > offline._FSYNC_EACH_MAX) == (n_hours == 9)
    store = OfflineStore(tmp_path)
    calls = {"n": 0}
    real_replace = os.replace
    renamed_from: list[str] = []

    def failing_replace(src: object, dst: object) -> None:
        calls["n"] += 1
        renamed_from.append(Path(str(src)).name)
        if calls["n"] == 3:
            raise OSError("disk full")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", failing_replace)
    hours = [h * 3600 for h in range(n_hours)]
    with pytest.raises(OSError, match="disk full"), store.begin(SPEC) as txn:
        txn.write(frame(list(range(n_hours)), hours, list(range(n_hours))), api_invocation_us=1)
    monkeypatch.setattr(os, "replace", real_replace)
    assert store.files("g") == []
    assert [p for p in (tmp_path / "g").rglob("*") if p.is_file()] == []
    # before its rename, no file looks like data to a `**/*.parquet` glob (DuckDB's hive read, say)
    assert len(renamed_from) == 3 and all(name.endswith(".parquet.part") for name in renamed_from)


def test_a_batch_over_more_hours_than_open_files_is_written_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer keeps a bounded number of files open, whatever the hours a batch spans."""
    import tideml.features.offline as offline

    monkeypatch.setattr(offline, "_open_file_budget", lambda: 3)
    store = OfflineStore(tmp_path)
    hours = list(range(20))
    ids = [h * 10 + k for h in hours for k in range(3)]
    times = [h * 3600 + k * 60 for h in hours for k in range(3)]
    store.append(SPEC, frame(ids, times, ids))
    files = store.files("g")
    assert sum(f.rows for f in files) == 60 and len({f.partition for f in files}) == 20
    table = store.read_table(SPEC)
    assert sorted(table.column("id").to_pylist()) == sorted(ids)
    for f in files:  # every file's event range lies inside its hour
        assert f.min_event_us // 3_600_000_000 == f.max_event_us // 3_600_000_000


@pytest.mark.parametrize("kernel_allows", [True, False])
def test_files_are_durable_before_they_enter_a_partition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_allows: bool
) -> None:
    """A few files are fsynced one by one; many are flushed with one syncfs of the filesystem (or, if
    the kernel refuses it, one fsync each), and always before the rename that puts them in a partition.
    """
    import tideml.features.offline as offline

    if offline._syncfs_fd(tmp_path) is None:
        pytest.skip("syncfs is not used here (not Linux >= 5.8 on a known local filesystem)")
    events: list[str] = []
    real_syncfs, real_fsync, real_replace = offline._syncfs, os.fsync, os.replace

    def syncfs(fd: int) -> bool:
        events.append("syncfs")
        return real_syncfs(fd) if kernel_allows else False  # False: ENOSYS / EPERM

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(offline, "_syncfs", syncfs)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    store = OfflineStore(tmp_path)
    hours = list(range(offline._FSYNC_EACH_MAX + 4))
    with store.begin(SPEC) as txn:
        txn.write(frame(hours, [h * 3600 for h in hours], hours), api_invocation_us=1)
        many = list(events)
        events.clear()
        txn.write(frame([1, 2], [0, 3600], [1, 2]), api_invocation_us=1)
        few = list(events)
    n = len(hours)
    if kernel_allows:
        assert many == ["syncfs", *["rename"] * n, "syncfs"]
    else:
        assert many == ["syncfs", *["fsync"] * n, *["rename"] * n]
    assert few == ["fsync", "rename", "fsync", "rename"]  # a small batch: each file written in place
    assert sorted(store.read_table(SPEC).column("id").to_pylist()) == sorted([*hours, 1, 2])


def test_syncfs_is_used_only_where_it_is_as_safe_as_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unknown filesystems (FUSE mounts, network filesystems) and kernels without syncfs get an fsync
    per file; a syncfs error other than 'not allowed' fails the write."""
    import errno

    import tideml.features.offline as offline

    monkeypatch.setattr(offline, "_filesystem_type", lambda folder: "fuse.sshfs")
    assert offline._syncfs_fd(tmp_path) is None
    monkeypatch.setattr(offline, "_filesystem_type", lambda folder: "ext4")
    monkeypatch.setattr(offline, "_SYNCFS", None)
    assert offline._syncfs_fd(tmp_path) is None
    monkeypatch.setattr(offline, "_SYNCFS", lambda fd: -1)
    monkeypatch.setattr(offline.ctypes, "get_errno", lambda: errno.EIO)
    with pytest.raises(OSError, match="syncfs failed"):
        offline._syncfs(0)
    monkeypatch.setattr(offline.ctypes, "get_errno", lambda: errno.EPERM)
    assert offline._syncfs(0) is False


def test_schema_evolution_reads_old_files_with_nulls(tmp_path: Path) -> None:
    store = OfflineStore(tmp_path)
    store.append(SPEC, frame([1], [0], [5]))
    wider = SPEC.with_changes(add_features=[FeatureDefinition(name="w", type=FeatureType.STRING)])
    with SqlEngine(store, [wider]) as engine:
        assert engine.query("select id, v, w from g").rows() == [(1, 5, None)]


def all_results(store: OfflineStore) -> list[object]:
    with SqlEngine(store, [SPEC]) as engine:
        raw = engine.query("select * from g order by all").rows()
        latest = engine.query("select * from g_latest order by all").rows()
    ents = pl.DataFrame({"id": [1, 2, 3, 1], "et": [T0 + 5, T0 + 5, T0 + 99999, T0 + 40000]})
    ds = build_dataset(store, {"g": SPEC}, ["g.v"], entities=ents).table.to_pylist()
    return [raw, latest, ds]


batches = st.lists(
    st.lists(
        st.tuples(
            st.integers(1, 3), st.integers(0, 30000), st.one_of(st.none(), st.integers(-5, 5)), st.booleans()
        ),
        min_size=1,
        max_size=6,
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=batches)
def test_compaction_never_changes_query_results(
    tmp_path_factory: pytest.TempPathFactory, batches: list
) -> None:  # type: ignore[type-arg]
    store = OfflineStore(tmp_path_factory.mktemp("c"))
    for k, rows in enumerate(batches):
        seen: dict[tuple[int, int], tuple[int, int, int | None, bool]] = {}
        for r in rows:
            seen[(r[0], r[1])] = r
        rows = list(seen.values())
        live = [r for r in rows if not r[3]]
        dead = [r for r in rows if r[3]]
        if live:
            store.append(
                SPEC,
                frame([r[0] for r in live], [r[1] for r in live], [r[2] for r in live]),
                api_invocation_us=10 * k + 1,
                write_us=10 * k + 2,
            )
        if dead:
            store.append(
                SPEC,
                frame([r[0] for r in dead], [r[1] for r in dead], [None] * len(dead), True),
                api_invocation_us=10 * k + 3,
                write_us=10 * k + 4,
            )
    before = all_results(store)
    files_before = len(store.files("g"))
    report = store.compact(SPEC)
    assert all_results(store) == before
    partitions = {f.partition for f in store.files("g")}
    assert len(store.files("g")) == len(partitions) == report.files_after <= files_before
    on_disk = {
        p.relative_to(store.group_dir("g")).as_posix() for p in store.group_dir("g").rglob("*.parquet")
    }
    assert on_disk == {f.path for f in store.files("g")}
    assert store.compact(SPEC).partitions_rewritten == 0  # idempotent


def test_compaction_removes_old_orphans_only(tmp_path: Path) -> None:
    store = OfflineStore(tmp_path)
    store.append(SPEC, frame([1], [0], [1]))
    part = tmp_path / "g" / "year=2024/month=01/day=01/hour=00"
    old = part / "20240101T000000Z_AAAAAAAAAAAAAAAA.parquet"
    old.write_bytes(b"left by a crashed writer")
    fresh = part / ".tmp-123.parquet.part"
    fresh.write_bytes(b"being written right now")
    hour_ago = time.time() - 7200
    os.utime(old, (hour_ago, hour_ago))
    report = store.compact(SPEC)
    assert report.orphans_removed == 1 and not old.exists() and fresh.exists()
    with SqlEngine(store, [SPEC]) as engine:
        assert engine.query("select count(*) from g").item() == 1


def test_a_torn_manifest_line_is_ignored_then_repaired(tmp_path: Path) -> None:
    """A writer that crashed mid-append never committed; readers skip it and the next commit cuts it."""
    store = OfflineStore(tmp_path)
    store.append(SPEC, frame([1], [0], [1]))
    manifest = tmp_path / "g" / "_manifest.jsonl"
    with open(manifest, "ab") as fh:
        fh.write(b'{"add": [{"path": "year=2024/month=01/da')
    assert len(OfflineStore(tmp_path).files("g")) == 1
    store.append(SPEC, frame([2], [0], [2]))
    assert len(OfflineStore(tmp_path).files("g")) == 2
    assert manifest.read_bytes().count(b"\n") == 3  # header + two commits, torn line gone
