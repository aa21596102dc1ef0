"""The operator catalogue for the conformance suite: one or more small flows per operator.

Each case names its flow, its fit data, how to break it with an unknown column (and, for typed
operators, with a column of the wrong type), and value pools for the hypothesis record generator.
`conftest.py` runs every test that takes a `case` argument once per case.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pytest
from hypothesis import strategies as st

from tideml.errors import ValidationError
from tideml.wrangle import FittedFlow, Flow
from tideml.wrangle.types import polars_schema

RUN_TIME = 1_700_000_000.25

BASE = pl.DataFrame(
    {
        "id": [1, 2, 3, 4, 5, 6, 7, 8],
        "cat": ["a", "b", "a", "c", "a", "b", None, "a"],
        "num": [1.5, -2.0, None, 4.25, float("nan"), 10.0, 0.0, 3.0],
        "cnt": [1, 5, 3, None, 7, 2, 9, 4],
        "full": [3, 1, 4, 1, 5, 9, 2, 6],
        "flag": [True, False, None, True, True, False, False, True],
        "text": ["12", " 3", "x-1", "1e3", "2020-01-05", None, "-7", "Yes"],
        "digits": ["1", "22", "-3", "+4", "0005", "6", None, "70"],
        "words": ["Hello, World!", "  n/a ", "break-in", None, "A_B-C", "x", "Mixed Case", "über"],
        "day": [dt.date(2020, 1, 5), dt.date(1999, 12, 31), None, dt.date(2024, 2, 29)] * 2,
        "ts": [
            dt.datetime(2020, 1, 5, 13, 45, 7, 123456),
            dt.datetime(1969, 7, 20, 20, 17, 40),
            None,
            dt.datetime(2024, 2, 29, 0, 0, 59),
        ]
        * 2,
        "label": [0, 1, 0, 1, 0, 0, 1, 0],
    },
    schema_overrides={"cnt": pl.Int64, "day": pl.Date, "ts": pl.Datetime("us")},
)
BASE_COLUMNS = {
    "id": "int64",
    "cat": "string",
    "num": "float64",
    "cnt": "int64",
    "full": "int64",
    "flag": "bool",
    "text": "string",
    "digits": "string",
    "words": "string",
    "day": "date",
    "ts": "datetime",
    "label": "int64",
}
RIGHT = pl.DataFrame(
    {"id": [2, 3, 4, 99, None], "cat": ["B", "C", "D", "Z", "N"], "score": [0.5, 1.5, None, 9.0, 2.0]},
    schema_overrides={"id": pl.Int64},
)
RIGHT_COLUMNS = {"id": "int64", "cat": "string", "score": "float64"}

# Values the record generator mixes in, per column, besides random values of the column's type.
POOLS: dict[str, list[Any]] = {
    "cat": ["a", "b", "c", "zz", "A", ""],
    "text": [
        "12",
        "-0",
        "+5",
        "1.5",
        ".5",
        "1e3",
        "inf",
        "NaN",
        " 3",
        "1_0",
        "2020-01-05",
        "2020-02-30",
        "0000-01-01",
        "true",
        "NO",
        "x",
        "",
        "9223372036854775808",
    ],
    "digits": ["1", "-3", "+4", "0005", "x", "", "1.0", "99999999999999999999"],
    "words": ["Hello, World!", "  n/a ", "break-in", "a$1b", "ÀÉÎ", "tab\there", ""],
    "id": [1, 2, 3, 4, 99, 0],
    "num": [0.0, -0.0, 1.5, float("nan"), float("inf"), -float("inf"), 1e308, 5e-324],
    "cnt": [0, 1, 5, 9, -(2**63), 2**63 - 1],
    "full": [0, 1, 9, -1],
    "label": [0, 1],
    "score": [0.5, float("nan")],
}


@dataclass
class Case:
    """A flow exercising one operator, with what it needs to be fitted and broken."""

    id: str
    op: str
    flow: dict[str, Any]
    data: dict[str, pl.DataFrame]
    bad_column: tuple[int, dict[str, Any]] | None = None
    bad_type: tuple[int, dict[str, Any]] | None = None
    trust: bool = False
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    optional_sources: bool = False

    def build(self, patch: tuple[int, dict[str, Any]] | None = None) -> Flow:
        doc = {**self.flow, "steps": [dict(s) for s in self.flow["steps"]]}
        if patch is not None:
            index, changes = patch
            doc["steps"][index].update(changes)
        return Flow.from_dict(doc)


def _one(op: str, name: str, steps: list[dict[str, Any]], **kw: Any) -> Case:
    flow = {"version": 1, "name": f"case-{name}", "sources": {"t": {"kind": "csv"}}, "steps": steps}
    return Case(id=name, op=op, flow=flow, data={"t": BASE}, columns={"t": BASE_COLUMNS}, **kw)


def _two(
    op: str,
    name: str,
    steps: list[dict[str, Any]],
    right: pl.DataFrame,
    right_cols: dict[str, str],
    **kw: Any,
) -> Case:
    flow = {
        "version": 1,
        "name": f"case-{name}",
        "sources": {"t": {"kind": "csv"}, "r": {"kind": "csv"}},
        "steps": steps,
    }
    return Case(
        id=name,
        op=op,
        flow=flow,
        data={"t": BASE, "r": right},
        columns={"t": BASE_COLUMNS, "r": right_cols},
        optional_sources=True,
        **kw,
    )


BASE_AS_RIGHT = BASE.select("id", "cat", "num", "cnt").head(4)

CUSTOM_CODE = """
import math

