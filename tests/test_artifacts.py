from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from tideml.artifacts import ArtifactStore, HashStopped, file_sha256
from tideml.errors import IntegrityError, NotFound, UnsafePath


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def test_put_get_round_trip_is_content_addressed(store: ArtifactStore) -> None:
    ref = store.put_bytes(b"hello", "text/plain")
    assert ref.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert ref.size == 5 and ref.media_type == "text/plain"
    assert ref.uri == f"sha256:{ref.sha256}"
    assert store.exists(ref.sha256) and store.exists(ref.uri)
    assert store.get(ref.sha256) == b"hello"
    assert store.stat(ref.uri) == ref
    assert store.put_bytes(b"hello", "text/plain") == ref  # idempotent
    assert [r.sha256 for r in store.list()] == [ref.sha256]


def test_put_file_streams_and_guesses_media_type(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "table.parquet"
    payload = os.urandom(3 * 1024 * 1024 + 17)
    src.write_bytes(payload)
    ref = store.put_file(src)
    assert ref.size == len(payload)
    assert ref.media_type == "application/vnd.apache.parquet"
    assert store.get(ref.sha256) == payload
    assert store.local_path(ref.sha256).read_bytes() == payload


def test_missing_object_and_missing_file(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        store.get("0" * 64)
    with pytest.raises(NotFound):
        store.put_file(tmp_path / "nope.csv")


def _corrupt(store: ArtifactStore, key: str) -> None:
    path = store.local_path(key, verify=False)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_hash_verification_catches_a_corrupted_file(store: ArtifactStore) -> None:
    ref = store.put_bytes(b"x" * 10_000)
    _corrupt(store, ref.sha256)
    with pytest.raises(IntegrityError, match="does not match"):
        store.get(ref.sha256)
    with pytest.raises(IntegrityError):
        store.verify(ref.sha256)
    with pytest.raises(IntegrityError):
        store.local_path(ref.sha256)
    with store.open(ref.sha256) as fh, pytest.raises(IntegrityError):
        while fh.read(1000):
            pass


def test_truncated_file_is_caught(store: ArtifactStore) -> None:
    ref = store.put_bytes(b"abcdef" * 100)
    store.local_path(ref.sha256, verify=False).write_bytes(b"abc")
    with pytest.raises(IntegrityError):
        store.get(ref.sha256)


@pytest.mark.parametrize(
    "key",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "sha256:../" + "a" * 61,
        "a" * 63,
        "A" * 64,
        "a" * 64 + "/../x",
        "objects/aa/" + "a" * 64,
        "",
        "..",
        "g" * 64,
    ],
)
def test_keys_that_could_escape_the_root_are_refused(store: ArtifactStore, key: str) -> None:
    for op in (store.get, store.exists, store.stat, store.open, store.verify):
        with pytest.raises(UnsafePath):
            op(key)


def test_failed_write_leaves_no_object_and_keeps_previous_state(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = store.put_bytes(b"first")

    def crash(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("tideml.artifacts.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.put_bytes(b"second")
    monkeypatch.undo()
    assert store.get(first.sha256) == b"first"
    assert not store.exists(hashlib.sha256(b"second").hexdigest())
    leftovers = [p for p in store.root.rglob("*") if p.is_file() and p.name.startswith(".tmp-")]
    assert leftovers == []
    assert [r.sha256 for r in store.list()] == [first.sha256]


def test_put_written_hashes_what_a_writer_writes_without_a_copy(store: ArtifactStore) -> None:
    """A Parquet writer writes straight into the store; the object is the same as putting the bytes,
    and a writer that fails leaves nothing behind."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"x": list(range(1000)), "y": [float(i) / 3 for i in range(1000)]})
    ref = store.put_written(lambda sink: pq.write_table(table, sink), "application/vnd.apache.parquet")
    expected = io.BytesIO()
    pq.write_table(table, expected)
    assert ref == store.put_bytes(expected.getvalue(), "application/vnd.apache.parquet")
    assert pq.read_table(io.BytesIO(store.get(ref.sha256))).equals(table)

    def fails(sink: object) -> None:
        sink.write(b"half a file")  # type: ignore[attr-defined]
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store.put_written(fails, "application/octet-stream")
    assert [r.sha256 for r in store.list()] == [ref.sha256]
    assert not [p for p in (store.root / "staging").iterdir()]


def test_file_sha256_matches_the_store_key_across_blocks(store: ArtifactStore, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom((1 << 20) * 2 + 17))  # three 1 MiB reads
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_sha256(path) == expected == store.put_file(path).sha256
    stop = threading.Event()
    stop.set()
    with pytest.raises(HashStopped):
        file_sha256(path, stop=stop)
