"""Point-in-time datasets against a brute-force Python oracle (hypothesis).

The generated logs have late arrivals (batches whose event times are older than earlier batches'),
equal event times across batches (tie-broken by api_invocation_time, then write_time), tombstones
followed by re-inserts, TTLs, time travel on write_time, event-time ranges, both modes and
number-of-recent-records.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tideml.features import dataset as dataset_module
from tideml.features.dataset import build_dataset
from tideml.features.offline import OfflineStore
from tideml.features.spec import FeatureGroupSpec

T0 = 1_704_067_200


@dataclass(frozen=True)
class Row:
    id: int
    et: int  # seconds after T0
    deleted: bool
    value: int | None
    api: int  # microseconds since the epoch (tiny numbers are fine as instants)
    write: int

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.et, self.api, self.write)


def make_spec(ttl: int | None) -> FeatureGroupSpec:
    return FeatureGroupSpec.from_dict(
        {
            "name": "g",
            "record_identifier": "id",
            "event_time": "et",
            "features": [
                {"name": "id", "type": "Integral", "nullable": False},
                {"name": "et", "type": "Fractional", "nullable": False},
                {"name": "v", "type": "Integral"},
            ],
            "online": {"ttl": {"unit": "Seconds", "value": ttl} if ttl else None},
        }
    )


def write_log(store: OfflineStore, spec: FeatureGroupSpec, log: list[Row]) -> None:
    batches: dict[tuple[int, int, bool], list[Row]] = {}
    for r in log:
        batches.setdefault((r.api, r.write, r.deleted), []).append(r)
    for (api, write, deleted), rows in batches.items():
        frame = pl.DataFrame(
            {
                "id": [r.id for r in rows],
                "et": [datetime.fromtimestamp(T0 + r.et, UTC) for r in rows],
                "v": [r.value for r in rows],
                "is_deleted": [deleted] * len(rows),
            },
            schema={"id": pl.Int64, "et": pl.Datetime("us", "UTC"), "v": pl.Int64, "is_deleted": pl.Boolean},
        )
        unique = len({(r.id, r.et) for r in rows}) == len(rows)  # told truthfully, as ingest does
        store.append(spec, frame, api_invocation_us=api, write_us=write, unique_keys=unique)


def asof_options(ttl: int | None) -> dict[str, Any]:
    """The oracle's options for a plain as-of join with entity times (no time travel, no range)."""
    return {
        "mode": "asof",
        "as_of": None,
        "include_deleted": False,
        "include_duplicates": False,
        "recent_records": None,
        "range": None,
        "ttl": ttl,
        "at": 0,
    }