def transform(row):
    num = row["num"]
    return {
        "id": row["id"],
        "cat": (row["cat"] or "").upper(),
        "num_sq": None if num is None or math.isnan(num) else num * num,
        "big": row["cnt"] is not None and row["cnt"] > 3,
    }
"""

CASES: list[Case] = [
    _one(
        "cast",
        "cast-parse",
        [
            {
                "op": "cast",
                "columns": {
                    "text": "float64",
                    "digits": "int64",
                    "cnt": "string",
                    "num": "int64",
                    "flag": "int64",
                },
                "on_error": "null",
            },
        ],
        bad_column=(0, {"columns": {"nope": "int64"}}),
        bad_type=(0, {"columns": {"num": "string"}}),
    ),
    _one(
        "cast",
        "cast-temporal",
        [
            {"op": "duplicate_column", "column": "text", "new": "text2"},
            {
                "op": "cast",
                "columns": {
                    "text": "date",
                    "text2": "bool",
                    "day": "string",
                    "ts": "date",
                    "full": "float64",
                },
                "on_error": "null",
            },
            {"op": "cast", "columns": {"ts": "datetime", "day": "datetime"}, "on_error": "null"},
        ],
        bad_column=(1, {"columns": {"nope": "int64"}}),
        bad_type=(1, {"columns": {"day": "int64"}}),
    ),
    _one(
        "cast",
        "cast-strict",
        [
            {
                "op": "cast",
                "columns": {"digits": "int64", "ts": "string", "flag": "string"},
                "on_error": "error",
            }
        ],
        bad_column=(0, {"columns": {"nope": "int64"}}),
        bad_type=(0, {"columns": {"flag": "date"}}),
    ),
    _one(
        "cast",
        "cast-datetime-format",
        [
            {"op": "format_string", "mode": "replace", "columns": ["text"], "old": "-", "new": "/"},
            {
                "op": "cast",
                "columns": {"text": "datetime"},
                "formats": {"text": "%Y/%m/%d"},
                "on_error": "null",
            },
        ],
    ),
    _one(
        "format_string",
        "format-string",
        [
            {"op": "duplicate_column", "column": "words", "new": "w1"},
            {"op": "duplicate_column", "column": "words", "new": "w2"},
            {"op": "duplicate_column", "column": "words", "new": "w3"},
            {"op": "format_string", "mode": "lower"},
            {"op": "format_string", "mode": "upper", "columns": ["cat"]},
            {"op": "format_string", "mode": "strip", "columns": ["words"], "chars": " !", "side": "both"},
            {"op": "format_string", "mode": "remove_symbols", "columns": ["w1"]},
            {"op": "format_string", "mode": "replace", "columns": ["w2"], "old": "a", "new": "$0"},
            {
                "op": "format_string",
                "mode": "pad",
                "columns": ["w3"],
                "width": 8,
                "fill": "*",
                "side": "left",
            },
            {
                "op": "format_string",
                "mode": "pad",
                "columns": ["text"],
                "width": 5,
                "fill": "0",
                "side": "right",
            },
            {"op": "format_string", "mode": "prefix", "columns": ["digits"], "text": "n="},
            {"op": "format_string", "mode": "suffix", "columns": ["cat"], "text": "!"},
            {"op": "format_string", "mode": "strip", "columns": ["w1"], "side": "left"},
            {"op": "format_string", "mode": "strip", "columns": ["w2"], "side": "right", "chars": "e!"},
        ],
        bad_column=(4, {"columns": ["nope"]}),
        bad_type=(4, {"columns": ["num"]}),
    ),
    _one(
        "drop_columns",
        "drop-columns",
        [{"op": "drop_columns", "columns": ["text", "ts"]}],
        bad_column=(0, {"columns": ["nope"]}),
    ),
    _one(
        "rename_columns",
        "rename-columns",
        [{"op": "rename_columns", "mapping": {"cat": "category", "num": "value", "id": "key"}}],
        bad_column=(0, {"mapping": {"nope": "x"}}),
    ),
    _one(
        "select_columns",
        "select-columns",
        [{"op": "select_columns", "columns": ["num", "id", "cat"]}],
        bad_column=(0, {"columns": ["id", "nope"]}),
    ),
    _one(
        "reorder_columns",
        "reorder-columns",
        [
            {"op": "reorder_columns", "columns": ["label", "num"], "position": "start"},
            {"op": "reorder_columns", "columns": ["id"], "position": "end"},
            {"op": "reorder_columns", "columns": ["ts", "day"], "position": "after", "anchor": "cat"},
            {"op": "reorder_columns", "columns": ["flag"], "position": "before", "anchor": "label"},
        ],
        bad_column=(2, {"anchor": "nope"}),
    ),
    _one(
        "duplicate_column",
        "duplicate-column",
        [{"op": "duplicate_column", "column": "num", "new": "num_copy"}],
        bad_column=(0, {"column": "nope"}),
    ),
    _one(
        "one_hot",
        "one-hot-error",
        [{"op": "one_hot", "column": "cat", "on_unseen": "error"}],
        bad_column=(0, {"column": "nope"}),
        bad_type=(0, {"column": "num"}),
    ),
    _one(
        "one_hot",
        "one-hot-other",
        [
            {
                "op": "one_hot",
                "column": "cat",
                "on_unseen": "keep_as_other",
                "drop_last": True,
                "keep_original": True,
            }
        ],
    ),
    _one(
        "one_hot",
        "one-hot-int-lexical",
        [
            {
                "op": "one_hot",
                "column": "full",
                "order": "lexical",
                "max_categories": 4,
                "on_unseen": "all_zero",
            },
            {"op": "one_hot", "column": "flag", "on_unseen": "all_zero", "separator": "__"},
        ],
    ),
    _one(
        "one_hot",
        "one-hot-explicit",
        [{"op": "one_hot", "column": "cat", "categories": ["c", "a"], "on_unseen": "all_zero"}],
    ),
    _one(
        "ordinal",
        "ordinal-mapping",
        [
            {"op": "ordinal", "column": "cat", "mapping": {"b": 2, "a": 1}, "on_unseen": "null"},
            {
                "op": "ordinal",
                "column": "words",
                "on_unseen": "value",
                "unseen_value": -1,
                "order": "frequency",
            },
        ],
        bad_column=(0, {"column": "nope"}),
        bad_type=(0, {"column": "cnt"}),
    ),
    _one(
        "ordinal",
        "ordinal-error",
        [{"op": "ordinal", "column": "cat", "categories": ["a", "b", "c"], "on_unseen": "error"}],
    ),
    _one(
        "handle_missing",
        "missing-fill",
        [
            {"op": "handle_missing", "columns": ["cnt"], "strategy": "mean"},
            {"op": "handle_missing", "columns": ["num"], "strategy": "median"},
            {"op": "handle_missing", "columns": ["cat", "flag"], "strategy": "mode"},
            {"op": "handle_missing", "columns": ["text"], "strategy": "constant", "value": "?"},
            {"op": "handle_missing", "columns": ["day"], "strategy": "constant", "value": "2000-01-01"},
            {"op": "handle_missing", "columns": ["ts"], "strategy": "mode"},
        ],
        bad_column=(0, {"columns": ["nope"]}),
        bad_type=(0, {"columns": ["cat"]}),
    ),
    _one(
        "handle_missing",
        "missing-indicator-drop",
        [
            {"op": "handle_missing", "columns": ["num", "cat"], "strategy": "indicator"},
            {"op": "handle_missing", "columns": ["cnt", "num"], "strategy": "drop"},
        ],
    ),
    _one(
        "handle_outliers",
        "outliers-clip",
        [
            {"op": "handle_outliers", "columns": ["num"], "method": "std", "k": 1.0, "fix": "clip"},
            {"op": "handle_outliers", "columns": ["cnt"], "method": "iqr", "fix": "clip"},
            {
                "op": "handle_outliers",
                "columns": ["full"],
                "method": "thresholds",
                "lower": 1.5,
                "upper": 6.5,
            },
        ],
        bad_column=(0, {"columns": ["nope"]}),
        bad_type=(0, {"columns": ["cat"]}),
    ),
    _one(
        "handle_outliers",
        "outliers-null-remove",
        [
            {
                "op": "handle_outliers",
                "columns": ["full"],
                "method": "quantile",
                "lower_quantile": 0.2,
                "upper_quantile": 0.8,
                "fix": "null",
            },
            {"op": "handle_outliers", "columns": ["num", "cnt"], "method": "iqr", "k": 0.5, "fix": "remove"},
        ],
    ),
    _one(
        "scale",
        "scale",
        [
            {"op": "duplicate_column", "column": "num", "new": "num2"},
            {"op": "duplicate_column", "column": "cnt", "new": "cnt2"},
            {"op": "scale", "columns": ["num", "cnt"], "method": "standard"},
            {"op": "scale", "columns": ["num2"], "method": "minmax", "feature_range": [-1.0, 1.0]},
            {"op": "scale", "columns": ["cnt2"], "method": "robust"},
            {"op": "scale", "columns": ["full"], "method": "maxabs"},
            {"op": "scale", "columns": ["id"], "method": "standard", "with_mean": False},
        ],
        bad_column=(2, {"columns": ["nope"]}),
        bad_type=(2, {"columns": ["cat"]}),
    ),
    _one(
        "featurize_datetime",
        "datetime-ordinal",
        [
            {
                "op": "featurize_datetime",
                "column": "ts",
                "features": [
                    "year",
                    "quarter",
                    "month",
                    "week",
                    "day",
                    "day_of_year",
                    "weekday",
                    "hour",
                    "minute",
                    "second",
                ],
            },
        ],
        bad_column=(0, {"column": "nope"}),
        bad_type=(0, {"column": "cat"}),
    ),
    _one(
        "featurize_datetime",
        "datetime-cyclic",
        [
            {
                "op": "featurize_datetime",
                "column": "day",
                "encoding": "cyclic",
                "keep_original": False,
                "features": ["year", "month", "day", "weekday", "day_of_year", "week", "quarter"],
            },
            {
                "op": "featurize_datetime",
                "column": "ts",
                "encoding": "cyclic",
                "features": ["hour", "minute", "second"],
            },
        ],
    ),
    _one(
        "add_event_time",
        "event-time",
        [
            {"op": "add_event_time"},
            {"op": "add_event_time", "column": "ts_seconds", "source": "column", "from_column": "ts"},
            {"op": "add_event_time", "column": "day_seconds", "source": "column", "from_column": "day"},
            {"op": "add_event_time", "column": "cnt", "source": "column", "from_column": "cnt"},
        ],
        bad_column=(1, {"from_column": "nope"}),
        bad_type=(1, {"from_column": "cat"}),
    ),
    _one(
        "formula",
        "formula-arith",
        [
            {"op": "formula", "column": "f1", "expression": "cnt * 2 + full - id % 3"},
            {"op": "formula", "column": "f2", "expression": "num / cnt"},
            {"op": "formula", "column": "f3", "expression": "-(cnt - full) * 1.5"},
            {"op": "formula", "column": "f4", "expression": "ABS(num) + ROUND(num) + FLOOR(num) - CEIL(num)"},
            {"op": "formula", "column": "f5", "expression": "SQRT(num) + LN(full) + EXP(num / 100)"},
            {"op": "formula", "column": "f6", "expression": "cnt % full + ABS(cnt) + cnt * cnt"},
        ],
        bad_column=(0, {"expression": "cnt + nope"}),
        bad_type=(0, {"expression": "cat * 2"}),
    ),
    _one(
        "formula",
        "formula-logic",
        [
            {
                "op": "formula",
                "column": "g1",
                "expression": "CASE WHEN num > 2 AND flag THEN 'big' WHEN num IS NULL THEN NULL "
                "ELSE LOWER(cat) END",
            },
            {
                "op": "formula",
                "column": "g2",
                "expression": "COALESCE(cnt, full, 0) BETWEEN 2 AND 5 OR NOT flag",
            },
            {"op": "formula", "column": "g3", "expression": "cat IN ('a', 'c') AND cat <> 'b'"},
            {
                "op": "formula",
                "column": "g4",
                "expression": "UPPER(TRIM(words)) || '#' || COALESCE(cat, '-')",
            },
            {
                "op": "formula",
                "column": "g5",
                "expression": "LENGTH(words) >= 3 AND day < CAST('2021-01-01' AS DATE)",
            },
            {"op": "formula", "column": "g6", "expression": "NULLIF(cat, 'a') IS NOT NULL"},
            {
                "op": "formula",
                "column": "g7",
                "expression": "CASE cat WHEN 'a' THEN 1 WHEN 'b' THEN 2.5 END + CAST(digits AS BIGINT)",
            },
            {"op": "formula", "column": "g8", "expression": "num = num AND num >= 1.5 OR num <> 0"},
            {"op": "formula", "column": "g9", "expression": "CAST(text AS DOUBLE) > cnt AND NOT ts IS NULL"},
        ],
    ),
    _two(
        "join",
        "join-inner",
        [{"op": "join", "right": "r", "on": ["id"], "how": "inner"}],
        RIGHT,
        RIGHT_COLUMNS,
        bad_column=(0, {"on": ["nope"]}),
        bad_type=(0, {"on": None, "left_on": ["cat"], "right_on": ["id"]}),
    ),
    *[
        _two(
            "join",
            f"join-{how}",
            [{"op": "join", "right": "r", "on": ["id"], "how": how, "suffix": "_r"}],
            RIGHT,
            RIGHT_COLUMNS,
        )
        for how in ("left", "right", "full", "semi", "anti")
    ],
    _two(
        "join",
        "join-left-on",
        [
            {"op": "rename_columns", "frame": "r", "mapping": {"id": "rid"}},
            {"op": "join", "frame": "t", "right": "r", "left_on": ["id"], "right_on": ["rid"], "how": "left"},
        ],
        RIGHT,
        RIGHT_COLUMNS,
    ),
    _two(
        "concatenate",
        "concat-vertical",
        [
            {"op": "select_columns", "frame": "t", "columns": ["id", "cat", "num", "cnt"]},
            {"op": "concatenate", "frame": "t", "frames": ["r"], "source_column": "src"},
        ],
        BASE_AS_RIGHT,
        {"id": "int64", "cat": "string", "num": "float64", "cnt": "int64"},
        bad_column=(0, {"columns": ["id", "nope"]}),
    ),
    _two(
        "concatenate",
        "concat-diagonal",
        [
            {"op": "select_columns", "frame": "t", "columns": ["id", "cat", "cnt"], "into": "t2"},
            {"op": "concatenate", "frame": "t2", "frames": ["r"], "how": "diagonal", "drop_duplicates": True},
        ],
        RIGHT,
        RIGHT_COLUMNS,
    ),
    _one(
        "balance",
        "balance-over",
        [
            {"op": "select_columns", "columns": ["id", "full", "num", "label"]},
            {"op": "balance", "target": "label", "method": "random_oversample", "seed": 3},
        ],
        bad_column=(1, {"target": "nope"}),
        bad_type=(1, {"target": "num"}),
    ),
    _one(
        "balance",
        "balance-under",
        [{"op": "balance", "target": "label", "method": "random_undersample", "ratio": 0.8, "seed": 1}],
    ),
    _one(
        "balance",
        "balance-smote",
        [
            {"op": "select_columns", "columns": ["id", "full", "flag", "label"]},
            {"op": "handle_missing", "columns": ["flag"], "strategy": "mode"},
            {"op": "balance", "target": "label", "method": "smote", "k_neighbors": 2, "seed": 7},
        ],
    ),
    _one(
        "split",
        "split-random",
        [
            {"op": "split", "frames": {"train": 0.75, "test": 0.25}, "seed": 5},
            {"op": "scale", "frame": "train", "columns": ["full"], "method": "standard"},
        ],
        bad_column=(0, {"method": "key", "key": ["nope"]}),
    ),
    _one(
        "split",
        "split-stratified",
        [{"op": "split", "frames": {"a": 0.5, "b": 0.5}, "method": "stratified", "stratify_by": "label"}],
    ),
    _one(
        "split",
        "split-key",
        [
            {
                "op": "split",
                "frames": {"train": 0.6, "valid": 0.2, "test": 0.2},
                "method": "key",
                "key": ["cat"],
            }
        ],
    ),
    _one(
        "python",
        "python",
        [
            {
                "op": "python",
                "trusted": True,
                "code": CUSTOM_CODE,
                "columns": {"id": "int64", "cat": "string", "num_sq": "float64", "big": "bool"},
            }
        ],
        trust=True,
        bad_column=(0, {"code": CUSTOM_CODE.replace('row["cnt"] > 3', 'row["nope"] > 3')}),
    ),
]


_FITTED: dict[str, FittedFlow] = {}


def fitted_case(case: Case) -> FittedFlow:
    """The case's flow fitted on its data (cached per process)."""
    if case.id not in _FITTED:
        _FITTED[case.id] = case.build().fit(case.data, trust_custom_code=case.trust, run_time=RUN_TIME)
    return _FITTED[case.id]


