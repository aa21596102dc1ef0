"""Point-in-time datasets: entity rows joined to feature groups as of each row's time (DuckDB ASOF JOIN).

The rules (the hypothesis oracle in `tests/features/test_features_dataset_oracle.py` restates them in
plain Python):

* A group's candidate rows are its offline rows with `write_time <= as_of` (time travel) and an event
  time inside `event_time_range`. Rows are ordered by (event time, api_invocation_time, write_time).
* Mode `asof` (default, one row per entity row): for each entity row (id, t), the greatest row of the
  group with that id and event time <= t. If that row is a tombstone the features are null (the record
  was deleted at t); if `apply_ttl` and the group has an online TTL and t >= event time + TTL, they are
  null (the online store would have expired it). Duplicates (same id and event time) resolve to the
  greatest row, so ingesting the same data twice never multiplies rows. `include_deleted=True` ignores
  tombstones, so deleted records stay visible. When the manifest proves that no two candidate rows
  share an id and an event time (`OfflineStore.keys_unique`: one ingest, or ingests whose event
  times do not overlap), the join orders by the event time alone: the same rows, faster.
* Mode `all` (SageMaker's DatasetBuilder without a row limit): every matching row with event time <= t
  after the latest tombstone <= t, de-duplicated per (id, event time) unless `include_duplicates`;
  `recent_records=n` keeps the n most recent per entity id; TTL bounds the look-back.
* Without an entity frame, the entities are every id with a visible record in the first group as of
  `at` (default: now), and every group is joined as of `at`.

The feature order of the output is the order of the request; `group.*` expands in definition order,
without the record identifier, the event time or the label.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl
import pyarrow as pa

from tideml.errors import NotFound, ValidationError
from tideml.features._time import series_to_event_us
from tideml.features.offline import DataFile, OfflineStore
from tideml.features.spec import FeatureGroupSpec, FeatureType
from tideml.features.sql_text import group_relation_sql, quote_ident

__all__ = ["DatasetTable", "FeatureRef", "build_dataset", "parse_feature_refs"]

Mode = Literal["asof", "all"]
_INTERNAL = "__tide_"
_ONE_PASS_ROWS = 2_000_000
_SORTED_KEYS = True  # match unique integer keys by one sort (_match_sorted_keys); tests turn it off


@dataclass(frozen=True)
class FeatureRef:
    """One requested feature: `group.feature`."""

    group: str
    feature: str

    def __str__(self) -> str:
        return f"{self.group}.{self.feature}"


@dataclass
class DatasetTable:
    """The result of `build_dataset`: the rows and how they were made."""

    table: pa.Table
    sql: str
    groups: list[str]
    features: list[FeatureRef]
    feature_columns: list[str]
    label: FeatureRef | None
    label_column: str | None
    entity_columns: list[str]
    options: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0
    # group -> how its rows were matched: sorted-keys, asof-event-time, asof-tie-break or all-tie-break
    joins: dict[str, str] = field(default_factory=dict)


def _split_ref(text: str, what: str) -> tuple[str, str]:
    if not isinstance(text, str) or text.count(".") != 1 or text.startswith(".") or text.endswith("."):
        raise ValidationError(
            f"{text!r} is not a feature reference",
            obj="dataset request",
            field=what,
            fix="write group.feature or group.* (e.g. claims.total_claim_amount)",
        )
    group, feature = text.split(".")
    return group, feature


def parse_feature_refs(
    features: Sequence[str], specs: Mapping[str, FeatureGroupSpec], label: str | None = None
) -> tuple[list[FeatureRef], FeatureRef | None]:
    """Resolve `group.feature` / `group.*` references in request order; the label is excluded from `*`."""
    label_ref: FeatureRef | None = None
    if label is not None:
        g, f = _split_ref(label, "label")
        if f == "*":
            raise ValidationError("the label must be one feature", obj="dataset request", field="label")
        _spec(specs, g).feature(f)
        label_ref = FeatureRef(g, f)
    if not features:
        raise ValidationError(
            "no features requested",
            obj="dataset request",
            field="features",
            fix="name group.feature or group.*",
        )
    out: list[FeatureRef] = []
    for text in features:
        g, f = _split_ref(text, "features")
        spec = _spec(specs, g)
        if f == "*":
            out += [FeatureRef(g, d.name) for d in spec.value_features if FeatureRef(g, d.name) != label_ref]
        else:
            spec.feature(f)
            out.append(FeatureRef(g, f))
    seen: set[FeatureRef] = set()
    for ref in out:
        if ref in seen:
            raise ValidationError(
                f"{ref} is requested twice", obj="dataset request", field="features", fix="list it once"
            )
        if ref == label_ref:
            raise ValidationError(
                f"{ref} is the label and cannot also be a feature",
                obj="dataset request",
                field="features",
                fix="remove it from the features",
            )
        seen.add(ref)
    return out, label_ref


def _spec(specs: Mapping[str, FeatureGroupSpec], name: str) -> FeatureGroupSpec:
    spec = specs.get(name)
    if spec is None:
        raise NotFound(
            f"no feature group {name!r}",
            obj="dataset request",
            field="features",
            fix="create it first, or check `tide features list`",
        )
    return spec


def _ts_literal(us: int) -> str:
    return f"make_timestamptz({int(us)}::BIGINT)"


def _entity_key(entities: pl.DataFrame, column: str, spec: FeatureGroupSpec) -> pl.Series:
    src = entities.get_column(column)
    if spec.id_type is FeatureType.STRING:
        return src.cast(pl.String)
    key = src.cast(pl.Int64, strict=False) if src.dtype != pl.String else src.str.to_integer(strict=False)
    bad = key.is_null() & src.is_not_null()
    if bad.any():
        row = int(bad.arg_true()[0])
        raise ValidationError(
            f"row {row}: {src[row]!r} is not an integer id",
            obj="dataset entities",
            field=column,
            fix=f"group {spec.name} has Integral record ids; pass integers",
        )
    return key


def _match_in_time_order(
    rows: pl.DataFrame,
    rid: str,
    et: str,
    id_lo: int,
    id_hi: int,
    entity_id: np.ndarray,
    t_us: np.ndarray,
    event_us: np.ndarray,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Each entity row's candidate (a position in `rows`) and whether it has one, when the rows come
    in event-time order (one ingest's hour files, each sorted by time, read in time order) and an
    (id, position) pair fits in 63 bits; else None. `entity_id` is relative to `id_lo`; `event_us`
    is the rows' event times in microseconds.

    In time order a row's position orders it among its id's rows as its event time does, so one
    sort of (id, position) values (polars' parallel sort) lists each id's rows oldest first, and the
    rows at or before an entity row's time are the first `upto` positions, `upto` found by a binary
    search of the sorted times. The greatest value at or below (id, upto - 1) is the match if its id
    is the entity's. Nothing is packed from times and no group-sized gather reorders keys: the
    position is in the value itself."""
    row_bits = max(rows.height - 1, 1).bit_length()
    if (id_hi - id_lo).bit_length() + row_bits > 63 or not rows.get_column(et).is_sorted():
        return None
    by_id = (pl.col(rid) - id_lo) * (1 << row_bits) + pl.int_range(pl.len(), dtype=pl.Int64)
    values = rows.select(by_id.sort()).to_series().to_numpy()  # polars: 10M in 0.16 s, numpy 0.65 s
    by_time = pl.Series(t_us).arg_sort().to_numpy()  # in order: 1M times into 10M 1.6 -> 0.24 s
    upto = np.empty(len(t_us), np.int64)
    upto[by_time] = np.searchsorted(event_us, t_us[by_time], side="right")
    probe = (entity_id << row_bits) + (upto - 1)  # upto 0: below the id's first value, so no match
    return _greatest_at_or_below(values, probe, row_bits, entity_id, (1 << row_bits) - 1)


