"""Encode categorical: one-hot (frequency-ordered, explicit unseen handling) and ordinal.

Categories are fitted once and frozen in the state, as in Data Wrangler; a category met later is
"unseen" and handled as the step says. Null is not a category: it one-hot encodes to all zeros and
ordinal-encodes to null.
"""

from __future__ import annotations

from typing import Any, Literal

import polars as pl
import pydantic

from tideml.wrangle.transforms.base import (
    Row,
    RowFn,
    RowOperator,
    Runtime,
    StepParams,
    StrictModel,
    col,
    py,
    register,
)
from tideml.wrangle.types import Schema

__all__ = [
    "Category",
    "OneHot",
    "OneHotParams",
    "OneHotState",
    "Ordinal",
    "OrdinalParams",
    "OrdinalState",
    "category_label",
    "learn_categories",
]

Category = str | int | bool
_CHAIN_LIMIT = 64  # ordinal mappings up to this size compile to a when/then chain
_KIND = {"string": str, "int64": int, "bool": bool}


def category_label(value: Category) -> str:
    """The text a category contributes to a column name (`true`/`false` for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def learn_categories(lf: pl.LazyFrame, column: str, order: str) -> list[Any]:
    """Distinct non-null values, most frequent first (ties by value), or in lexical order."""
    counts = lf.select(pl.col(column).drop_nulls().value_counts(sort=False)).collect().to_series()
    pairs = [(row[column], row["count"]) for row in counts.to_list()]
    if order == "frequency":
        pairs.sort(key=lambda p: (-p[1], p[0]))
    else:
        pairs.sort(key=lambda p: p[0])
    return [value for value, _ in pairs]


def _check_kinds(ctx_error: Any, values: list[Any], dtype: str, column: str, what: str) -> None:
    kind = _KIND[dtype]
    for value in values:
        if type(value) is not kind:
            raise ctx_error(
                f"{what} {value!r} is not a {dtype} like the column",
                column,
                f"write {what}s as {dtype} values",
            )


class OneHotParams(StepParams):
    """`{"op": "one_hot", "column": "incident_type", "on_unseen": "all_zero"}`."""

    op: Literal["one_hot"] = "one_hot"
    column: str
    categories: list[Category] | None = pydantic.Field(
        None, min_length=1, description="Explicit categories in column order (default: learned at fit)."
    )
    order: Literal["frequency", "lexical"] = pydantic.Field(
        "frequency", description="Learned order: most frequent first (ties by value), or lexical."
    )
    max_categories: int | None = pydantic.Field(None, ge=1, description="Keep only the first N learned.")
    on_unseen: Literal["error", "keep_as_other", "all_zero"] = pydantic.Field(
        "error", description="A value not among the categories: fail, set the 'other' column, or all zeros."
    )
    other_label: str = pydantic.Field("unseen", min_length=1, description="keep_as_other: <column>_<label>.")
    drop_last: bool = pydantic.Field(False, description="Omit the last category's column.")
    keep_original: bool = pydantic.Field(False, description="Keep the encoded column (default: drop it).")
    separator: str = pydantic.Field("_", description="Between the column name and the category label.")

    @pydantic.field_validator("categories")
    @classmethod
    def _distinct(cls, values: list[Category] | None) -> list[Category] | None:
        if values is not None and len({(type(v), v) for v in values}) != len(values):
            raise ValueError("a category is listed twice")
        return values


class OneHotState(StrictModel):
    """The fitted categories, in output column order."""

    categories: list[Category]


@register
class OneHot(RowOperator[OneHotParams, OneHotState]):
    """One 0/1 int64 column per category, appended at the end; the source column is dropped."""

    op = "one_hot"
    params_model = OneHotParams
    state_model = OneHotState
    summary = "encode categorical: one-hot"

    def check(self, schema: Schema) -> None:
        dtype = self.ctx.require(schema, self.params.column, {"string", "int64", "bool"})
        if self.params.categories is not None:
            _check_kinds(self.ctx.error, self.params.categories, dtype, self.params.column, "category")

    def fit_frame(self, lf: pl.LazyFrame, schema: Schema) -> OneHotState:
        p = self.params
        if p.categories is not None:
            return OneHotState(categories=list(p.categories))
        learned = learn_categories(lf, p.column, p.order)
        if not learned:
            raise self.ctx.error("no categories to learn: the column is empty or all null", p.column)
        return OneHotState(categories=learned[: p.max_categories])

    def _names(self, state: OneHotState) -> tuple[list[str], str | None]:
        p = self.params
        kept = state.categories[:-1] if p.drop_last else state.categories
        names = [f"{p.column}{p.separator}{category_label(c)}" for c in kept]
        other = f"{p.column}{p.separator}{p.other_label}" if p.on_unseen == "keep_as_other" else None
        return names, other

    def frame_schema(self, schema: Schema, state: OneHotState) -> Schema:
        p = self.params
        _check_kinds(self.ctx.error, state.categories, schema[p.column], p.column, "category")
        out = dict(schema)
        if not p.keep_original:
            del out[p.column]
        names, other = self._names(state)
        for name in [*names, *([other] if other else [])]:
            if name in out:
                raise self.ctx.error(
                    f"the encoding would create {name!r}, which exists already",
                    p.column,
                    "set 'separator' or 'other_label', or rename the clashing column first",
                )
            out[name] = "int64"
        return out

    def frame_source(self, schema: Schema, state: OneHotState) -> list[str]:
        p = self.params
        c = col(p.column)
        cats = py(list(state.categories))
        names, other = self._names(state)
        lines = []
        if p.on_unseen == "error":
            lines.append(
                f"lf = lf.filter(check_rows({c}.is_not_null() & ~{c}.is_in({cats}), {c}, rt, "
                f"{self.ctx.where!r}, {p.column!r}, 'unseen category {{value}}', "
                f"{'refit the flow, or set on_unseen to keep_as_other or all_zero'!r}))"
            )
        exprs = [
            f"({c} == {py(value)}).fill_null(False).cast(pl.Int64).alias({name!r})"
            for value, name in zip(state.categories, names, strict=False)
        ]
        if other:
            exprs.append(f"({c}.is_not_null() & ~{c}.is_in({cats})).cast(pl.Int64).alias({other!r})")
        lines.append(f"lf = lf.with_columns({', '.join(exprs)})")
        if not p.keep_original:
            lines.append(f"lf = lf.drop({p.column!r})")
        return lines

    def row_function(self, schema: Schema, state: OneHotState) -> RowFn:
        p = self.params
        names, other = self._names(state)
        zeros: dict[str, int] = dict.fromkeys(names, 0)
        if other:
            zeros[other] = 0
        updates: dict[Any, dict[str, int]] = {}
        for i, value in enumerate(state.categories):
            update = dict(zeros)
            if i < len(names):
                update[names[i]] = 1
            updates[value] = update
        unseen = dict(zeros)
        if other:
            unseen[other] = 1
        column, keep, strict, where = p.column, p.keep_original, p.on_unseen == "error", self.ctx.where

        def one_hot(row: Row, rt: Runtime) -> Row:
            value = row[column] if keep else row.pop(column)
            if value is None:
                row.update(zeros)
                return row
            update = updates.get(value)
            if update is None:
                if strict:
                    rt.fail(
                        where,
                        column,
                        f"unseen category {value!r}",
                        "refit the flow, or set on_unseen to keep_as_other or all_zero",
                    )
                update = unseen
            row.update(update)
            return row

        return one_hot


class OrdinalParams(StepParams):
    """`{"op": "ordinal", "column": "incident_severity", "mapping": {"minor": 0, "major": 1}}`."""

    op: Literal["ordinal"] = "ordinal"
    column: str
    mapping: dict[str, int] | None = pydantic.Field(None, min_length=1, description="Category → code.")
    categories: list[str] | None = pydantic.Field(
        None, min_length=1, description="Categories in code order (0, 1, …); an alternative to mapping."
    )
    order: Literal["frequency", "lexical"] = pydantic.Field(
        "lexical", description="Learned order when neither mapping nor categories is given."
    )
    on_unseen: Literal["error", "null", "value"] = pydantic.Field(
        "error", description="A value not in the mapping: fail, null, or `unseen_value`."
    )
    unseen_value: int | None = None

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> OrdinalParams:
        if self.mapping is not None and self.categories is not None:
            raise ValueError("give either mapping or categories, not both")
        if self.categories is not None and len(set(self.categories)) != len(self.categories):
            raise ValueError("a category is listed twice")
        if (self.on_unseen == "value") != (self.unseen_value is not None):
            raise ValueError("unseen_value goes with on_unseen: value, and only with it")
        return self


class OrdinalState(StrictModel):
    """The fitted category → code mapping."""

    mapping: dict[str, int]


@register
class Ordinal(RowOperator[OrdinalParams, OrdinalState]):
    """Replace a string column in place by its int64 code."""

    op = "ordinal"
    params_model = OrdinalParams
    state_model = OrdinalState
    summary = "encode categorical: ordinal"

    def check(self, schema: Schema) -> None:
        self.ctx.require(schema, self.params.column, {"string"})

    def fit_frame(self, lf: pl.LazyFrame, schema: Schema) -> OrdinalState:
        p = self.params
        if p.mapping is not None:
            return OrdinalState(mapping=dict(p.mapping))
        categories = p.categories or learn_categories(lf, p.column, p.order)
        if not categories:
            raise self.ctx.error("no categories to learn: the column is empty or all null", p.column)
        return OrdinalState(mapping={c: i for i, c in enumerate(categories)})

    def frame_schema(self, schema: Schema, state: OrdinalState) -> Schema:
        return {k: ("int64" if k == self.params.column else v) for k, v in schema.items()}

    def frame_source(self, schema: Schema, state: OrdinalState) -> list[str]:
        p = self.params
        c = col(p.column)
        lines = []
        if p.on_unseen == "error":
            lines.append(
                f"lf = lf.filter(check_rows({c}.is_not_null() & ~{c}.is_in({py(list(state.mapping))}), "
                f"{c}, rt, "
                f"{self.ctx.where!r}, {p.column!r}, 'unseen category {{value}}', "
                f"{'add it to the mapping, or set on_unseen to null or value'!r}))"
            )
        default = f"pl.lit({py(p.unseen_value)}, dtype=pl.Int64)"
        if len(state.mapping) <= _CHAIN_LIMIT:
            # A when/then chain streams in bounded memory; replace_strict materialises (Polars 2.1).
            chain = "pl" + "".join(f".when({c} == {py(k)}).then({v})" for k, v in state.mapping.items())
            value = f"{chain}.otherwise({default}).cast(pl.Int64)"
        else:
            value = f"{c}.replace_strict({py(state.mapping)}, default={default}, return_dtype=pl.Int64)"
        lines.append(
            f"lf = lf.with_columns(pl.when({c}.is_null()).then(pl.lit(None, dtype=pl.Int64)).otherwise("
            f"{value}).alias({p.column!r}))"
        )
        return lines

    def row_function(self, schema: Schema, state: OrdinalState) -> RowFn:
        p = self.params
        mapping, column, default = dict(state.mapping), p.column, p.unseen_value
        strict, where = p.on_unseen == "error", self.ctx.where

        def ordinal(row: Row, rt: Runtime) -> Row:
            value = row[column]
            if value is not None:
                code = mapping.get(value)
                if code is None:
                    if strict:
                        rt.fail(
                            where,
                            column,
                            f"unseen category {value!r}",
                            "add it to the mapping, or set on_unseen to null or value",
                        )
                    code = default
                row[column] = code
            return row

        return ordinal