def oracle(
    log: list[Row], entities: list[tuple[int, int]] | None, o: dict[str, Any]
) -> list[tuple[int, int, int | None]]:
    """Rows of (entity row number, entity id, value): tideml.features.dataset's rules by brute force."""
    lo, hi = o["range"] or (None, None)
    rows = [
        r
        for r in log
        if (o["as_of"] is None or r.write <= o["as_of"])
        and (lo is None or r.et >= lo)
        and (hi is None or r.et <= hi)
    ]
    if o["include_deleted"]:  # tombstones are ignored entirely: deleted records stay visible
        rows = [r for r in rows if not r.deleted]
    if o["mode"] == "all" and not o["include_duplicates"]:
        best: dict[tuple[int, int], Row] = {}
        for r in rows:
            if (r.id, r.et) not in best or r.key > best[(r.id, r.et)].key:
                best[(r.id, r.et)] = r
        rows = list(best.values())
    ttl = o["ttl"]
    if entities is None:  # every id with a visible record as of `at`
        at = o["at"]
        ids = []
        for i in sorted({r.id for r in rows}):
            c = [r for r in rows if r.id == i and r.et <= at]
            if c and not max(c, key=lambda r: r.key).deleted:
                ids.append(i)
        entities = [(i, at) for i in ids]
    out: list[tuple[int, int, int, int | None, tuple[int, int, int] | None]] = []
    for idx, (eid, t) in enumerate(entities):
        c = [r for r in rows if r.id == eid and r.et <= t]
        if o["mode"] == "asof":
            m = max(c, key=lambda r: r.key) if c else None
            ok = m is not None and not m.deleted and not (ttl and t >= m.et + ttl)
            out.append((idx, eid, t, m.value if ok and m else None, None))
            continue
        if not o["include_deleted"]:
            tombs = [r for r in c if r.deleted]
            limit = max(r.key for r in tombs) if tombs else None
            c = [r for r in c if not r.deleted and (limit is None or r.key > limit)]
        if ttl:
            c = [r for r in c if t < r.et + ttl]
        if not c:
            out.append((idx, eid, t, None, None))
        out += [(idx, eid, t, r.value, r.key) for r in c]
    if o["recent_records"]:
        kept = []
        for eid in {e for _, e, *_ in out}:
            mine = [x for x in out if x[1] == eid]
            mine.sort(key=lambda x: (-x[2], (0, tuple(-k for k in x[4])) if x[4] else (1, ()), x[0]))
            kept += mine[: o["recent_records"]]
        out = kept
    out.sort(key=lambda x: (x[0], (0, tuple(-k for k in x[4])) if x[4] else (1, ())))
    return [(x[0], x[1], x[3]) for x in out]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Row], list[tuple[int, int]] | None, dict[str, Any]]:
    n_batches = draw(st.integers(1, 6))
    stamps = draw(
        st.lists(
            st.tuples(st.integers(0, 6), st.integers(0, 6)),
            min_size=n_batches,
            max_size=n_batches,
            unique=True,
        )
    )
    log: list[Row] = []
    for api, write in stamps:
        deleted = draw(st.booleans()) and draw(st.booleans())  # tombstone batches about 1 in 4
        pairs = draw(
            st.lists(st.tuples(st.integers(1, 3), st.integers(0, 8)), min_size=1, max_size=5, unique=True)
        )
        for rid, et in pairs:
            value = None if deleted else draw(st.one_of(st.none(), st.integers(-9, 9)))
            log.append(Row(rid, et, deleted, value, api, write))
    mode = draw(st.sampled_from(["asof", "all"]))
    snapshot = mode == "asof" and draw(st.booleans()) and draw(st.booleans())
    entities = (
        None
        if snapshot
        else draw(st.lists(st.tuples(st.integers(1, 4), st.integers(-1, 10)), min_size=1, max_size=6))
    )
    lo = draw(st.one_of(st.none(), st.integers(0, 8)))
    hi = draw(st.one_of(st.none(), st.integers(0, 8)))
    options = {
        "mode": mode,
        "at": draw(st.integers(0, 10)),
        "as_of": draw(st.one_of(st.none(), st.integers(0, 6))),
        "include_deleted": draw(st.booleans()),
        "include_duplicates": mode == "all" and draw(st.booleans()),
        "recent_records": draw(st.one_of(st.none(), st.integers(1, 3))) if mode == "all" else None,
        "range": None if lo is None and hi is None else (lo, hi),
        "ttl": draw(st.one_of(st.none(), st.integers(1, 4))),
        "one_pass_rows": draw(st.sampled_from([0, 1_000])),  # 0: keys first, then the matched rows
        "sorted_keys": draw(st.booleans()),  # unique integer keys: one sort, or DuckDB's ASOF join
    }
    return log, entities, options


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_dataset_matches_the_oracle(tmp_path_factory: pytest.TempPathFactory, scenario: Any) -> None:
    log, entities, o = scenario
    spec = make_spec(o["ttl"])
    store = OfflineStore(tmp_path_factory.mktemp("pit"))
    write_log(store, spec, log)
    ent = None
    if entities is not None:
        ent = pl.DataFrame(
            {
                "row": list(range(len(entities))),
                "id": [e for e, _ in entities],
                "t": [T0 + t for _, t in entities],
            }
        )
    lo, hi = o["range"] or (None, None)
    with (
        mock.patch.object(dataset_module, "_ONE_PASS_ROWS", o["one_pass_rows"]),
        mock.patch.object(dataset_module, "_SORTED_KEYS", o["sorted_keys"]),
    ):
        result = build_dataset(
            store,
            {"g": spec},
            ["g.v"],
            entities=ent,
            entity_time="t" if ent is not None else None,
            at_us=(T0 + o["at"]) * 1_000_000,
            as_of_us=o["as_of"],
            include_deleted=o["include_deleted"],
            include_duplicates=o["include_duplicates"],
            recent_records=o["recent_records"],
            event_time_range=None
            if o["range"] is None
            else (
                None if lo is None else (T0 + lo) * 1_000_000,
                None if hi is None else (T0 + hi) * 1_000_000,
            ),
            mode=o["mode"],
        )
    got_rows = result.table.to_pylist()
    want = oracle(log, entities, o)
    if entities is None:  # snapshot: one row per visible id, in id order
        assert [(r["id"], r["v"]) for r in got_rows] == [(eid, v) for _, eid, v in want]
    else:
        assert [(r["row"], r["v"]) for r in got_rows] == [(idx, v) for idx, _, v in want]


