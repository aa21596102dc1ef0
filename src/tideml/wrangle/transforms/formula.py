"""Custom formula: a column computed by a SQL expression (see `tideml.wrangle.sqlexpr` for the grammar)."""

from __future__ import annotations

from typing import Literal

import pydantic

from tideml.wrangle.sqlexpr import Expression, SqlError, parse
from tideml.wrangle.transforms.base import (
    NoState,
    Row,
    RowFn,
    RowOperator,
    Runtime,
    StepParams,
    register,
)
from tideml.wrangle.types import Schema

__all__ = ["Formula", "FormulaParams"]


class FormulaParams(StepParams):
    """`{"op": "formula", "column": "claim_ratio", "expression": "injury_claim / total_claim_amount"}`."""

    op: Literal["formula"] = "formula"
    column: str = pydantic.Field(min_length=1, description="Output column (replaced in place if it exists).")
    expression: str = pydantic.Field(min_length=1, description="A SQL expression over the frame's columns.")


@register
class Formula(RowOperator[FormulaParams, NoState]):
    """Compute a column from a SQL expression; both paths run the same parsed, typed AST."""

    op = "formula"
    params_model = FormulaParams
    summary = "custom formula (SQL expression)"

    def _parse(self, schema: Schema) -> Expression:
        try:
            return parse(self.params.expression, schema)
        except SqlError as exc:
            raise self.ctx.error(
                f"expression {self.params.expression!r}: {exc}",
                self.params.column,
                "see docs/wrangle.md for the supported SQL grammar and functions",
            ) from None

    def check(self, schema: Schema) -> None:
        self._parse(schema)

    def frame_schema(self, schema: Schema, state: NoState) -> Schema:
        out = dict(schema)
        out[self.params.column] = self._parse(schema).dtype
        return out

    def frame_source(self, schema: Schema, state: NoState) -> list[str]:
        source = self._parse(schema).to_polars_source()
        return [f"lf = lf.with_columns({source}.alias({self.params.column!r}))"]

    def row_function(self, schema: Schema, state: NoState) -> RowFn:
        fn = self._parse(schema).to_python()
        column = self.params.column

        def formula(row: Row, rt: Runtime) -> Row:
            row[column] = fn(row)
            return row

        return formula
