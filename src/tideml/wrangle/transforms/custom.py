"""Custom Python transform: trusted, row-wise code, refused unless the caller trusts the flow.

The step carries Python source that defines a function (by default `transform`) taking one row as a
dict and returning the new row as a dict with exactly the declared `columns`. Both paths call the same
function through `tideml.wrangle.prelude.run_custom`, so they agree by construction; the batch path is
row-at-a-time and therefore slow. Running it executes arbitrary code: the step must say
`"trusted": true`, and `fit` / `FittedFlow.load` refuse the flow unless `trust_custom_code=True`
(`--trust-custom-code` on the CLI).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import pydantic

from tideml.wrangle.prelude import compile_custom, run_custom
from tideml.wrangle.transforms.base import (
    NoState,
    Row,
    RowFn,
    RowOperator,
    Runtime,
    StepParams,
    pdt,
    register,
)
from tideml.wrangle.types import DType, Schema

__all__ = ["CustomPython", "CustomPythonParams"]


class CustomPythonParams(StepParams):
    """`{"op": "python", "trusted": true, "code": "def transform(row): …", "columns": {"x": "int64"}}`."""

    op: Literal["python"] = "python"
    code: str = pydantic.Field(min_length=1, description="Python source defining the function.")
    function: str = pydantic.Field("transform", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    columns: dict[str, DType] = pydantic.Field(
        min_length=1, description="The returned row's columns, in order."
    )
    trusted: bool = pydantic.Field(False, description="The flow's author marks the code as reviewed.")

    @pydantic.model_validator(mode="after")
    def _must_be_trusted(self) -> CustomPythonParams:
        if not self.trusted:
            raise ValueError("custom Python code must be marked 'trusted': true by the flow's author")
        return self


@register
class CustomPython(RowOperator[CustomPythonParams, NoState]):
    """Apply trusted row-wise Python code."""

    op = "python"
    params_model = CustomPythonParams
    summary = "custom Python transform (trusted, row-wise)"

    def _function(self) -> Callable[[dict[str, Any]], Any]:
        try:
            return compile_custom(self.params.code, self.params.function, self.ctx.where)
        except Exception as exc:
            raise self.ctx.error(f"the custom code does not load: {exc}", None, "fix the code") from None

    @property
    def name(self) -> str:
        """The name under which the batch path finds this step's function."""
        return f"custom_step_{self.ctx.index}"

    def check(self, schema: Schema) -> None:
        self._function()

    def frame_schema(self, schema: Schema, state: NoState) -> Schema:
        return dict(self.params.columns)

    def frame_source(self, schema: Schema, state: NoState) -> list[str]:
        fields = ", ".join(f"{k!r}: {pdt(v)}" for k, v in self.params.columns.items())
        return [
            f"lf = lf.select(pl.struct(pl.all()).map_elements(lambda r: run_custom({self.name}, r, "
            f"{dict(self.params.columns)!r}, rt, {self.ctx.where!r}), return_dtype=pl.Struct({{{fields}}}), "
            "skip_nulls=False).alias('_row')).unnest('_row')",
        ]

    def functions(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        """The callables the batch code refers to by name."""
        return {self.name: self._function()}

    def row_function(self, schema: Schema, state: NoState) -> RowFn:
        fn = self._function()
        columns = list(schema)
        declared = dict(self.params.columns)
        where = self.ctx.where

        def custom(row: Row, rt: Runtime) -> Row:
            return run_custom(fn, {c: row[c] for c in columns}, declared, rt, where)

        return custom