def test_oracle_example_tombstone_then_reinsert_late_arrival_and_ttl(tmp_path: Path) -> None:
    """A hand-checked case, so the oracle itself is anchored to known answers."""
    log = [
        Row(1, 1, False, 10, api=1, write=1),
        Row(1, 3, True, None, api=2, write=2),  # deleted at t=3
        Row(1, 5, False, 50, api=3, write=3),  # re-inserted at t=5
        Row(1, 2, False, 20, api=4, write=6),  # late arrival, written last
        Row(2, 4, False, 7, api=1, write=1),
        Row(2, 4, False, 8, api=5, write=5),  # same event time, later call wins
    ]
    spec = make_spec(ttl=3)
    store = OfflineStore(tmp_path)
    write_log(store, spec, log)
    ent = pl.DataFrame(
        {"row": [0, 1, 2, 3, 4, 5], "id": [1, 1, 1, 1, 2, 2], "t": [T0 + t for t in (1, 2, 4, 6, 4, 9)]}
    )
    got = (
        build_dataset(store, {"g": spec}, ["g.v"], entities=ent, entity_time="t")
        .table.column("v")
        .to_pylist()
    )
    assert got == [10, 20, None, 50, 8, None]  # t=9 for id 2: expired (4 + 3 <= 9)
    o = asof_options(ttl=3)
    assert [v for _, _, v in oracle(log, [(1, 1), (1, 2), (1, 4), (1, 6), (2, 4), (2, 9)], o)] == got
    travelled = build_dataset(store, {"g": spec}, ["g.v"], entities=ent, entity_time="t", as_of_us=3)
    assert travelled.table.column("v").to_pylist() == [
        10,
        10,
        None,
        50,
        7,
        None,
    ]  # before the late rows landed


def _asof_values(store: OfflineStore, spec: FeatureGroupSpec, probes: list[tuple[int, int]]) -> Any:
    ent = pl.DataFrame(
        {"row": list(range(len(probes))), "id": [e for e, _ in probes], "t": [T0 + t for _, t in probes]}
    )
    return build_dataset(store, {"g": spec}, ["g.v"], entities=ent, entity_time="t")


@pytest.mark.parametrize(
    ("batches", "by_event_time"),
    [
        ([[(1, 1, 10), (2, 1, 20), (1, 5, 11)]], True),  # one ingest
        ([[(1, 1, 10), (2, 2, 20)], [(1, 5, 11), (2, 6, 21)]], True),  # later batches, later times
        ([[(1, 5, 11)], [(1, 1, 10), (2, 3, 20)]], True),  # a late batch, still disjoint spans
        ([[(1, 1, 10), (2, 6, 20)], [(1, 5, 11)]], False),  # spans overlap: may share (id, t)
        ([[(1, 1, 10)], [(1, 1, 99)]], False),  # the same (id, t) twice: the later call wins
    ],
)
@pytest.mark.parametrize("sorted_keys", [True, False])
def test_groups_with_unique_keys_join_on_event_time_alone(
    tmp_path: Path, batches: list[list[tuple[int, int, int]]], by_event_time: bool, sorted_keys: bool
) -> None:
    """When the manifest proves no two rows share an id and an event time, the join drops the
    (event, api, write) tie-break key: one sort of packed (id, time) keys, or DuckDB's ASOF join on
    the event time; the answers are the oracle's every way."""
    spec = make_spec(ttl=None)
    store = OfflineStore(tmp_path)
    log = [
        Row(rid, et, False, v, api=b + 1, write=b + 1)
        for b, batch in enumerate(batches)
        for rid, et, v in batch
    ]
    write_log(store, spec, log)
    assert OfflineStore.keys_unique(store.files("g")) is by_event_time
    probes = [(rid, t) for rid in (1, 2, 3) for t in range(-1, 8)]
    with mock.patch.object(dataset_module, "_SORTED_KEYS", sorted_keys):
        result = _asof_values(store, spec, probes)
    if by_event_time:
        assert result.joins == {"g": "sorted-keys" if sorted_keys else "asof-event-time"}
        assert ("b.__tide_t >= g0.__tide_et" in result.sql) is not sorted_keys
    else:
        assert result.joins == {"g": "asof-tie-break"} and "b.__tide_o >= g0.__tide_o" in result.sql
    o = asof_options(ttl=None)
    assert result.table.column("v").to_pylist() == [v for _, _, v in oracle(log, probes, o)]