def _greatest_at_or_below(
    values: np.ndarray, probe: np.ndarray, shift: int, entity_id: np.ndarray, payload_mask: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """For each probe, the position of the greatest sorted value <= it (or its low bits with
    `payload_mask`) and whether that value has the probe's id (the bits from `shift` up). The probes
    are searched in sorted order: the search then reads `values` in order."""
    order = pl.Series(probe).arg_sort().to_numpy()
    pos = np.empty(len(probe), np.int64)
    pos[order] = np.searchsorted(values, probe[order], side="right") - 1
    hit = pos.clip(0)
    found = (pos >= 0) & (values[hit] >> shift == entity_id)
    return (hit if payload_mask is None else values[hit] & payload_mask), found


def _match_by_keys(
    rows: pl.DataFrame, rid: str, et: str, id_lo: int, id_hi: int, entity_id: np.ndarray, t_us: pl.Series
) -> tuple[np.ndarray, np.ndarray] | None:
    """`_match_in_time_order` for rows in any order: one arg sort of (id, event time, 0) keys, each
    entity row's key (id, time, 1) searched among them (a feature row sorts before an entity row at the
    same instant). Times are taken in the coarsest unit of second, millisecond or microsecond that
    holds every event time exactly: et <= t exactly when et <= t floored to that unit, so 1M ids
    over 3 years fit in 63 bits in seconds, not in microseconds. None when they do not fit."""
    us = pl.col(et).dt.epoch("us")
    stats = rows.select(  # one parallel pass
        us.min().alias("us_lo"),
        us.max().alias("us_hi"),
        (us % 1_000_000 == 0).all().alias("whole_s"),
        (us % 1_000 == 0).all().alias("whole_ms"),
    ).row(0, named=True)
    unit = 1_000_000 if stats["whole_s"] else 1_000 if stats["whole_ms"] else 1
    # t_lo is one unit before every row: an entity time clamped to it matches nothing
    t_lo, t_hi = int(stats["us_lo"]) // unit - 1, int(stats["us_hi"]) // unit
    shift = (t_hi - t_lo).bit_length() + 1  # + the feature/entity bit; entity times clamp to the range
    if (id_hi - id_lo).bit_length() + shift > 63:
        return None
    scale = 1 << min(shift, 62)  # a single id (id_hi == id_lo) is 0 here anyway
    keys = rows.select((pl.col(rid) - id_lo) * scale + (us // unit - t_lo) * 2).to_series()
    by_key = keys.arg_sort()
    entity_keys = entity_id * scale + ((t_us // unit).clip(t_lo, t_hi) - t_lo).to_numpy() * 2 + 1
    hit, found = _greatest_at_or_below(keys.gather(by_key).to_numpy(), entity_keys, shift, entity_id, None)
    return by_key.to_numpy()[hit], found


def _match_sorted_keys(
    rows: pl.DataFrame, entity_key: pl.Series, entity_t: pl.Series, ttl_seconds: int | None
) -> pl.Series | None:
    """Each entity row's match among a group's candidate `rows` (columns: row number, record id,
    event time, is_deleted; no two rows share an id and an event time), or None when ids and times
    do not pack into 63 bits: the as-of join as one sort and a binary search
    (`_match_in_time_order`, or `_match_by_keys` for rows out of time order), cheaper than DuckDB's
    ASOF JOIN (1M x 10M: ~0.6 s against ~1.3 s). The match is null when there is none, or it is a
    tombstone, or it had expired (TTL) at the entity row's time.
    """
    n = entity_key.len()
    if rows.height == 0:
        return pl.repeat(None, n, dtype=pl.Int64, eager=True)
    rows = rows.rechunk()  # one buffer per column: gathers that do not hop between ~1,000 chunks
    number, rid, et, deleted = rows.columns[:4]
    id_lo, id_hi = (int(v) for v in rows.select(pl.col(rid).min(), pl.col(rid).max().alias("hi")).row(0))
    t_us = entity_t.dt.epoch("us")
    known = (entity_key.is_not_null() & entity_key.is_between(id_lo, id_hi)).to_numpy()
    entity_id = (entity_key.fill_null(id_lo).clip(id_lo, id_hi) - id_lo).to_numpy()
    event_us = rows.get_column(et).dt.epoch("us").to_numpy()
    t_np = t_us.to_numpy()
    match = _match_in_time_order(rows, rid, et, id_lo, id_hi, entity_id, t_np, event_us)
    if match is None:
        match = _match_by_keys(rows, rid, et, id_lo, id_hi, entity_id, t_us)
        if match is None:
            return None
    index, found = match
    found &= known & ~rows.get_column(deleted).to_numpy()[index]
    if ttl_seconds is not None:
        expires = event_us[index] + ttl_seconds * 1_000_000
        found &= t_np < expires
    matched = rows.get_column(number).to_numpy()[index]
    return pl.select(pl.when(pl.lit(found)).then(pl.lit(matched, pl.Int64))).to_series()


def _run(sql: str, inputs: Mapping[str, pa.Table], threads: int | None) -> pa.Table:
    import duckdb  # only when a group needs SQL: the import is ~0.06 s of a process' first dataset

    con = duckdb.connect(":memory:")
    try:
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        for name, table in inputs.items():
            con.register(name, table)
        return con.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        raise ValidationError(
            f"the dataset query failed ({str(exc).splitlines()[0]})",
            obj="dataset request",
            fix="check the entity frame's column types; report a bug if they are right",
        ) from exc
    finally:
        con.close()


def build_dataset(
    offline: OfflineStore,
    specs: Mapping[str, FeatureGroupSpec],
    features: Sequence[str],
    *,
    entities: pl.DataFrame | None = None,
    entity_time: str | None = None,
    entity_keys: Mapping[str, str] | None = None,
    at_us: int | None = None,
    label: str | None = None,
    as_of_us: int | None = None,
    include_deleted: bool = False,
    include_duplicates: bool = False,
    recent_records: int | None = None,
    event_time_range: tuple[int | None, int | None] | None = None,
    mode: Mode = "asof",
    apply_ttl: bool = True,
    full_feature_names: bool = False,
    threads: int | None = None,
) -> DatasetTable:
    """Compile and run a point-in-time dataset; see the module docstring for the rules."""
    started = time.perf_counter()
    if mode not in ("asof", "all"):
        raise ValidationError(
            f"unknown mode {mode!r}", obj="dataset request", field="mode", fix="use asof or all"
        )
    if mode == "asof" and include_duplicates:
        raise ValidationError(
            "include_duplicates needs mode='all': an as-of join returns one row per entity row",
            obj="dataset request",
            field="include_duplicates",
            fix="use mode='all' to see every stored row",
        )
    if recent_records is not None and (mode != "all" or recent_records < 1):
        raise ValidationError(
            "recent_records needs mode='all' and a value >= 1",
            obj="dataset request",
            field="recent_records",
            fix="use mode='all' with recent_records=n (asof already keeps the most recent record)",
        )
    refs, label_ref = parse_feature_refs(features, specs, label)
    groups: list[str] = list(
        dict.fromkeys([r.group for r in refs] + ([label_ref.group] if label_ref else []))
    )
    first = specs[refs[0].group]
    now_us = time.time_ns() // 1000
    at = now_us if at_us is None else at_us
    keys = dict(entity_keys or {})

    # -- output column names ---------------------------------------------------------------------
    wanted = [*refs, *([label_ref] if label_ref else [])]
    names = [f"{r.group}__{r.feature}" if full_feature_names else r.feature for r in wanted]

    # -- the entity (base) relation ----------------------------------------------------------------
    # mode asof with entities ("keyed"): DuckDB's ASOF join matches each entity row to a row number
    # of its group's frame (read by polars), and the features are gathered by those numbers. The join
    # then sorts keys only, not keys and features: at 1M x 10M it took 0.9 s instead of 2.0 s.
    # A group of more than _ONE_PASS_ROWS rows is read twice: its keys for the join, then only the
    # matched rows' features, so the features held are bounded by the entity rows, not the group's
    # (1M x 10M: 2.0-2.2 s against 2.2-2.5 s in one pass). A smaller group is read once: each pass
    # opens every file (100k x 1M, 720 files: 0.30 s in one pass, 0.39 s in two).
    keyed = mode == "asof" and entities is not None
    frames: dict[int, pl.DataFrame] = {}  # keyed, one pass: each group's requested features
    later: dict[int, tuple[FeatureGroupSpec, list[DataFile], list[str], int]] = {}  # keyed, two passes
    inputs: dict[str, pa.Table] = {}  # tables the query reads, registered when it runs
    ctes: list[str] = []
    if entities is not None:
        if entities.height == 0:
            raise ValidationError(
                "the entity frame is empty", obj="dataset entities", fix="pass at least one row"
            )
        bad = [c for c in entities.columns if c.startswith(_INTERNAL)]
        if bad:
            raise ValidationError(
                f"column {bad[0]!r} uses the reserved prefix {_INTERNAL}",
                obj="dataset entities",
                field=bad[0],
                fix="rename it",
            )
        entity_columns = list(entities.columns)
        extra: list[pl.Series] = [pl.Series(f"{_INTERNAL}row", range(entities.height), dtype=pl.Int64)]
        for gi, g in enumerate(groups):
            column = keys.get(g, specs[g].record_identifier)
            if column not in entities.columns:
                raise ValidationError(
                    f"the entity frame has no column {column!r} to join group {g} on",
                    obj="dataset entities",
                    field=column,
                    fix=f"add {column!r}, or map it with entity_keys={{'{g}': '<column>'}}",
                )
            extra.append(_entity_key(entities, column, specs[g]).alias(f"{_INTERNAL}k{gi}"))
        time_col = entity_time
        if time_col is None and first.event_time in entities.columns:
            time_col = first.event_time
        if time_col is not None:
            if time_col not in entities.columns:
                raise ValidationError(
                    f"the entity frame has no column {time_col!r}",
                    obj="dataset entities",
                    field="entity_time",
                    fix="name the column holding each row's point in time",
                )
            src = entities.get_column(time_col)
            us = series_to_event_us(src)
            bad_t = us.is_null()
            if bad_t.any():
                row = int(bad_t.arg_true()[0])
                raise ValidationError(
                    f"row {row}: {src[row]!r} is not a point in time",
                    obj="dataset entities",
                    field=time_col,
                    fix="use epoch seconds, ISO-8601 or datetimes, with no missing values",
                )
            extra.append(us.cast(pl.Datetime("us", "UTC")).alias(f"{_INTERNAL}t"))
        else:
            extra.append(pl.Series(f"{_INTERNAL}t", [at] * entities.height).cast(pl.Datetime("us", "UTC")))
        # keyed: the join only finds each entity row's matching row; the entity columns never enter SQL
        base_frame = pl.DataFrame(extra) if keyed else entities.with_columns(extra)
        inputs["__tide_entities"] = base_frame.to_arrow()
        ctes.append(
            "base AS (SELECT *, row(__tide_t, 'infinity'::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ) AS __tide_o "
            "FROM __tide_entities)"
        )
    else:
        entity_columns = [first.record_identifier]
        for g in groups[1:]:  # every group is joined on the first group's ids
            rid = specs[g].record_identifier
            if rid != first.record_identifier and keys.get(g) != first.record_identifier:
                raise ValidationError(
                    f"group {g} is keyed by {rid!r} and group {first.name} by "
                    f"{first.record_identifier!r}; without entities every group is joined on "
                    f"{first.name}'s ids",
                    obj="dataset request",
                    field="entity_keys",
                    fix=f"pass entities with both id columns, or entity_keys={{'{g}': "
                    f"'{first.record_identifier}'}} if {first.name}'s ids are {g}'s",
                )
    collisions = [n for n in names if n in entity_columns] + [n for n in names if names.count(n) > 1]
    if collisions:
        raise ValidationError(
            f"output column {collisions[0]!r} would appear twice",
            obj="dataset request",
            field="features",
            fix="pass full_feature_names=True (columns become group__feature)",
        )

    # -- one candidate relation per group ----------------------------------------------------------
    def candidates(gi: int, g: str) -> str | None:
        """Group gi's candidate rows as a CTE, or None when its matches were found without SQL."""
        spec = specs[g]
        et = quote_ident(spec.event_time)
        conds: list[str] = []  # the candidate filter, in SQL (the keyed path filters its frame instead)
        lo, hi = event_time_range or (None, None)
        files = offline.select_files(spec.name, min_event_us=lo, max_event_us=hi, max_write_us=as_of_us)
        if keyed and offline.keys_unique(files):
            by_event_time.add(gi)
        order = [] if gi in by_event_time else [f"row({et}, api_invocation_time, write_time) AS __tide_o"]
        if keyed:
            # in time order: one ingest's files (each sorted by event time) then read as one sorted run
            files = sorted(files, key=lambda f: (f.min_event_us, f.max_event_us))
            needed = [spec.record_identifier, spec.event_time, "is_deleted"]
            needed += ["write_time"] if as_of_us is not None or order else []
            needed += ["api_invocation_time"] if order else []
            feats = [f.feature for f in wanted if f.group == g]
            if sum(f.rows for f in files) > _ONE_PASS_ROWS:
                frame = offline.read_frame(spec, files, needed).with_row_index(f"{_INTERNAL}r")
                later[gi] = (spec, files, feats, frame.height)
            else:
                frame = offline.read_frame(spec, files, list(dict.fromkeys(needed + feats)))
                frame = frame.with_row_index(f"{_INTERNAL}r")
                frames[gi] = frame.select(feats).rechunk()  # gathers across ~1,000 chunks cost more
            event_us = pl.col(spec.event_time).dt.epoch("us")
            keep = [pl.col("write_time").dt.epoch("us") <= as_of_us] if as_of_us is not None else []
            keep += [event_us >= lo] if lo is not None else []
            keep += [event_us <= hi] if hi is not None else []
            keep += [~pl.col("is_deleted")] if include_deleted else []
            if keep:  # after numbering: row numbers index the unfiltered frame, as frames[gi] does
                frame = frame.filter(*keep)
            if gi in by_event_time and spec.id_type is not FeatureType.STRING and _SORTED_KEYS:
                found = _match_sorted_keys(
                    frame.select(f"{_INTERNAL}r", *needed[:3]),
                    base_frame.get_column(f"{_INTERNAL}k{gi}"),
                    base_frame.get_column(f"{_INTERNAL}t"),
                    spec.ttl_seconds if apply_ttl else None,
                )
                if found is not None:
                    sorted_keys[gi] = found
                    return None
            inputs[f"{_INTERNAL}src{gi}"] = frame.select(f"{_INTERNAL}r", *needed).to_arrow()
            relation = f"SELECT * FROM {_INTERNAL}src{gi}"
            cols = [f"{_INTERNAL}r"]
        else:
            if as_of_us is not None:
                conds.append(f"write_time <= {_ts_literal(as_of_us)}")
            if lo is not None:
                conds.append(f"{et} >= {_ts_literal(lo)}")
            if hi is not None:
                conds.append(f"{et} <= {_ts_literal(hi)}")
            if include_deleted:
                conds.append("NOT is_deleted")
            relation = group_relation_sql(offline, spec, offline.paths(spec.name, files))
            cols = [f"{quote_ident(f.feature)} AS __tide_f{i}" for i, f in enumerate(wanted) if f.group == g]
        select = ", ".join(
            [
                f"{quote_ident(spec.record_identifier)} AS __tide_k",
                f"{et} AS __tide_et",
                "is_deleted AS __tide_del",
                *order,
                *cols,
            ]
        )
        where = f" WHERE {' AND '.join(conds)}" if conds else ""
        dedup = ""
        if mode == "all" and not include_duplicates:
            dedup = " QUALIFY row_number() OVER (PARTITION BY __tide_k, __tide_et ORDER BY __tide_o DESC) = 1"
        return f"g{gi} AS (SELECT {select} FROM ({relation}){where}{dedup})"

    by_event_time: set[int] = set()  # groups whose rows have unique (id, event time): no tie-break key
    sorted_keys: dict[int, pl.Series] = {}  # keyed: groups matched by _match_sorted_keys, not SQL
    for gi, g in enumerate(groups):
        cte = candidates(gi, g)
        if cte is not None:
            ctes.append(cte)
    in_sql = [gi for gi in range(len(groups)) if gi not in sorted_keys]

    if entities is None:
        # every id with a visible record in the first group as of `at`
        at_lit = _ts_literal(at)
        k0 = quote_ident(first.record_identifier)
        ctes.append(
            "snap AS (SELECT __tide_k, __tide_del FROM g0 WHERE __tide_et <= "
            f"{at_lit} QUALIFY row_number() OVER (PARTITION BY __tide_k ORDER BY __tide_o DESC) = 1)"
        )
        key_cols = ", ".join(f"__tide_k AS __tide_k{gi}" for gi in range(len(groups)))
        ctes.append(
            f"base AS (SELECT __tide_k AS {k0}, {key_cols}, "
            "(row_number() OVER (ORDER BY __tide_k) - 1)::BIGINT AS __tide_row, "
            f"{at_lit} AS __tide_t, row({at_lit}, 'infinity'::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ) "
            "AS __tide_o FROM snap WHERE NOT __tide_del)"
        )

    def ttl_expired(gi: int, g: str) -> str | None:
        ttl = specs[g].ttl_seconds
        if not apply_ttl or ttl is None:
            return None
        return f"b.__tide_t >= g{gi}.__tide_et + to_seconds({int(ttl)}::BIGINT)"

    def hidden(gi: int, g: str) -> str:
        """asof: the matched row is a tombstone, or had expired at the entity row's time."""
        expired = ttl_expired(gi, g)
        return f"g{gi}.__tide_del" + (f" OR {expired}" if expired else "")

    gi_of = {g: gi for gi, g in enumerate(groups)}
    if keyed:  # each group's matched row number, null when there is none or it is hidden
        select = [
            f"CASE WHEN {hidden(gi, groups[gi])} THEN NULL ELSE g{gi}.__tide_r END AS __tide_r{gi}"
            for gi in in_sql
        ]
    else:
        select = [f"b.{quote_ident(c)}" for c in entity_columns]
        for i, (ref, name) in enumerate(zip(wanted, names, strict=True)):
            gi = gi_of[ref.group]
            col = f"g{gi}.__tide_f{i}"
            if mode == "asof":
                col = f"CASE WHEN {hidden(gi, ref.group)} THEN NULL ELSE {col} END"
            select.append(f"{col} AS {quote_ident(name)}")

    if mode == "asof":
        # the greatest row with event time <= t; when no two rows share an id and an event time
        # (OfflineStore.keys_unique) the event time alone orders them: the same rows, ~25 % faster
        joins = " ".join(
            f"ASOF LEFT JOIN g{gi} ON b.__tide_k{gi} = g{gi}.__tide_k AND "
            + (f"b.__tide_t >= g{gi}.__tide_et" if gi in by_event_time else f"b.__tide_o >= g{gi}.__tide_o")
            for gi in in_sql
        )
        body = f"SELECT {', '.join(select)} FROM base b {joins} ORDER BY b.__tide_row"
    else:
        source = "base"
        if not include_deleted:
            for gi in range(len(groups)):
                ctes.append(f"t{gi} AS (SELECT __tide_k, __tide_o FROM g{gi} WHERE __tide_del)")
                ctes.append(
                    f"b{gi} AS (SELECT {source}.*, t{gi}.__tide_o AS __tide_tomb{gi} FROM {source} "
                    f"ASOF LEFT JOIN t{gi} ON {source}.__tide_k{gi} = t{gi}.__tide_k "
                    f"AND {source}.__tide_o >= t{gi}.__tide_o)"
                )
                source = f"b{gi}"
        joins_list = []
        for gi, g in enumerate(groups):
            cond = [
                f"g{gi}.__tide_k = b.__tide_k{gi}",
                f"g{gi}.__tide_o <= b.__tide_o",
                f"NOT g{gi}.__tide_del",
            ]
            if not include_deleted:
                cond.append(f"(b.__tide_tomb{gi} IS NULL OR g{gi}.__tide_o > b.__tide_tomb{gi})")
            expired = ttl_expired(gi, g)
            if expired:
                cond.append(f"NOT ({expired})")
            joins_list.append(f"LEFT JOIN g{gi} ON {' AND '.join(cond)}")
        order = ", ".join(f"g{gi}.__tide_o DESC NULLS LAST" for gi in range(len(groups)))
        qualify = ""
        if recent_records is not None:
            qualify = (
                " QUALIFY row_number() OVER (PARTITION BY b.__tide_k0 ORDER BY b.__tide_t DESC, "
                f"{order}, b.__tide_row) <= {int(recent_records)}"
            )
        body = (
            f"SELECT {', '.join(select)} FROM {source} b {' '.join(joins_list)}"
            f"{qualify} ORDER BY b.__tide_row, {order}"
        )
    sql = "WITH " + ",\n".join(ctes) + "\n" + body if in_sql else ""
    table = _run(sql, inputs, threads) if sql else pa.table({})  # no SQL: no connection (~25 ms)
    if keyed:
        assert entities is not None
        matched = pl.DataFrame(
            [*pl.DataFrame(table).get_columns()]
            + [found.alias(f"__tide_r{gi}") for gi, found in sorted_keys.items()]
        )
        for gi, (spec, files, feats, height) in later.items():  # the matched rows only, in order
            r = matched.get_column(f"__tide_r{gi}")
            taken = np.zeros(height, np.bool_)
            taken[r.drop_nulls().to_numpy()] = True
            picked = pl.Series(np.flatnonzero(taken))
            frames[gi] = offline.read_frame(spec, files, feats, rows=picked).rechunk()
            rank: np.ndarray = np.cumsum(taken, dtype=np.int32 if height < 2**31 else np.int64)
            np.subtract(rank, 1, out=rank)  # a picked row's place in frames[gi]; in place: one array
            matched = matched.with_columns(pl.Series(rank).gather(r).alias(f"__tide_r{gi}"))
        gathered: dict[str, pl.Series] = {}
        for gi, frame in frames.items():  # one select per group: its columns are gathered in parallel
            r = matched.get_column(f"__tide_r{gi}")
            mine = [
                (ref.feature, name) for ref, name in zip(wanted, names, strict=True) if gi_of[ref.group] == gi
            ]
            gathered |= frame.select(pl.col(f).gather(r).alias(name) for f, name in mine).to_dict()
        table = entities.hstack([gathered[n] for n in names]).to_arrow(compat_level=pl.CompatLevel.oldest())
    n_feat = len(refs)

    def join_kind(gi: int) -> str:
        if gi in sorted_keys:
            return "sorted-keys"
        return f"{mode}-{'event-time' if gi in by_event_time else 'tie-break'}"

    return DatasetTable(
        table=table,
        sql=sql,
        groups=groups,
        features=refs,
        feature_columns=names[:n_feat],
        label=label_ref,
        label_column=names[n_feat] if label_ref else None,
        entity_columns=entity_columns,
        options={
            "mode": mode,
            "at": at if entities is None or entity_time is None else None,
            "as_of": as_of_us,
            "include_deleted": include_deleted,
            "include_duplicates": include_duplicates,
            "recent_records": recent_records,
            "event_time_range": list(event_time_range) if event_time_range else None,
            "apply_ttl": apply_ttl,
            "full_feature_names": full_feature_names,
        },
        seconds=time.perf_counter() - started,
        joins={g: join_kind(gi) for gi, g in enumerate(groups)},
    )
