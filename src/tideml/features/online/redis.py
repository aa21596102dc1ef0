"""Redis online store (`redis://host:port/db`): one string key per record, read with GET / MGET.

Each value is a fixed-width header followed by the payload::

    <event time: 17 digits> <deleted: 0|1> <expiry: 17 digits, zeros = none> <payload JSON>

Event times are offset by 10^16 microseconds so they are positive and compare as strings. The
newer-event-time-wins rule runs inside Redis as a Lua script (read, compare, write in one atomic step),
so concurrent writers never let an older record overwrite a newer one. TTL uses Redis' own expiry
(`SET … PXAT`), and is also checked on read. A batch read across groups is one MGET: one round trip.
Reads (GET, MGET) are the online path's latency, so they skip redis-py's per-call machinery: a read
takes an idle connection (opened and authenticated by redis-py) from the store's own free list, writes
the command bytes itself (one `os.write` on a plain socket), parses the reply with hiredis and puts the
connection back. After sending, it spins on the socket for up to `read_spin_us` (default 100,
`?read_spin_us=0` to turn it off) before it sleeps: on a virtual machine an idle vCPU takes tens of
microseconds to wake, more than the loopback round trip itself, and spinning keeps the reader's vCPU
awake for the reply (bounded: a slow reply falls back to a blocking read). The spin yields the CPU
between polls, so a Redis that shares the reader's CPU runs as soon as it is woken. GET and MGET are
safe to repeat, so a read on an idle connection the server has since closed (restart, `timeout`,
failover) is retried once on a new one. The client's work between two reads is kept small on purpose:
on a VM, Redis' idle vCPU halts a few microseconds after its reply, and the next read then pays for
waking it.

The key prefix (default `tide:fs:`) can be set with `?prefix=…` in the URL, so several workspaces (or
test runs) can share one Redis database.
"""

from __future__ import annotations

import itertools
import mmap
import os
import select
import socket
import sys
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

import hiredis
import redis
import redis.exceptions

from tideml.errors import ConfigError, StoreUnavailable
from tideml.features.online.base import OnlineStore, StoredRecord, WriteBatch

__all__ = ["RedisOnlineStore"]

_OFFSET = 10**16
_NO_EXPIRY = b"0" * 17
_DELETED = ord("1")  # the header's deleted flag, as raw[17] reads it
_CHUNK = 1000
_IN_FLIGHT = 64  # script calls sent ahead of their replies

# KEYS: record keys; ARGV: value_1, pxat_1, value_2, pxat_2, ... (pxat "0" = no expiry). The stored
# values are read with one MGET and the winners written with one MSET (a SET per key only for values
# with an expiry): a third less Redis time per record than a GET and a SET per key. `pending` holds the
# value a key repeated in the batch has by then ('' once a past expiry deleted it), so the batch ends
# where its writes one by one would. MGET sees keys of another type (not ours) as absent.
# At most _CHUNK keys per call: MSET gets 2 values per key and Lua's unpack() stops near 8000.
_WRITE_LUA = """
local olds = redis.call('MGET', unpack(KEYS))
local plain, pending, applied, now_ms = {}, {}, 0, nil
for i = 1, #KEYS do
  local k, v, px = KEYS[i], ARGV[2 * i - 1], ARGV[2 * i]
  local old = pending[k] or olds[i]
  if (not old) or string.sub(old, 1, 17) <= string.sub(v, 1, 17) then
    applied = applied + 1
    if px == '0' then
      pending[k] = v
      plain[#plain + 1] = k
      plain[#plain + 1] = v
    else
      if #plain > 0 then
        redis.call('MSET', unpack(plain))
        plain = {}
      end
      redis.call('SET', k, v, 'PXAT', px)
      if not now_ms then
        local t = redis.call('TIME')
        now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
      end
      pending[k] = (tonumber(px) <= now_ms) and '' or v
    end
  end
end
if #plain > 0 then redis.call('MSET', unpack(plain)) end
return applied
"""
# KEYS[1]: record key; ARGV[1]: the delete's event time header. -1 refused, 1 deleted, 0 absent.
_HARD_DELETE_LUA = """
local old = redis.call('GET', KEYS[1])
if not old then return 0 end
if string.sub(old, 1, 17) > ARGV[1] then return {-1, string.sub(old, 1, 17)} end
redis.call('DEL', KEYS[1])
return 1
"""