def test_unique_keys_are_unknown_for_old_manifests_and_kept_through_compaction(tmp_path: Path) -> None:
    from dataclasses import replace

    spec = make_spec(ttl=None)
    store = OfflineStore(tmp_path)
    write_log(store, spec, [Row(1, 1, False, 10, api=1, write=1), Row(1, 5, False, 11, api=2, write=2)])
    files = store.files("g")
    assert OfflineStore.keys_unique(files)
    assert not OfflineStore.keys_unique([replace(f, batch="", unique_keys=False) for f in files])
    assert not OfflineStore.keys_unique([replace(files[0], unique_keys=False), files[1]])
    store.compact(spec)  # one file now: its own rows decide
    assert len(store.files("g")) == 1 and OfflineStore.keys_unique(store.files("g"))
    write_log(store, spec, [Row(1, 5, False, 12, api=3, write=3)])  # the same (id, t) again
    assert not OfflineStore.keys_unique(store.files("g"))
    store.compact(spec)
    (merged,) = store.files("g")
    assert not merged.unique_keys and not OfflineStore.keys_unique([merged])
    assert _asof_values(store, spec, [(1, 6)]).table.column("v").to_pylist() == [12]


@pytest.mark.parametrize(
    ("id_span", "in_time_order", "joined"),
    [
        (8, True, "sorted-keys"),
        (8, False, "sorted-keys"),
        (1 << 30, False, "sorted-keys"),
        (1 << 40, True, "sorted-keys"),
        (1 << 40, False, "asof-event-time"),
        (1 << 62, True, "asof-event-time"),
    ],
)
def test_sorted_keys_clamp_times_skip_unknown_ids_and_fall_back_when_keys_do_not_pack(
    tmp_path: Path, id_span: int, in_time_order: bool, joined: str
) -> None:
    """Entity ids outside the group's range or null never match; entity times far before or after
    every row behave like the group's first and last instants, and times between whole seconds like
    the second before. Rows in time order pack ids with row positions: 2^40 ids fit, 2^62 do not and
    take DuckDB's ASOF join. Rows out of time order (the time-order match declined here) pack ids
    with times, in whole seconds since every time is one: 2^30 ids over ~3 years fit, 2^40 do not."""
    spec = make_spec(ttl=10)
    store = OfflineStore(tmp_path)
    year = 365 * 86_400
    log = [
        Row(1, 0, False, 10, api=1, write=1),
        Row(1, 3600, True, None, api=1, write=1),  # deleted an hour later (its own partition)
        Row(1, 7200, False, 70, api=1, write=1),  # re-inserted an hour after that
        Row(id_span, 3 * year, False, 99, api=1, write=1),
    ]
    write_log(store, spec, log)
    probes: list[tuple[int | None, float]] = [
        (1, -year),  # before every row: nothing
        (1, 0),  # the same instant as the row: it matches
        (1, 3601),  # after the tombstone
        (1, 7199.5),  # half a second before the re-insert
        (1, 7200.5),  # half a second after it
        (1, 7210),  # 7200 + 10: expired
        (0, 7201),  # below the id range
        (None, 7201),  # no id
        (id_span, 3 * year),
        (id_span, 3 * year + 9),
        (id_span + 1, 50 * year),  # above the id range, far in the future
    ]
    ent = pl.DataFrame(
        {
            "row": list(range(len(probes))),
            "id": [e for e, _ in probes],
            "t": [float(T0 + t) for _, t in probes],
        }
    )
    declined = mock.patch.object(dataset_module, "_match_in_time_order", lambda *args: None)
    with nullcontext() if in_time_order else declined:
        result = build_dataset(store, {"g": spec}, ["g.v"], entities=ent, entity_time="t")
    assert result.joins == {"g": joined}
    assert result.table.column("v").to_pylist() == [None, 10, None, None, 70, None, None, None, 99, 99, None]


@contextmanager
def by_position() -> Iterator[list[bool]]:
    """Records, per sorted-keys match, whether it ordered the rows by (id, position) values."""
    taken: list[bool] = []
    original = dataset_module._match_in_time_order

    def recording(*args: Any) -> Any:
        order = original(*args)
        taken.append(order is not None)
        return order

    with mock.patch.object(dataset_module, "_match_in_time_order", recording):
        yield taken


