"""The metadata store on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tideml.artifacts import ArtifactRef
from tideml.errors import ConfigError, Conflict, NotFound, StoreUnavailable
from tideml.meta import Base, MetadataStore, Ref
from tideml.meta.store import HEADS


def test_open_migrates_to_head_and_reopen_is_a_no_op(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    assert store.current_revisions() == store.head_revisions() == HEADS  # HEADS: no Alembic at open
    with store.engine.connect() as conn:  # the table read at open is what Alembic reads
        assert store.current_revisions() == set(MigrationContext.configure(conn).get_current_heads())
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {"blobs", "refs", "alembic_version"} <= tables
    store.dispose()
    again = MetadataStore(metadata_url)
    assert again.current_revisions() == again.head_revisions()
    again.dispose()


def test_migrations_match_the_models(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    store.dispose()
    assert diff == []


def test_blob_index_round_trips(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    refs = [ArtifactRef("a" * 64, 10, "text/plain"), ArtifactRef("b" * 64, 2**40, "application/json")]
    for ref in refs:
        store.record_blob(ref)
        store.record_blob(ref)  # idempotent
    assert sorted(store.list_blobs(), key=lambda r: r.sha256) == refs
    store.dispose()


def test_refs_round_trip_and_versions_count_writes(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    first = store.set_ref("model", "fraud@production", "model:fraud/1", expected_version=0)
    assert first.version == 1
    second = store.set_ref("model", "fraud@production", "model:fraud/2", expected_version=1)
    assert second.version == 2
    got = store.get_ref("model", "fraud@production")
    assert (got.target, got.version) == ("model:fraud/2", 2)
    with pytest.raises(Conflict, match="expected version 1, found 2"):
        store.set_ref("model", "fraud@production", "model:fraud/3", expected_version=1)
    assert store.get_ref("model", "fraud@production").target == "model:fraud/2"
    with pytest.raises(NotFound):
        store.get_ref("model", "nope")
    store.dispose()


def test_a_stale_session_cannot_overwrite_a_newer_row(metadata_url: str) -> None:
    """Two writers read version 1; the second to commit gets Conflict, not a silent overwrite."""
    store = MetadataStore(metadata_url)
    store.set_ref("ns", "r", "v1")
    with pytest.raises(Conflict, match="changed since it was read"), store.session() as stale:
        row = stale.scalars(sa.select(Ref).where(Ref.name == "r")).one()
        store.set_ref("ns", "r", "v2")  # a concurrent writer commits first
        row.target = "stale"
    got = store.get_ref("ns", "r")
    assert (got.target, got.version) == ("v2", 2)
    store.dispose()


def test_duplicate_insert_is_a_conflict(metadata_url: str) -> None:
    store = MetadataStore(metadata_url)
    store.set_ref("ns", "dup", "x")
    with pytest.raises(Conflict, match="constraint"), store.session() as s:
        s.add(Ref(namespace="ns", name="dup", target="y"))
    assert store.get_ref("ns", "dup").target == "x"
    store.dispose()


@pytest.mark.postgres
def test_concurrent_writers_on_postgres_lose_no_update(postgres_url: str) -> None:
    """Many threads increment one counter with compare-and-set; every increment lands exactly once."""
    store = MetadataStore(postgres_url)
    store.set_ref("counter", "c", "0")
    threads, increments = 6, 15
    conflicts = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal conflicts
        done = 0
        while done < increments:
            ref = store.get_ref("counter", "c")
            try:
                store.set_ref("counter", "c", str(int(ref.target) + 1), expected_version=ref.version)
                done += 1
            except Conflict:
                with lock:
                    conflicts += 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    final = store.get_ref("counter", "c")
    assert int(final.target) == threads * increments
    assert final.version == threads * increments + 1
    store.dispose()


@pytest.mark.postgres
def test_concurrent_first_opens_migrate_once(postgres_url: str) -> None:
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            MetadataStore(postgres_url).dispose()
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=open_store) for _ in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    store = MetadataStore(postgres_url)
    assert store.current_revisions() == store.head_revisions()
    store.dispose()


def test_bad_urls_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a database URL"):
        MetadataStore("not a url")
    with pytest.raises(ConfigError, match="not supported"):
        MetadataStore("mysql://root@localhost/test")


def test_unreachable_server_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable, match="cannot reach"):
        MetadataStore("postgresql+psycopg://postgres@127.0.0.1:1/test")


@pytest.mark.postgres
def test_concurrent_first_opens_from_several_processes(postgres_url: str) -> None:
    import subprocess
    import sys

    code = "import sys; from tideml.meta import MetadataStore; MetadataStore(sys.argv[1]).dispose()"
    procs = [subprocess.Popen([sys.executable, "-c", code, postgres_url]) for _ in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    store = MetadataStore(postgres_url)
    assert store.current_revisions() == store.head_revisions()
    store.dispose()
