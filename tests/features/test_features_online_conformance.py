"""One conformance suite for every online backend (SQLite, the real Redis server, in-memory)."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from tideml.errors import ConfigError, StoreUnavailable, ValidationError
from tideml.features.online import OnlineStore, WriteBatch, decode_payload, encode_payload, open_online_store


def put(
    store: OnlineStore, group: str, rid: str, ev: int, value: object, *, expires: int | None = None
) -> int:
    batch = WriteBatch()
    batch.add(rid, ev, expires, encode_payload({"id": rid, "v": value}))
    return store.write(group, batch)


def tombstone(store: OnlineStore, group: str, rid: str, ev: int) -> int:
    batch = WriteBatch()
    batch.add(rid, ev, None, None)
    return store.write(group, batch)


def value_of(store: OnlineStore, group: str, rid: str, now: int = 0) -> object:
    rec = store.read(group, rid)
    if rec is None or rec.payload is None or not rec.visible(now):
        return None
    return decode_payload(rec.payload)["v"]


def test_round_trip_and_missing(online_store: OnlineStore) -> None:
    assert put(online_store, "g", "1", 100, 1.5) == 1
    rec = online_store.read("g", "1")
    assert rec is not None and rec.event_us == 100 and not rec.deleted and rec.expires_us is None
    assert value_of(online_store, "g", "1") == 1.5
    assert online_store.read("g", "2") is None
    assert online_store.read("other", "1") is None  # groups are separate namespaces


def test_older_event_time_never_overwrites_newer(online_store: OnlineStore) -> None:
    put(online_store, "g", "1", 200, "new")
    assert put(online_store, "g", "1", 100, "old") == 0
    assert value_of(online_store, "g", "1") == "new"
    assert put(online_store, "g", "1", 200, "same time, later call") == 1
    assert value_of(online_store, "g", "1") == "same time, later call"
    assert put(online_store, "g", "1", 300, "newer") == 1
    assert value_of(online_store, "g", "1") == "newer"


def test_batch_write_applies_newer_wins_per_record(online_store: OnlineStore) -> None:
    put(online_store, "g", "a", 50, "a50")
    batch = WriteBatch()
    for rid, ev in (("a", 40), ("b", 10), ("c", 10)):
        batch.add(rid, ev, None, encode_payload({"v": f"{rid}{ev}"}))
    assert online_store.write("g", batch) == 2
    assert [value_of(online_store, "g", r) for r in "abc"] == ["a50", "b10", "c10"]


def test_one_batch_equals_its_writes_one_by_one(online_store: OnlineStore) -> None:
    """Ids repeated inside one batch (and across Redis' 1000-key script calls), older and equal event
    times, tombstones, no expiry, a future one and a past one (Redis drops that key at once): the batch
    ends where the same writes made one call at a time end."""
    rng = random.Random(11)
    now = time.time_ns() // 1000
    writes = [
        (
            str(rng.randrange(40)),
            rng.randrange(1, 30),
            rng.choice([None, None, now + 3_600_000_000 + i, now - 10_000_000 - i]),
            None if rng.random() < 0.1 else encode_payload({"v": i}),
        )
        for i in range(2500)
    ]
    batch = WriteBatch()
    one_by_one = 0
    for w in writes:
        batch.add(*w)
        single = WriteBatch()
        single.add(*w)
        one_by_one += online_store.write("seq", single)
    assert online_store.write("bat", batch) == one_by_one
    ids = sorted({w[0] for w in writes})
    seq = online_store.read_many([("seq", rid) for rid in ids])
    bat = online_store.read_many([("bat", rid) for rid in ids])
    assert bat == seq
    assert sum(r is not None and r.visible(now) for r in bat) > 10  # not an empty comparison


def test_soft_delete_tombstone_hides_until_a_newer_put(online_store: OnlineStore) -> None:
    put(online_store, "g", "1", 100, "x")
    assert tombstone(online_store, "g", "1", 50) == 0  # older delete: the record stays
    assert value_of(online_store, "g", "1") == "x"
    assert tombstone(online_store, "g", "1", 150) == 1
    rec = online_store.read("g", "1")
    assert rec is not None and rec.deleted and rec.payload is None and not rec.visible(0)
    assert put(online_store, "g", "1", 120, "late arrival") == 0  # still older than the tombstone
    assert value_of(online_store, "g", "1") is None
    assert put(online_store, "g", "1", 160, "re-insert") == 1
    assert value_of(online_store, "g", "1") == "re-insert"


def test_hard_delete_removes_and_refuses_older_deletes(online_store: OnlineStore) -> None:
    put(online_store, "g", "1", 100, "x")
    with pytest.raises(ValidationError, match="later event time"):
        online_store.hard_delete("g", "1", 99)
    assert value_of(online_store, "g", "1") == "x"
    assert online_store.hard_delete("g", "1", 100) is True
    assert online_store.read("g", "1") is None
    assert online_store.hard_delete("g", "1", 200) is False
    # after a hard delete nothing remembers the old event time (as in SageMaker)
    assert put(online_store, "g", "1", 10, "older") == 1


def test_ttl_is_enforced_on_read(online_store: OnlineStore) -> None:
    now = time.time_ns() // 1000
    put(online_store, "g", "live", 100, "ok", expires=now + 3_600_000_000)
    put(online_store, "g", "expired", 100, "gone", expires=now - 10_000_000)
    assert value_of(online_store, "g", "live", now) == "ok"
    assert value_of(online_store, "g", "expired", now) is None
    live = online_store.read("g", "live")
    assert live is not None and live.expires_us == now + 3_600_000_000
    online_store.purge_expired("g", now)
    assert online_store.read("g", "expired") is None


def test_read_payload_serves_only_live_records(online_store: OnlineStore) -> None:
    """The single-id read path agrees with `read` + `visible`: tombstones, expired records and
    absent ids are None, whatever the backend's shortcut."""
    now = time.time_ns() // 1000
    put(online_store, "g", "plain", 100, "p")
    put(online_store, "g", "live", 100, "l", expires=now + 3_600_000_000)
    put(online_store, "g", "expired", 100, "e", expires=now - 10_000_000)
    put(online_store, "g", "deleted", 100, "d")
    tombstone(online_store, "g", "deleted", 200)
    cases = [("plain", "p"), ("live", "l"), ("expired", None), ("deleted", None), ("absent", None)]
    for rid, expected in cases:
        payload = online_store.read_payload("g", rid)
        assert (None if payload is None else decode_payload(payload)["v"]) == expected, rid
        assert expected == value_of(online_store, "g", rid, now), rid
    # an explicit instant: served before the expiry, not at it
    assert online_store.read_payload("g", "live", now + 3_599_000_000) is not None
    assert online_store.read_payload("g", "live", now + 3_600_000_000) is None


def test_read_many_keeps_order_and_spans_groups(online_store: OnlineStore) -> None:
    for i in range(5):
        put(online_store, "g1", str(i), 10, i)
        put(online_store, "g2", str(i), 10, -i)
    keys = [("g1", "3"), ("g2", "3"), ("g1", "missing"), ("g1", "0"), ("g1", "3")]
    got = online_store.read_many(keys)
    values = [None if r is None or r.payload is None else decode_payload(r.payload)["v"] for r in got]
    assert values == [3, -3, None, 0, 3]
    assert online_store.read_many([]) == []


def test_drop_group_and_count(online_store: OnlineStore) -> None:
    for i in range(30):
        put(online_store, "keep", str(i), 1, i)
        put(online_store, "drop", str(i), 1, i)
    assert online_store.count("drop") == 30
    assert online_store.drop_group("drop") == 30
    assert online_store.count("drop") == 0
    assert online_store.count("keep") == 30


def test_concurrent_writers_keep_the_newest(online_url: str) -> None:
    """Threads with their own store objects race on the same ids; the max event time must win."""
    rng = random.Random(7)
    plans = [[(str(rng.randrange(5)), rng.randrange(1, 10_000)) for _ in range(150)] for _ in range(4)]
    shared = open_online_store(online_url)
    stores = (
        [shared] * 4 if online_url.startswith("memory") else [open_online_store(online_url) for _ in range(4)]
    )

    def run(store: OnlineStore, plan: list[tuple[str, int]]) -> None:
        for start in range(0, len(plan), 10):
            batch = WriteBatch()
            for rid, ev in plan[start : start + 10]:
                batch.add(rid, ev, None, encode_payload({"v": ev}))
            store.write("race", batch)

    threads = [threading.Thread(target=run, args=(s, p)) for s, p in zip(stores, plans, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected: dict[str, int] = {}
    for plan in plans:
        for rid, ev in plan:
            expected[rid] = max(expected.get(rid, 0), ev)
    for rid, ev in expected.items():
        rec = shared.read("race", rid)
        assert rec is not None and rec.event_us == ev and rec.payload is not None
        assert decode_payload(rec.payload)["v"] == ev
    for s in {id(s): s for s in stores}.values():
        s.close()


class _CountingSocket:
    """A reader's socket that records what `sendall` sends (the path of TLS and of a full buffer)."""

    def __init__(self, sock: Any, sent: list[bytes]) -> None:
        self._sock = sock
        self._sent = sent

    def sendall(self, data: bytes) -> None:
        self._sent.append(bytes(data))
        self._sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


@pytest.mark.redis
def test_redis_batch_read_is_one_round_trip(redis_prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from tideml.features.online.redis import RedisOnlineStore

    store = RedisOnlineStore(f"redis://127.0.0.1:6379/15?prefix={redis_prefix}")
    for i in range(100):
        put(store, "g", str(i), 1, i)
    store.read_many([("g", "0")])  # opens a reading connection, idle again after the read
    reader = store._idle[-1]
    sent: list[bytes] = []
    real_write = os.write

    def counting_write(fd: int, data: bytes) -> int:
        if fd == reader.fd:
            sent.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", counting_write)
    real = reader.conn._sock
    reader.conn._sock = _CountingSocket(real, sent)
    try:
        got = store.read_many([("g", str(i)) for i in range(100)])
    finally:
        reader.conn._sock = real
    assert len(sent) == 1 and sent[0].startswith(b"*101\r\n$4\r\nMGET")
    assert all(r is not None for r in got)
    store.close()


@pytest.mark.redis
@pytest.mark.parametrize("case", ["partial", "full", "tls"])
def test_redis_reads_send_every_byte_whichever_way(
    redis_prefix: str, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read writes its command with one `os.write`; what that leaves (a short write, or a full send
    buffer) goes by `sendall`, and a TLS socket (no descriptor to write to) sends it all that way."""
    import os

    from tideml.features.online.redis import RedisOnlineStore

    store = RedisOnlineStore(f"redis://127.0.0.1:6379/15?prefix={redis_prefix}")
    values = [f"{i:0500d}" for i in range(300)]  # ~160 kB of MGET reply: several recv chunks
    for i, value in enumerate(values):
        put(store, "g", str(i), 1, value)
    store.read("g", "0")
    reader = store._idle[-1]
    real_write = os.write

    def short_write(fd: int, data: bytes) -> int:
        if fd != reader.fd:
            return real_write(fd, data)
        if case == "full":
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real_write(fd, bytes(data)[:7])

    if case == "tls":
        reader.fd = -1
    else:
        monkeypatch.setattr(os, "write", short_write)
    sent: list[bytes] = []
    real = reader.conn._sock
    reader.conn._sock = _CountingSocket(real, sent)
    try:
        got = store.read_many([("g", str(i)) for i in range(300)])
        one = store.read_payload("g", "7")
    finally:
        reader.conn._sock = real
    assert [decode_payload(r.payload)["v"] if r and r.payload else None for r in got] == values
    assert one is not None and decode_payload(one)["v"] == values[7]
    # sendall got each command whole, or all but the 7 bytes written ("*301\r\n$", "*2\r\n$3\r")
    whole = case in ("full", "tls")
    assert len(sent) == 2 and sent[0].startswith(b"*301\r\n$4\r\nMGET" if whole else b"4\r\nMGET\r\n")
    assert sent[0].endswith(b"g:299\r\n") and sent[1].startswith(
        b"*2\r\n$3\r\nGET" if whole else b"\nGET\r\n"
    )
    store.close()


@pytest.mark.redis
def test_redis_ttl_sets_native_expiry(redis_prefix: str) -> None:
    import redis

    store = open_online_store(f"redis://127.0.0.1:6379/15?prefix={redis_prefix}")
    now = time.time_ns() // 1000
    put(store, "g", "1", 5, "x", expires=now + 60_000_000)
    ttl_ms = redis.Redis.from_url("redis://127.0.0.1:6379/15").pttl(f"{redis_prefix}g:1")
    # the expiry is rounded up to Redis' millisecond (never early), and Redis counts from its own
    # millisecond clock, so within the same millisecond the TTL reads 60,001
    assert 50_000 < ttl_ms <= 60_001
    store.close()


def _server_kills_idle_reads(redis_prefix: str) -> None:
    """Close, from the server side, every connection of this test's clients (as a restart would)."""
    import redis

    admin = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    me = admin.client_id()
    for client in admin.client_list():
        if client.get("name") == redis_prefix and int(client["id"]) != me:
            admin.client_kill_filter(_id=client["id"])


@pytest.mark.redis
@pytest.mark.parametrize("spin", ["0", "100"])
def test_redis_reads_survive_reply_errors_and_closed_connections(redis_prefix: str, spin: str) -> None:
    """A reply error costs that call only; a connection the server closed while idle is replaced."""
    import redis

    url = f"redis://127.0.0.1:6379/15?prefix={redis_prefix}&read_spin_us={spin}&client_name={redis_prefix}"
    store = open_online_store(url)
    put(store, "g", "1", 5, "x")
    admin = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    admin.rpush(f"{redis_prefix}g:list", "not a record")
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        store.read("g", "list")
    assert store.read("g", "1") is not None
    _server_kills_idle_reads(redis_prefix)
    got = store.read("g", "1")  # the killed idle connection is retried once on a new one
    assert got is not None and got.event_us == 5
    _server_kills_idle_reads(redis_prefix)
    assert [r is not None for r in store.read_many([("g", "1"), ("g", "2")])] == [True, False]
    store.close()


@pytest.mark.redis
@pytest.mark.parametrize("in_flight", [1, 64])
def test_redis_writes_reload_a_flushed_script_and_report_errors(
    redis_prefix: str, in_flight: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that lost the write script (restart, SCRIPT FLUSH) gets it again, whether the refused
    calls' replies were read while later calls were still being sent or after; a reply error is
    raised after every reply was read, so the connection stays usable."""
    import hiredis
    import redis

    import tideml.features.online.redis as redis_store

    monkeypatch.setattr(redis_store, "_IN_FLIGHT", in_flight)
    store = open_online_store(f"redis://127.0.0.1:6379/15?prefix={redis_prefix}")
    admin = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    admin.script_flush()
    batch = WriteBatch()
    for i in range(2500):  # three script calls
        batch.add(str(i), 10, None, encode_payload({"v": i}))
    assert store.write("g", batch) == 2500
    assert [value_of(store, "g", str(i)) for i in (0, 999, 1000, 2499)] == [0, 999, 1000, 2499]
    admin.set(f"{redis_prefix}text", "abc")
    failing = hiredis.pack_command(("INCR", f"{redis_prefix}text"))
    fine = hiredis.pack_command(("SET", f"{redis_prefix}ok", "1"))
    with pytest.raises(redis.exceptions.ResponseError, match="not an integer"):
        store._pipeline([failing, fine])  # type: ignore[attr-defined]
    assert admin.get(f"{redis_prefix}ok") == b"1"
    assert put(store, "g", "z", 30, "after") == 1
    assert value_of(store, "g", "z") == "after"
    store.close()


@pytest.mark.redis
def test_redis_write_dropped_mid_pipeline_is_sent_again_from_the_first_call(redis_prefix: str) -> None:
    """The server closes the writing connection after the first script call went out: the batch is
    sent again on a new connection, the calls already sent included (the one whose send failed
    too), and every record lands."""
    from tideml.features.online.redis import _CHUNK

    store = open_online_store(f"redis://127.0.0.1:6379/15?prefix={redis_prefix}&client_name={redis_prefix}")
    batch = WriteBatch()
    for i in range(3 * _CHUNK):
        batch.add(str(i), 10, None, encode_payload({"v": i}))
    put(store, "warm", "0", 1, "x")  # the script is loaded: the first call runs, not NOSCRIPT
    calls = store._write_commands("g", batch)  # type: ignore[attr-defined]
    killed = []

    def commands() -> Any:
        for i, call in enumerate(calls):
            if i == 1 and not killed:
                killed.append(True)
                time.sleep(0.05)  # the first call has run
                _server_kills_idle_reads(redis_prefix)
            yield call

    attempts = []
    once = store._pipeline_once  # type: ignore[attr-defined]

    def counted(*args: Any) -> Any:
        attempts.append(1)
        return once(*args)

    store._pipeline_once = counted  # type: ignore[attr-defined]
    store._pipeline(commands())  # type: ignore[attr-defined]  # no error: the retry went through
    assert killed and len(attempts) == 2
    assert [value_of(store, "g", str(i)) for i in (0, _CHUNK, 3 * _CHUNK - 1)] == [0, _CHUNK, 3 * _CHUNK - 1]
    assert store.count("g") == 3 * _CHUNK
    store.close()


@pytest.mark.redis
def test_redis_write_with_ragged_columns_is_refused_before_anything_is_sent(redis_prefix: str) -> None:
    store = open_online_store(f"redis://127.0.0.1:6379/15?prefix={redis_prefix}")
    batch = WriteBatch()
    for i in range(2500):
        batch.add(str(i), 10, None, encode_payload({"v": i}))
    batch.payloads.pop()
    with pytest.raises(ValidationError, match=r"different lengths \[2499, 2500\]"):
        store.write("g", batch)
    assert store.count("g") == 0
    store.close()


@pytest.mark.redis
def test_redis_read_that_times_out_is_not_retried(redis_prefix: str) -> None:
    """A hung server is not a stale connection: one timeout is reported, not one per idle connection."""
    import redis

    store = open_online_store(f"redis://127.0.0.1:6379/15?prefix={redis_prefix}&socket_timeout=0.1")
    put(store, "g", "1", 5, "x")
    readers = [store._take_reader(), store._take_reader()]  # type: ignore[attr-defined]
    for reader in readers:  # two idle connections that have served reads
        reader.used = True
        store._idle.append(reader)  # type: ignore[attr-defined]
    redis.Redis.from_url("redis://127.0.0.1:6379/15").client_pause(400, all=True)
    try:
        with pytest.raises(StoreUnavailable):
            store.read("g", "1")
        assert len(store._idle) == 1  # type: ignore[attr-defined]  # the other was never tried
    finally:
        time.sleep(0.45)  # until the pause ends
    assert store.read("g", "1") is not None
    store.close()


def test_redis_reads_from_an_unreachable_server_are_a_clear_error() -> None:
    store = open_online_store("redis://127.0.0.1:1/0")
    with pytest.raises(StoreUnavailable, match="TIDE_ONLINE_STORE_URL"):
        store.read("g", "1")


@pytest.mark.redis
def test_redis_reads_keep_one_connection_per_concurrent_reader(redis_prefix: str) -> None:
    """Short-lived threads return their connection: 50 threads one after another need one."""
    store = open_online_store(f"redis://127.0.0.1:6379/15?prefix={redis_prefix}")
    put(store, "g", "1", 5, "x")
    for _ in range(50):
        worker = threading.Thread(target=store.read, args=("g", "1"))
        worker.start()
        worker.join()
    assert len(store._idle) == 1  # type: ignore[attr-defined]
    store.close()


@pytest.mark.redis
def test_redis_reads_work_with_socket_numbers_above_1024(redis_prefix: str) -> None:
    """select() cannot watch a descriptor >= 1024; a busy server has that many files open."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the hard limit on open files is {hard}")
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (max(soft, 1200) if soft != resource.RLIM_INFINITY else soft, hard)
    )
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        store = open_online_store(f"redis://127.0.0.1:6379/15?prefix={redis_prefix}")
        put(store, "g", "1", 5, "x")
        assert store.read("g", "1") is not None
        assert store._idle[-1].conn._sock.fileno() >= 1024  # type: ignore[attr-defined]
        store.close()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.redis
@pytest.mark.parametrize("mark", ["wiped page", "page the fork hook zeroes", "process id"])
def test_redis_reader_in_a_forked_child_opens_its_own_connection(redis_prefix: str, mark: str) -> None:
    """A child forked after its parent read must not read on the parent's socket, and then keeps the
    one it opens. Linux tells a child by a byte in a page the kernel zeroes in children
    (MADV_WIPEONFORK), which Python's fork hook zeroes too (a layer may accept the advice and ignore
    it); elsewhere by the process id."""
    import mmap
    import os

    from tideml.features.online.redis import _PAGES, _PidMark

    store = open_online_store(f"redis://127.0.0.1:6379/15?prefix={redis_prefix}")
    if mark == "process id":
        store._mark = _PidMark()  # type: ignore[attr-defined]
    elif mark == "page the fork hook zeroes":  # no advice: only the hook can zero it
        page = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        page[0] = 1
        _PAGES.add(page)
        store._mark = page  # type: ignore[attr-defined]
    elif not isinstance(store._mark, mmap.mmap):  # type: ignore[attr-defined]
        pytest.skip("no MADV_WIPEONFORK here (Linux >= 4.14 has it)")
    put(store, "g", "1", 5, "x")
    assert store.read("g", "1") is not None  # the parent's reading connection is open (and idle)

    def port() -> int:
        return int(store._idle[-1].conn._sock.getsockname()[1])  # type: ignore[attr-defined]

    parent_port = port()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe and its exit code
        code = 1
        try:
            ports, found = set(), 0
            for _ in range(50):
                found += store.read("g", "1") is not None
                ports.add(port())
            os.write(write_end, ",".join(map(str, sorted(ports))).encode())
            code = 0 if found == 50 else 1
        finally:
            os._exit(code)
    os.close(write_end)
    child_ports = {int(p) for p in os.read(read_end, 256).split(b",")}
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(child_ports) == 1  # one connection of its own, kept across its reads
    assert parent_port not in child_ports  # not the parent's socket, shared by accident
    assert all(store.read("g", "1") is not None for _ in range(50))  # and the parent's still works
    assert port() == parent_port
    store.close()


def test_redis_read_spin_must_be_whole_microseconds() -> None:
    from tideml.errors import ConfigError

    with pytest.raises(ConfigError, match="read_spin_us"):
        open_online_store("redis://127.0.0.1:6379/15?read_spin_us=fast")


@pytest.mark.redis
def test_redis_over_a_unix_socket(tmp_path: Any) -> None:
    """`unix:///path?db=N` reaches a real server on its socket (a second redis-server, started here)."""
    import shutil
    import subprocess

    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (.ci/run installs and starts it)")
    sock = tmp_path / "redis.sock"
    proc = subprocess.Popen(
        [server, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        store = open_online_store(f"unix://{sock}?db=3&prefix=t:")
        store.ping()
        put(store, "g", "1", 5, "one")
        tombstone(store, "g", "2", 7)
        assert value_of(store, "g", "1") == "one"
        assert store.read_payload("g", "1") is not None and store.read_payload("g", "2") is None
        assert [r is not None for r in store.read_many([("g", "1"), ("g", "3")])] == [True, False]
        store.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("redis://user:secret@127.0.0.1:1/0", "redis://127.0.0.1:1/0"),
        ("unix:///nonexistent/redis.sock?db=0", "unix:///nonexistent/redis.sock"),
    ],
)
def test_unreachable_redis_is_a_clear_error(url: str, where: str) -> None:
    """The message names the server (a TCP address or a socket path), never the credentials."""
    store = open_online_store(url)
    with pytest.raises(StoreUnavailable, match="TIDE_ONLINE_STORE_URL") as caught:
        store.ping()
    assert f"cannot reach Redis at {where} (" in str(caught.value) and "secret" not in str(caught.value)


def test_sqlite_connections_use_wal_and_mapped_reads(tmp_path: Any) -> None:
    """Every thread's connection is in WAL mode with memory-mapped reads (unless `?mmap_mb=0`), and
    sees the latest commit; an unknown option is a ConfigError."""
    from tideml.errors import ConfigError

    store = open_online_store(f"sqlite:///{tmp_path / 'online.db'}")
    unmapped = open_online_store(f"sqlite:///{tmp_path / 'online.db'}?mmap_mb=0")
    put(store, "g", "1", 10, "first")
    seen: list[object] = []

    def reader() -> None:
        con = store._conn()  # type: ignore[attr-defined]
        seen.append(con.execute("PRAGMA journal_mode").fetchone()[0])
        seen.append(con.execute("PRAGMA mmap_size").fetchone()[0])
        seen.append(unmapped._conn().execute("PRAGMA mmap_size").fetchone()[0])  # type: ignore[attr-defined]
        seen.append(value_of(unmapped, "g", "1"))
        put(store, "g", "1", 20, "second")

    for _ in range(2):
        t = threading.Thread(target=reader)
        t.start()
        t.join()
    assert seen == ["wal", 1 << 30, 0, "first", "wal", 1 << 30, 0, "second"]
    assert value_of(store, "g", "1") == "second"
    store.close()
    unmapped.close()
    for bad in ("?mmap_mb=lots", "?cache=big"):
        with pytest.raises(ConfigError, match="mmap_mb"):
            open_online_store(f"sqlite:///{tmp_path / 'online.db'}{bad}")


def test_redis_url_the_server_refuses_is_a_config_error(redis_prefix: str) -> None:
    from tideml.features.online.redis import RedisOnlineStore

    store = RedisOnlineStore(f"redis://127.0.0.1:6379/99?prefix={redis_prefix}")
    for call in (store.ping, lambda: store.read("g", "1"), lambda: store.read_many([("g", "1")])):
        with pytest.raises(ConfigError) as err:
            call()
        assert "DB index is out of range" in str(err.value) and err.value.field == "url"
    store.close()
    wrong = RedisOnlineStore(f"redis://nobody:wrong@127.0.0.1:6379/15?prefix={redis_prefix}")
    with pytest.raises(ConfigError, match="invalid username-password pair"):  # not "cannot reach"
        wrong.ping()
    wrong.close()