def test_one_ingest_over_many_hours_is_matched_by_id_and_position(tmp_path: Path) -> None:
    """A shuffled batch over 50 hours: each hour's file is sorted and the dataset reads the files in
    time order, so the match sorts (id, position) values; DuckDB's ASOF join finds the same rows."""
    spec = make_spec(ttl=None)
    store = OfflineStore(tmp_path)
    log = [Row(i % 97, (i * 7919) % (3600 * 50), False, i, api=1, write=1) for i in range(5000)]
    write_log(store, spec, [log[(i * 2003) % 5000] for i in range(5000)])  # shuffled
    assert len(store.files("g")) == 50
    ent = pl.DataFrame({"id": [i % 101 for i in range(400)], "t": [float(T0 + 450 * i) for i in range(400)]})
    with by_position() as taken:
        fast = build_dataset(store, {"g": spec}, ["g.v"], entities=ent, entity_time="t")
    assert taken == [True] and fast.joins == {"g": "sorted-keys"}
    with mock.patch.object(dataset_module, "_SORTED_KEYS", False):
        duck = build_dataset(store, {"g": spec}, ["g.v"], entities=ent, entity_time="t")
    assert duck.joins == {"g": "asof-event-time"}
    assert fast.table.column("v").to_pylist() == duck.table.column("v").to_pylist()
    assert fast.table.column("v").null_count < 400


@pytest.mark.parametrize(("step_us", "packs"), [(1_000_000, True), (1_000_001, False)])
def test_keys_of_rows_out_of_time_order_count_whole_seconds(step_us: int, packs: bool) -> None:
    """Rows out of time order pack (id, event time): in whole seconds when every time is one, so 2^30
    ids over ~3 years fit in 63 bits; in microseconds they do not, and the match declines."""
    year_s = 3 * 365 * 86_400
    times = [0, year_s * step_us // 2, year_s * step_us]
    rows = pl.DataFrame(
        {
            "n": [0, 1, 2],
            "id": [1 << 30, 0, 5],
            "et": pl.Series([T0 * 1_000_000 + t for t in times]).cast(pl.Datetime("us", "UTC")),
            "is_deleted": [False, False, False],
        }
    )
    rows = rows.sort("id")
    assert not rows.get_column("et").is_sorted()  # id order is not time order
    entity_t = pl.Series([datetime.fromtimestamp(T0 + year_s + 5, UTC)] * 2)
    matched = dataset_module._match_sorted_keys(rows, pl.Series([5, 1 << 30]), entity_t, None)
    assert (matched is not None) == packs
    assert matched is None or matched.to_list() == [2, 0]


def test_sorted_keys_match_the_same_rows_in_any_row_order() -> None:
    """Rows in event-time order are sorted by (id, position) values, others by an arg sort of their
    (id, event time) keys: both find each entity row's latest row at or before its time."""
    rng = range(2000)
    rows = pl.DataFrame(
        {
            "n": [3 * i + 7 for i in rng],  # row numbers are not positions (filtered candidates)
            "id": [(i * 37) % 101 for i in rng],
            "et": [datetime.fromtimestamp(T0 + 60 * i, UTC) for i in rng],
            "is_deleted": [i % 13 == 0 for i in rng],
        }
    )
    # and a null id, and an entity time before every row
    ids = pl.Series([(i * 53) % 103 for i in range(500)] + [None, 5], dtype=pl.Int64)
    times = pl.Series([datetime.fromtimestamp(T0 + 250 * i, UTC) for i in [*range(500), 100, -10]])
    shuffled = rows.sample(fraction=1.0, shuffle=True, seed=1)
    with by_position() as taken:
        in_order = dataset_module._match_sorted_keys(rows, ids, times, ttl_seconds=3000)
        again = dataset_module._match_sorted_keys(shuffled, ids, times, 3000)
    assert taken == [True, False]  # the shuffled rows took the arg sort
    assert in_order is not None and again is not None and in_order.null_count() not in (0, 502)
    assert in_order[-2:].to_list() == [None, None]
    assert in_order.to_list() == again.to_list()
    expected = []
    for e, t in zip(ids, times, strict=True):
        older = [r for r in rows.iter_rows(named=True) if r["id"] == e and r["et"] <= t]
        last = max(older, key=lambda r: r["et"], default=None)
        fresh = last is not None and not last["is_deleted"] and (t - last["et"]).total_seconds() < 3000
        expected.append(last["n"] if fresh else None)
    assert in_order.to_list() == expected
