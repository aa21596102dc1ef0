"""Manage columns: drop, rename, select, reorder and duplicate."""

from __future__ import annotations

from typing import Literal

import pydantic

from tideml.wrangle.transforms.base import (
    ColumnList,
    NoState,
    Row,
    RowFn,
    RowOperator,
    Runtime,
    StepParams,
    col,
    register,
)
from tideml.wrangle.types import Schema

__all__ = [
    "DropColumns",
    "DropColumnsParams",
    "DuplicateColumn",
    "DuplicateColumnParams",
    "RenameColumns",
    "RenameColumnsParams",
    "ReorderColumns",
    "ReorderColumnsParams",
    "SelectColumns",
    "SelectColumnsParams",
]


class DropColumnsParams(StepParams):
    """`{"op": "drop_columns", "columns": ["customer_zip"]}`."""

    op: Literal["drop_columns"] = "drop_columns"
    columns: ColumnList


@register
class DropColumns(RowOperator[DropColumnsParams, NoState]):
    """Remove columns."""

    op = "drop_columns"
    params_model = DropColumnsParams
    summary = "manage columns: drop"

    def check(self, schema: Schema) -> None:
        for column in self.params.columns:
            self.ctx.require(schema, column)

    def frame_schema(self, schema: Schema, state: NoState) -> Schema:
        gone = set(self.params.columns)
        return {k: v for k, v in schema.items() if k not in gone}

    def frame_source(self, schema: Schema, state: NoState) -> list[str]:
        return [f"lf = lf.drop({self.params.columns!r})"]

    def row_function(self, schema: Schema, state: NoState) -> RowFn:
        columns = list(self.params.columns)

        def drop(row: Row, rt: Runtime) -> Row:
            for column in columns:
                del row[column]
            return row

        return drop


class RenameColumnsParams(StepParams):
    """`{"op": "rename_columns", "mapping": {"old": "new"}}`."""

    op: Literal["rename_columns"] = "rename_columns"
    mapping: dict[str, str] = pydantic.Field(min_length=1)

    @pydantic.field_validator("mapping")
    @classmethod
    def _targets_unique(cls, mapping: dict[str, str]) -> dict[str, str]:
        if len(set(mapping.values())) != len(mapping) or any(not v for v in mapping.values()):
            raise ValueError("new names must be non-empty and distinct")
        return mapping


@register
class RenameColumns(RowOperator[RenameColumnsParams, NoState]):
    """Rename columns in place."""

    op = "rename_columns"
    params_model = RenameColumnsParams
    summary = "manage columns: rename"

    def check(self, schema: Schema) -> None:
        for old in self.params.mapping:
            self.ctx.require(schema, old)
        kept = [k for k in schema if k not in self.params.mapping]
        for new in self.params.mapping.values():
            if new in kept:
                raise self.ctx.error("renaming onto a column that exists already", new, "drop it first")

    def frame_schema(self, schema: Schema, state: NoState) -> Schema:
        return {self.params.mapping.get(k, k): v for k, v in schema.items()}

    def frame_source(self, schema: Schema, state: NoState) -> list[str]:
        return [f"lf = lf.rename({self.params.mapping!r})"]

    def row_function(self, schema: Schema, state: NoState) -> RowFn:
        pairs = list(self.params.mapping.items())

        def rename(row: Row, rt: Runtime) -> Row:
            values = [row.pop(old) for old, _ in pairs]
            for (_, new), value in zip(pairs, values, strict=True):
                row[new] = value
            return row

        return rename


class SelectColumnsParams(StepParams):
    """`{"op": "select_columns", "columns": ["a", "b"]}`: keep only these, in this order."""

    op: Literal["select_columns"] = "select_columns"
    columns: ColumnList