# -- record generation and comparison ----------------------------------------------------------------
# Characters unassigned in Python's Unicode database are left out: case mappings are only compared where both
# Python and Polars (Rust) know the character.
_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cn")), max_size=12)


def _value(column: str, dtype: str) -> st.SearchStrategy[Any]:
    pool = POOLS.get(column, [])
    base: dict[str, st.SearchStrategy[Any]] = {
        "int64": st.integers(-(2**63), 2**63 - 1) | st.integers(-20, 20),
        "float64": st.floats(allow_nan=True, allow_infinity=True) | st.floats(-50, 50) | st.integers(-5, 5),
        "string": _TEXT,
        "bool": st.booleans(),
        "date": st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)),
        "datetime": st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    }
    strategy = base[dtype] | st.none()
    if pool:
        strategy = st.sampled_from(pool) | strategy
    return strategy


def record_strategy(columns: Mapping[str, str]) -> st.SearchStrategy[dict[str, Any]]:
    """Random rows of a schema: typed values, nulls, edge values and the column's pool."""
    return st.fixed_dictionaries({c: _value(c, t) for c, t in columns.items()})


def frame_of(row: Mapping[str, Any] | None, columns: Mapping[str, str]) -> pl.DataFrame:
    """A frame of 0 or 1 rows with the schema's Polars types."""
    schema = polars_schema(columns)  # type: ignore[arg-type]
    return pl.DataFrame([dict(row)], schema=schema) if row is not None else pl.DataFrame(schema=schema)


