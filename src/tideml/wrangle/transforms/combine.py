"""Join and concatenate frames.

On the record path each frame holds at most one row, and these steps do exactly what the batch path does
with such frames. A combination that would produce two rows (a full join of two records whose keys
differ, or a concatenation of two records) cannot be one record and fails with a clear error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import polars as pl
import pydantic

from tideml.wrangle.transforms.base import (
    Env,
    EnvFn,
    NoState,
    Operator,
    Row,
    Runtime,
    StepParams,
    col,
    pdt,
    register,
)
from tideml.wrangle.types import DType, Schema

__all__ = ["Concatenate", "ConcatenateParams", "Join", "JoinParams"]

_KEY_TYPES = {"int64", "string", "bool", "date", "datetime"}


class JoinParams(StepParams):
    """`{"op": "join", "right": "customers", "on": ["policy_id"], "how": "left"}`."""

    op: Literal["join"] = "join"
    right: str = pydantic.Field(min_length=1, description="The frame joined to this step's frame.")
    on: list[str] | None = pydantic.Field(None, min_length=1, description="Key columns with the same name.")
    left_on: list[str] | None = pydantic.Field(None, min_length=1)
    right_on: list[str] | None = pydantic.Field(None, min_length=1)
    how: Literal["inner", "left", "right", "full", "semi", "anti"] = "inner"
    suffix: str = pydantic.Field("_right", min_length=1, description="For right columns whose name clashes.")

    @pydantic.model_validator(mode="after")
    def _keys(self) -> JoinParams:
        if self.on is not None:
            if self.left_on is not None or self.right_on is not None:
                raise ValueError("give either 'on' or 'left_on' + 'right_on'")
        elif self.left_on is None or self.right_on is None or len(self.left_on) != len(self.right_on):
            raise ValueError("give 'on', or 'left_on' and 'right_on' of the same length")
        return self

    @property
    def keys(self) -> list[tuple[str, str]]:
        """(left column, right column) key pairs."""
        if self.on is not None:
            return [(k, k) for k in self.on]
        return list(zip(self.left_on or [], self.right_on or [], strict=True))


@register
class Join(Operator[JoinParams, NoState]):
    """Join two frames on keys; nulls never match.

    The output holds the left frame's columns in order (key columns keep the left names; in a right or
    full join an unmatched right row fills them from the right keys), then the right frame's other
    columns, renamed with `suffix` where they clash. Semi and anti joins keep only the left columns.
    """

    op = "join"
    params_model = JoinParams
    summary = "join (inner, left, right, full, semi, anti)"

    def reads(self) -> list[str]:
        return [self.frame, self.params.right]

    def _layout(self, schemas: Mapping[str, Schema]) -> tuple[Schema, list[tuple[str, str]]]:
        """The output schema and the (right column, output name) pairs of the right side."""
        left, right = schemas[self.frame], schemas[self.params.right]
        for lk, rk in self.params.keys:
            lt = self.ctx.require(left, lk, _KEY_TYPES, frame=self.frame)
            rt = self.ctx.require(right, rk, _KEY_TYPES, frame=self.params.right)
            if lt != rt:
                raise self.ctx.error(
                    f"key types differ: {lt} on the left, {rt} on the right", lk, "cast one of them first"
                )
        out: Schema = dict(left)
        if self.params.how in ("semi", "anti"):
            return out, []
        right_keys = {rk for _, rk in self.params.keys}
        pairs = []
        for name, dtype in right.items():
            if name in right_keys:
                continue
            target = name + self.params.suffix if name in left else name
            if target in out:
                raise self.ctx.error(
                    f"the right column {name!r} would be named {target!r}, which exists already",
                    name,
                    "choose another suffix or rename the column",
                )
            out[target] = dtype
            pairs.append((name, target))
        return out, pairs

    def fit(self, frames: Mapping[str, pl.LazyFrame], schemas: Mapping[str, Schema]) -> NoState:
        self._layout(schemas)
        return NoState()

    def output_schemas(self, schemas: Mapping[str, Schema], state: NoState) -> dict[str, Schema]:
        return {self.into: self._layout(schemas)[0]}

    def source(self, schemas: Mapping[str, Schema], state: NoState) -> list[str]:
        out, pairs = self._layout(schemas)
        keys = self.params.keys
        renames = {rk: lk for lk, rk in keys if rk != lk}
        right_cols = [rk for _, rk in keys] + [name for name, _ in pairs]
        right = f"frames[{self.params.right!r}].select({right_cols!r})"
        if renames:
            right += f".rename({renames!r})"
        how = self.params.how
        order = {"right": "right", "full": "left_right"}.get(how, "left")
        on = [lk for lk, _ in keys]
        return [
            f"lf = frames[{self.frame!r}].join({right}, on={on!r}, how={how!r}, "
            f"suffix={self.params.suffix!r}, "
            f"coalesce=True, maintain_order={order!r})",
            f"frames[{self.into!r}] = lf.select({list(out)!r})",
        ]

    def record(self, schemas: Mapping[str, Schema], state: NoState) -> EnvFn:
        _out, pairs = self._layout(schemas)
        keys = self.params.keys
        left_frame, right_frame, into, how = self.frame, self.params.right, self.into, self.params.how
        left_cols = list(schemas[self.frame])
        key_of = dict(keys)
        where = self.ctx.where

        def matches(left: Row, right: Row) -> bool:
            for lk, rk in keys:
                a, b = left[lk], right[rk]
                if a is None or b is None or a != b:
                    return False
            return True

        def merged(left: Row | None, right: Row | None) -> Row:
            row: Row = {}
            for c in left_cols:
                if left is not None:
                    row[c] = left[c]
                else:
                    row[c] = right[key_of[c]] if (right is not None and c in key_of) else None
            for name, target in pairs:
                row[target] = None if right is None else right[name]
            return row

        def join(env: Env, rt: Runtime) -> None:
            left, right = env[left_frame], env[right_frame]
            hit = left is not None and right is not None and matches(left, right)
            result: Row | None
            if how == "inner":
                result = merged(left, right) if hit else None
            elif how == "left":
                result = None if left is None else merged(left, right if hit else None)
            elif how == "right":
                result = None if right is None else merged(left if hit else None, right)
            elif how == "semi":
                result = dict(left) if hit and left is not None else None
            elif how == "anti":
                result = dict(left) if left is not None and not hit else None
            elif hit or left is None or right is None:
                result = None if left is None and right is None else merged(left, right)
            else:
                rt.fail(
                    where,
                    None,
                    "a full join of two records whose keys differ gives two rows, not one record",
                    "use transform() for this flow, or send records whose keys match",
                )
            env[into] = result

        return join


class ConcatenateParams(StepParams):
    """`{"op": "concatenate", "frames": ["claims_2021"], "source_column": "source"}`."""

    op: Literal["concatenate"] = "concatenate"
    frames: list[str] = pydantic.Field(min_length=1, description="Frames appended below this step's frame.")
    how: Literal["vertical", "diagonal"] = pydantic.Field(
        "vertical",
        description="vertical: the same columns in every frame; diagonal: their union (null-filled).",
    )
    source_column: str | None = pydantic.Field(
        None, min_length=1, description="Add a string column holding each row's frame name."
    )
    drop_duplicates: bool = pydantic.Field(False, description="Keep only the first of identical rows.")


@register
class Concatenate(Operator[ConcatenateParams, NoState]):
    """Stack frames; int64 and float64 versions of a column meet as float64."""

    op = "concatenate"
    params_model = ConcatenateParams
    summary = "concatenate (vertical or diagonal, optional source column and de-duplication)"

    def reads(self) -> list[str]:
        return [self.frame, *self.params.frames]

    def _layout(self, schemas: Mapping[str, Schema]) -> Schema:
        names = self.reads()
        if len(set(names)) != len(names):
            raise self.ctx.error("a frame is concatenated twice", None, "list each frame once")
        first = schemas[names[0]]
        out: dict[str, DType] = {}
        for name in names:
            schema = schemas[name]
            if self.params.how == "vertical" and set(schema) != set(first):
                extra = sorted(set(schema) ^ set(first))
                raise self.ctx.error(
                    f"frame {name!r} does not have the same columns as {names[0]!r}",
                    extra[0],
                    "use how: diagonal, or select the same columns first",
                )
            for column, dtype in schema.items():
                have = out.get(column)
                if have is None or have == dtype:
                    out[column] = dtype
                elif {have, dtype} == {"int64", "float64"}:
                    out[column] = "float64"
                else:
                    raise self.ctx.error(
                        f"the column is {have} in one frame and {dtype} in {name!r}", column, "cast it first"
                    )
        if self.params.source_column is not None:
            if self.params.source_column in out:
                raise self.ctx.error("the source column exists already", self.params.source_column)
            out[self.params.source_column] = "string"
        return out

    def fit(self, frames: Mapping[str, pl.LazyFrame], schemas: Mapping[str, Schema]) -> NoState:
        self._layout(schemas)
        return NoState()

    def output_schemas(self, schemas: Mapping[str, Schema], state: NoState) -> dict[str, Schema]:
        return {self.into: self._layout(schemas)}

    def source(self, schemas: Mapping[str, Schema], state: NoState) -> list[str]:
        out = self._layout(schemas)
        tag = self.params.source_column
        data_cols = [c for c in out if c != tag]
        parts = []
        for name in self.reads():
            exprs = []
            for c in data_cols:
                have = schemas[name].get(c)
                if have is None:
                    exprs.append(f"pl.lit(None, dtype={pdt(out[c])}).alias({c!r})")
                elif have != out[c]:
                    exprs.append(f"{col(c)}.cast({pdt(out[c])})")
                else:
                    exprs.append(col(c))
            if tag is not None:
                exprs.append(f"pl.lit({name!r}, dtype=pl.String).alias({tag!r})")
            parts.append(f"frames[{name!r}].select({', '.join(exprs)})")
        lines = [f"lf = pl.concat([{', '.join(parts)}], how='vertical')"]
        if self.params.drop_duplicates:
            # Identical data from two frames is one row (the first frame's), whatever the source column says.
            lines.append(f"lf = lf.unique(subset={data_cols!r}, keep='first', maintain_order=True)")
        lines.append(f"frames[{self.into!r}] = lf")
        return lines

    def record(self, schemas: Mapping[str, Schema], state: NoState) -> EnvFn:
        out = self._layout(schemas)
        names, into, tag, where = self.reads(), self.into, self.params.source_column, self.ctx.where
        widen = {c for c, dtype in out.items() if dtype == "float64"}
        data_cols = [c for c in out if c != tag]
        dedupe = self.params.drop_duplicates

        def align(name: str, row: Row) -> dict[str, Any]:
            result: dict[str, Any] = {}
            for c in data_cols:
                value = row.get(c)
                result[c] = float(value) if c in widen and type(value) is int else value
            if tag is not None:
                result[tag] = name
            return result

        def concatenate(env: Env, rt: Runtime) -> None:
            rows = [align(name, row) for name in names if (row := env[name]) is not None]
            if dedupe:
                seen: set[tuple[Any, ...]] = set()
                unique = []
                for row in rows:
                    key = _row_key(row, data_cols)
                    if key not in seen:
                        seen.add(key)
                        unique.append(row)
                rows = unique
            if len(rows) > 1:
                rt.fail(
                    where,
                    None,
                    f"concatenating {len(rows)} records gives {len(rows)} rows, not one record",
                    "send a record for one of the concatenated frames only, or use transform()",
                )
            env[into] = rows[0] if rows else None

        return concatenate


def _row_key(row: Row, columns: list[str]) -> tuple[Any, ...]:
    """Identity of a row as Polars' unique() sees it: NaN equals NaN, -0.0 equals 0.0, null equals null."""
    return tuple(("NaN",) if isinstance(v, float) and v != v else v for v in (row[c] for c in columns))