def _header_event(event_us: int) -> bytes:
    return b"%017d" % (event_us + _OFFSET)


def _encode(event_us: int, expires_us: int | None, payload: bytes | None) -> bytes:
    exp = _NO_EXPIRY if expires_us is None else b"%017d" % (expires_us + _OFFSET)
    if payload is None:
        return b"%017d1%b" % (event_us + _OFFSET, exp)
    return b"%017d0%b%b" % (event_us + _OFFSET, exp, payload)


def _decode(raw: bytes) -> StoredRecord:
    event_us = int(raw[:17]) - _OFFSET
    deleted = raw[17] == _DELETED
    exp_raw = raw[18:35]
    expires_us = None if exp_raw == _NO_EXPIRY else int(exp_raw) - _OFFSET
    return StoredRecord(event_us, expires_us, deleted, None if deleted else raw[35:])


def _get_command(key: bytes) -> bytes:
    """GET in RESP by bytes formatting: ~0.1 µs, a third of hiredis' packing."""
    return b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n" % (len(key), key)


def _pack(*args: bytes | str | int) -> bytes:
    """A command in RESP, packed by hiredis (C): cheaper than Python's formatting per argument."""
    packed: bytes = hiredis.pack_command(cast(Any, args))
    return packed


@dataclass
class _Reader:
    """A connection kept for reads and its reply parser."""

    conn: Any
    parser: Any
    poller: Any
    fd: int  # the socket's descriptor for direct reads and writes; -1 for TLS (bytes go through ssl)
    used: bool = False


class _PidMark:
    """`[0]` is 1 in the process that last set it and 0 in its children: a getpid() per check."""

    def __init__(self) -> None:
        self._pid = os.getpid()

    def __getitem__(self, index: int) -> int:
        return int(os.getpid() == self._pid)

    def __setitem__(self, index: int, value: int) -> None:
        self._pid = os.getpid()


_PAGES: weakref.WeakSet[mmap.mmap] = weakref.WeakSet()  # the fork marks that are pages


def _zero_pages_in_child() -> None:
    """Python's own forks zero the marks too, in case a layer (an emulator) accepted the advice
    without honouring it."""
    for page in list(_PAGES):
        page[0] = 0


os.register_at_fork(after_in_child=_zero_pages_in_child)


def _fork_mark() -> mmap.mmap | _PidMark:
    """A byte that is 1 in this process and 0 in any process forked from it, however it forked (uWSGI
    forks its workers in C, where Python's fork hooks do not run): it lives in a private page the
    kernel zeroes in a child (MADV_WIPEONFORK, Linux 4.14+), and reading it costs ~20 ns against a
    getpid() system call's 0.1-0.5 µs on a VM. Elsewhere the process id is compared."""
    advice = getattr(mmap, "MADV_WIPEONFORK", 18 if sys.platform == "linux" else None)
    if advice is not None:
        try:
            page = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            page.madvise(advice)
        except (AttributeError, OSError, ValueError):  # an older kernel, or no madvise
            pass
        else:
            page[0] = 1
            _PAGES.add(page)
            return page
    return _PidMark()