def same_value(a: Any, b: Any) -> bool:
    """Equal value and identical type; NaN equals NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def assert_record_matches_batch(
    fitted: FittedFlow,
    sources: Mapping[str, Mapping[str, Any] | None],
    columns: Mapping[str, Mapping[str, str]],
) -> None:
    """transform_record == the batch output row(s) for the same input, for every output."""
    frames = {name: frame_of(sources.get(name), columns[name]) for name in columns}
    record: Any = next(iter(sources.values())) if len(columns) == 1 else dict(sources)
    try:
        batch = fitted.transform_all(frames, run_time=RUN_TIME)
    except ValidationError as exc:
        with pytest.raises(ValidationError):
            fitted.transform_record(record, run_time=RUN_TIME)
        assert str(exc)
        return
    for output, frame in batch.items():
        rows = frame.to_dicts()
        if len(rows) > 1:
            with pytest.raises(ValidationError):
                fitted.transform_record(record, output=output, run_time=RUN_TIME)
            continue
        got = fitted.transform_record(record, output=output, run_time=RUN_TIME)
        if not rows:
            assert got is None, (output, got)
            continue
        want = rows[0]
        assert got is not None, (output, want)
        assert list(got) == list(want), (output, list(got), list(want))
        for key in want:
            assert same_value(got[key], want[key]), (output, key, got[key], want[key], record)


Breaker = Callable[[Case], Flow]