@register
class SelectColumns(RowOperator[SelectColumnsParams, NoState]):
    """Keep only the listed columns, in the listed order."""

    op = "select_columns"
    params_model = SelectColumnsParams
    summary = "manage columns: select"

    def check(self, schema: Schema) -> None:
        for column in self.params.columns:
            self.ctx.require(schema, column)

    def frame_schema(self, schema: Schema, state: NoState) -> Schema:
        return {c: schema[c] for c in self.params.columns}

    def frame_source(self, schema: Schema, state: NoState) -> list[str]:
        return [f"lf = lf.select({self.params.columns!r})"]

    def row_function(self, schema: Schema, state: NoState) -> RowFn:
        columns = list(self.params.columns)

        def select(row: Row, rt: Runtime) -> Row:
            return {c: row[c] for c in columns}

        return select


class ReorderColumnsParams(StepParams):
    """`{"op": "reorder_columns", "columns": ["b"], "position": "start"}` (or `before` / `after` a column)."""

    op: Literal["reorder_columns"] = "reorder_columns"
    columns: ColumnList = pydantic.Field(description="Columns to move, in their new order.")
    position: Literal["start", "end", "before", "after"] = "start"
    anchor: str | None = pydantic.Field(None, description="before / after: the column they go next to.")

    @pydantic.model_validator(mode="after")
    def _anchor_given(self) -> ReorderColumnsParams:
        if self.position in ("before", "after"):
            if self.anchor is None:
                raise ValueError(f"position {self.position!r} needs 'anchor'")
            if self.anchor in self.columns:
                raise ValueError("the anchor cannot be one of the moved columns")
        elif self.anchor is not None:
            raise ValueError("'anchor' is only for position before / after")
        return self


@register
class ReorderColumns(RowOperator[ReorderColumnsParams, NoState]):
    """Move columns to the start, the end, or next to another column; the others keep their order."""

    op = "reorder_columns"
    params_model = ReorderColumnsParams
    summary = "manage columns: reorder"

    def check(self, schema: Schema) -> None:
        for column in self.params.columns:
            self.ctx.require(schema, column)
        if self.params.anchor is not None:
            self.ctx.require(schema, self.params.anchor)

    def _order(self, schema: Schema) -> list[str]:
        moved = list(self.params.columns)
        rest = [c for c in schema if c not in set(moved)]
        p = self.params
        if p.position == "start":
            return moved + rest
        if p.position == "end":
            return rest + moved
        at = rest.index(p.anchor or "") + (1 if p.position == "after" else 0)
        return rest[:at] + moved + rest[at:]

    def frame_schema(self, schema: Schema, state: NoState) -> Schema:
        return {c: schema[c] for c in self._order(schema)}

    def frame_source(self, schema: Schema, state: NoState) -> list[str]:
        return [f"lf = lf.select({self._order(schema)!r})"]

    def row_function(self, schema: Schema, state: NoState) -> RowFn:
        # A row's key order is immaterial until the engine lays out the final record by the schema.
        def reorder(row: Row, rt: Runtime) -> Row:
            return row

        return reorder


class DuplicateColumnParams(StepParams):
    """`{"op": "duplicate_column", "column": "a", "new": "a_copy"}`: the copy is appended at the end."""

    op: Literal["duplicate_column"] = "duplicate_column"
    column: str
    new: str = pydantic.Field(min_length=1)


@register
class DuplicateColumn(RowOperator[DuplicateColumnParams, NoState]):
    """Copy a column under a new name."""

    op = "duplicate_column"
    params_model = DuplicateColumnParams
    summary = "manage columns: duplicate"

    def check(self, schema: Schema) -> None:
        self.ctx.require(schema, self.params.column)
        self.ctx.require_new(schema, self.params.new)

    def frame_schema(self, schema: Schema, state: NoState) -> Schema:
        return {**schema, self.params.new: schema[self.params.column]}

    def frame_source(self, schema: Schema, state: NoState) -> list[str]:
        return [f"lf = lf.with_columns({col(self.params.column)}.alias({self.params.new!r}))"]

    def row_function(self, schema: Schema, state: NoState) -> RowFn:
        source, new = self.params.column, self.params.new

        def duplicate(row: Row, rt: Runtime) -> Row:
            row[new] = row[source]
            return row

        return duplicate