_CONNECTION_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    hiredis.ProtocolError,
)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisOnlineStore(OnlineStore):
    """Latest record per (group, id) as Redis string keys `<prefix><group>:<id>`."""

    parallel_writes = True
    key_ordered_writes = False  # keys hash: sorting 1M ids first would cost ~0.3 s for nothing

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                f"{url!r} is not a Redis URL",
                obj="online store",
                field="url",
                fix="use redis://host:6379/0",
            )
        query = dict(parse_qsl(parts.query))
        self.prefix = query.pop("prefix", "tide:fs:")
        spin = query.pop("read_spin_us", "100")
        if not spin.isdigit():
            raise ConfigError(
                f"read_spin_us={spin!r} is not a whole number of microseconds",
                obj="online store",
                field="url",
                fix="use ?read_spin_us=100, or 0 to never spin",
            )
        self._spin_ns = int(spin) * 1000
        self.url = url
        # for messages, without credentials
        unix = parts.scheme == "unix"
        self._server = parts.path if unix else f"{parts.hostname}:{parts.port or 6379}"
        self._safe_url = f"unix://{parts.path}" if unix else f"{parts.scheme}://{self._server}{parts.path}"
        # the URL without tideml's options, as written (urlunsplit would turn unix:///p into unix:/p)
        clean = url.partition("?")[0] + (f"?{urlencode(query)}" if query else "")
        try:
            self._client = redis.Redis.from_url(clean, socket_timeout=10, socket_connect_timeout=5)
        except ValueError as exc:
            raise ConfigError(
                str(exc), obj="online store", field="url", fix="use redis://host:6379/0"
            ) from exc
        self._idle: deque[_Reader] = deque()  # append/pop are atomic: no lock
        self._mark = _fork_mark()  # 0 in a forked child: the idle readers are then its parent's
        self._write = self._client.register_script(_WRITE_LUA)
        self._hard_delete = self._client.register_script(_HARD_DELETE_LUA)

    def _key(self, group: str, record_id: str) -> str:
        return f"{self.prefix}{group}:{record_id}"

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        return StoreUnavailable(
            f"cannot reach Redis at {self._safe_url} ({exc})",
            obj="online store",
            field="url",
            fix="start Redis or correct [online_store] url / TIDE_ONLINE_STORE_URL",
        )

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise self._unavailable(exc) from exc

    def _connection(self) -> Any:
        """A connected, authenticated connection from the pool. The server refusing its setup (a
        database number it does not have, a wrong password) is the URL's fault, not an outage."""
        try:
            return self._client.connection_pool.get_connection()
        except (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError) as exc:
            raise ConfigError(
                f"Redis at {self._server} refused the connection's setup ({exc})",
                obj="online store",
                field="url",
                fix="use a database number the server has (0-15 by default) and the right credentials",
            ) from exc

    def ping(self) -> None:
        # a database number the server lacks is a clear error here, not at the first read
        self._client.connection_pool.release(self._call(self._connection))
        self._call(self._client.ping)

    def write(self, group: str, batch: WriteBatch) -> int:
        """Newer-wins upserts: one script call per _CHUNK records, pipelined. Each call is sent as soon
        as it is packed, so Redis runs call i while this thread packs call i + 1 (packing everything
        first left Redis idle for that time: 100k records, 0.36 s -> ~0.22 s). The commands are packed
        here with hiredis: redis-py's per-argument packing and its script-exists check cost more client
        time than Redis spends running the script. Calls that went out before an error (an error reply,
        a connection lost twice) stay applied; newer-wins makes running the batch again safe."""
        if not len(batch):
            return 0
        batch.check(group)  # before the first call goes out, not when packing reaches the end
        return sum(int(r) for r in self._call(self._pipeline, self._write_commands(group, batch)))

    def _write_commands(self, group: str, batch: WriteBatch) -> Iterator[bytes]:
        """The batch's script calls, packed one at a time."""
        prefix = f"{self.prefix}{group}:".encode()
        for start in range(0, len(batch), _CHUNK):
            stop = start + _CHUNK
            keys = [prefix + rid.encode() for rid in batch.ids[start:stop]]
            argv: list[bytes] = []
            for ev, exp, payload in zip(
                batch.event_us[start:stop],
                batch.expires_us[start:stop],
                batch.payloads[start:stop],
                strict=True,
            ):
                argv.append(_encode(ev, exp, payload))
                argv.append(b"0" if exp is None else b"%d" % max(1, -(-exp // 1000)))
            yield _pack(b"EVALSHA", self._write.sha, len(keys), *keys, *argv)

    def _pipeline(self, commands: Iterable[bytes]) -> list[Any]:
        """Send packed script calls and read every reply. The writes are idempotent, so a connection
        the server dropped mid-batch is retried once on a new one, from the first call (a timeout is
        reported, not retried)."""
        pending = iter(commands)
        sent: list[bytes] = []
        try:
            return self._pipeline_once(pending, sent)
        except redis.exceptions.ConnectionError:
            return self._pipeline_once(itertools.chain(sent, pending), [])

    def _pipeline_once(self, commands: Iterator[bytes], sent: list[bytes]) -> list[Any]:
        """One attempt; `sent` collects the commands as they go out. A server that lost the script
        (restart, SCRIPT FLUSH) answers NOSCRIPT: the script is loaded and the calls from the first
        refused one on are sent again, in order."""
        pool = self._client.connection_pool
        conn: Any = self._connection()
        try:
            replies = self._stream(conn, commands, sent)
            refused = [i for i, r in enumerate(replies) if isinstance(r, redis.exceptions.NoScriptError)]
            if refused:
                (loaded,) = self._stream(conn, [_pack(b"SCRIPT", b"LOAD", _WRITE_LUA)])
                if isinstance(loaded, Exception):
                    raise loaded
                replies[refused[0] :] = self._stream(conn, sent[refused[0] :])
        except BaseException:  # a dropped connection, a timeout, an interrupt: no unread reply to the pool
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    @staticmethod
    def _stream(conn: Any, commands: Iterable[bytes], sent: list[bytes] | None = None) -> list[Any]:
        """Send each command as it comes and read the replies, at most _IN_FLIGHT behind (so unread
        replies never fill a socket buffer while this thread blocks sending); `sent` collects the
        commands as they go out."""
        sent = [] if sent is None else sent
        replies: list[Any] = []

        def read_one() -> None:
            try:
                replies.append(conn.read_response())
            except redis.exceptions.ResponseError as exc:  # the whole reply was read: still in step
                replies.append(exc)

        for command in commands:
            sent.append(command)  # before sending: a send that fails is sent again by the retry
            conn.send_packed_command([command])
            if len(sent) - len(replies) > _IN_FLIGHT:
                read_one()
        while len(replies) < len(sent):
            read_one()
        return replies

    def _take_reader(self) -> _Reader:
        if not self._mark[0]:
            # a forked child must not read on its parent's sockets (it could be handed the parent's
            # replies): it forgets them, without closing anything the parent still uses. (Two of
            # the child's threads here at once may forget a reader one of them just opened: a
            # connection lost to the pool, never a shared one.)
            self._idle.clear()
            self._mark[0] = 1
        try:
            return self._idle.pop()
        except IndexError:  # none idle (or another thread took the last one)
            pass
        conn = self._call(self._connection)
        sock = conn._sock
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return _Reader(conn, hiredis.Reader(), poller, sock.fileno() if type(sock) is socket.socket else -1)

    def _discard(self, reader: _Reader) -> None:
        reader.conn.disconnect()
        self._client.connection_pool.release(reader.conn)

    def _exchange(self, reader: _Reader, command: bytes) -> Any:
        """Send a command and read its reply. With a plain socket the bytes go by `os.write` and, once
        the spin saw the reply, `os.read`: the socket has a timeout, so `sendall` and `recv` would each
        poll first, one more syscall each (~0.5 µs on this VM) in the client's work between reads."""
        sock = reader.conn._sock
        fd = reader.fd
        sent = 0
        if fd >= 0:
            try:  # noqa: SIM105 (contextlib.suppress would add ~0.2 µs to every read)
                sent = os.write(fd, command)
            except BlockingIOError:  # the send buffer is full: sendall waits, bounded by the timeout
                pass
        if sent < len(command):
            sock.sendall(command[sent:])
        ready = False
        if self._spin_ns:
            poll = reader.poller.poll
            deadline = time.perf_counter_ns() + self._spin_ns
            while not (ready := bool(poll(0))) and time.perf_counter_ns() < deadline:
                # gives way at once if Redis (or anything) waits for this CPU, else returns: a spin
                # that does not yield can keep a Redis woken on this CPU off it until the deadline
                os.sched_yield()
        parser = reader.parser  # holds nothing yet: each exchange reads exactly its own reply
        while True:
            # the socket is readable after the spin; later chunks of a large reply wait in recv
            chunk = os.read(fd, 65536) if ready and fd >= 0 else sock.recv(65536)
            ready = False
            if not chunk:
                raise redis.exceptions.ConnectionError("Redis closed the connection")
            parser.feed(chunk)
            if (reply := parser.gets()) is not False:
                return reply

    def _read(self, command: bytes) -> Any:
        """Send one packed read command (GET or MGET: safe to repeat) and return its reply."""
        while True:
            reader = self._take_reader()
            try:
                reply = self._exchange(reader, command)
            except _CONNECTION_ERRORS as exc:
                self._discard(reader)
                timed_out = isinstance(exc, TimeoutError | redis.exceptions.TimeoutError)
                if reader.used and not timed_out:  # closed by the server while idle: once more, anew
                    continue
                raise self._unavailable(exc) from exc
            except BaseException:  # a half-read reply would poison the connection
                self._discard(reader)
                raise
            reader.used = True
            self._idle.append(reader)
            if isinstance(reply, hiredis.ReplyError):
                raise redis.exceptions.ResponseError(str(reply))
            return reply

    def read(self, group: str, record_id: str) -> StoredRecord | None:
        raw = self._read(_get_command(self._key(group, record_id).encode()))
        return None if raw is None else _decode(raw)

    def read_payload(self, group: str, record_id: str, now_us: int | None = None) -> bytes | None:
        """The header is checked in place (deleted flag, expiry), without decoding a StoredRecord."""
        key = f"{self.prefix}{group}:{record_id}".encode()  # `_key` inline: its call costs ~0.1 µs
        raw = self._read(_get_command(key))
        if raw is None or raw[17] == _DELETED:
            return None
        expiry = raw[18:35]
        if expiry != _NO_EXPIRY:
            now = time.time_ns() // 1000 if now_us is None else now_us
            if now >= int(expiry) - _OFFSET:
                return None
        payload: bytes = raw[35:]
        return payload

    def read_many(self, keys: Sequence[tuple[str, str]]) -> list[StoredRecord | None]:
        if not keys:
            return []
        prefixes: dict[str, bytes] = {}
        packed = []
        for g, rid in keys:
            prefix = prefixes.get(g)
            if prefix is None:
                prefix = prefixes[g] = f"{self.prefix}{g}:".encode()
            packed.append(prefix + rid.encode())
        raws = self._read(_pack(b"MGET", *packed))
        return [None if raw is None else _decode(raw) for raw in raws]

    def hard_delete(self, group: str, record_id: str, event_us: int) -> bool:
        result = self._call(
            self._hard_delete, keys=[self._key(group, record_id)], args=[_header_event(event_us)]
        )
        if isinstance(result, list):
            raise self._refuse_hard_delete(group, record_id, int(result[1]) - _OFFSET, event_us)
        return int(result) == 1

    def _scan_keys(self, group: str) -> list[bytes]:
        pattern = _glob_escape(f"{self.prefix}{group}:") + "*"
        return list(self._call(lambda: list(self._client.scan_iter(match=pattern, count=1000))))

    def drop_group(self, group: str) -> int:
        keys = self._scan_keys(group)
        removed = 0
        for start in range(0, len(keys), _CHUNK):
            removed += int(self._call(self._client.unlink, *keys[start : start + _CHUNK]))
        return removed

    def count(self, group: str) -> int:
        return len(self._scan_keys(group))

    def close(self) -> None:
        self._idle.clear()
        self._client.connection_pool.disconnect()  # the readers' connections too
        self._client.close()
