"""Format string: lower, upper, strip, remove symbols, replace, pad, prefix and suffix, in place.

Every mode is literal (no regular expressions from the flow author) so that Polars and plain Python
agree exactly: `strip` removes only the listed characters, `replace` is a literal left-to-right
substitution, and `pad` counts code points.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

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
    register,
)
from tideml.wrangle.types import Schema

__all__ = ["DEFAULT_SYMBOLS", "FormatString", "FormatStringParams", "FormatStringState"]

# Data Wrangler's "Remove symbols" set.
DEFAULT_SYMBOLS = "!@#$%^&*()_+=-/\\`~{}|<>?"
DEFAULT_STRIP = " \t\n\r"


def _class_char(ch: str) -> str:
    """A character inside a regex class, as a hex escape: nothing in it can be read as syntax."""
    return f"\\x{{{ord(ch):X}}}"


Mode = Literal["lower", "upper", "strip", "remove_symbols", "replace", "pad", "prefix", "suffix"]


class FormatStringParams(StepParams):
    """`{"op": "format_string", "mode": "remove_symbols", "columns": ["incident_type"]}`."""

    op: Literal["format_string"] = "format_string"
    mode: Mode
    columns: list[str] | None = pydantic.Field(
        None, description="Columns to format (default: every string column of the frame)."
    )
    chars: str = pydantic.Field(DEFAULT_STRIP, min_length=1, description="strip: the characters removed.")
    side: Literal["left", "right", "both"] = pydantic.Field("both", description="strip / pad: which end.")
    symbols: str = pydantic.Field(DEFAULT_SYMBOLS, min_length=1, description="remove_symbols: what goes.")
    old: str | None = pydantic.Field(None, min_length=1, description="replace: the literal text replaced.")
    new: str = pydantic.Field("", description="replace: its replacement.")
    width: int | None = pydantic.Field(None, ge=1, le=10_000, description="pad: the target length.")
    fill: str = pydantic.Field(" ", min_length=1, max_length=1, description="pad: the fill character.")
    text: str | None = pydantic.Field(None, description="prefix / suffix: the text added.")

    @pydantic.model_validator(mode="after")
    def _mode_has_its_parameters(self) -> FormatStringParams:
        if self.mode == "replace" and self.old is None:
            raise ValueError("mode 'replace' needs 'old' (the text to replace)")
        if self.mode == "pad":
            if self.width is None:
                raise ValueError("mode 'pad' needs 'width'")
            if self.side == "both":
                raise ValueError("mode 'pad' pads 'left' or 'right'")
        if self.mode in ("prefix", "suffix") and self.text is None:
            raise ValueError(f"mode {self.mode!r} needs 'text'")
        if self.columns is not None and len(set(self.columns)) != len(self.columns):
            raise ValueError("columns are listed twice")
        return self


class FormatStringState(StrictModel):
    """The columns the step formats (resolved at fit when the flow says "every string column")."""

    columns: list[str]


@register
class FormatString(RowOperator[FormatStringParams, FormatStringState]):
    """Format string columns in place."""

    op = "format_string"
    params_model = FormatStringParams
    state_model = FormatStringState
    summary = "format string (lower, upper, strip, remove symbols, replace, pad, prefix, suffix)"

    def _columns(self, schema: Schema) -> list[str]:
        if self.params.columns is None:
            return [name for name, dtype in schema.items() if dtype == "string"]
        for column in self.params.columns:
            self.ctx.require(schema, column, {"string"})
        return list(self.params.columns)

    def check(self, schema: Schema) -> None:
        self._columns(schema)

    def fit_frame(self, lf: pl.LazyFrame, schema: Schema) -> FormatStringState:
        return FormatStringState(columns=self._columns(schema))

    def frame_schema(self, schema: Schema, state: FormatStringState) -> Schema:
        for column in state.columns:
            self.ctx.require(schema, column, {"string"})
        return dict(schema)

    def _expr(self, c: str) -> str:
        p = self.params
        e = col(c)
        if p.mode == "lower":
            return f"{e}.str.to_lowercase()"
        if p.mode == "upper":
            return f"{e}.str.to_uppercase()"
        if p.mode == "strip":
            method = {"both": "strip_chars", "left": "strip_chars_start", "right": "strip_chars_end"}[p.side]
            return f"{e}.str.{method}({p.chars!r})"
        if p.mode == "remove_symbols":
            klass = "".join(_class_char(ch) for ch in p.symbols)
            return f"{e}.str.replace_all({'[' + klass + ']'!r}, '')"
        if p.mode == "replace":
            return f"{e}.str.replace_all({p.old!r}, {p.new!r}, literal=True)"
        if p.mode == "pad":
            method = "pad_start" if p.side == "left" else "pad_end"
            return f"{e}.str.{method}({p.width!r}, {p.fill!r})"
        if p.mode == "prefix":
            return f"(pl.lit({p.text!r}) + {e})"
        return f"({e} + pl.lit({p.text!r}))"

    def frame_source(self, schema: Schema, state: FormatStringState) -> list[str]:
        if not state.columns:
            return []
        exprs = ", ".join(f"{self._expr(c)}.alias({c!r})" for c in state.columns)
        return [f"lf = lf.with_columns({exprs})"]

    def row_function(self, schema: Schema, state: FormatStringState) -> RowFn:
        p = self.params
        columns = list(state.columns)
        fmt: Callable[[str], str]
        if p.mode == "lower":
            fmt = str.lower
        elif p.mode == "upper":
            fmt = str.upper
        elif p.mode == "strip":
            chars = p.chars
            method = {"both": str.strip, "left": str.lstrip, "right": str.rstrip}[p.side]

            def strip(v: str) -> str:
                return method(v, chars)

            fmt = strip

        elif p.mode == "remove_symbols":
            table = str.maketrans("", "", p.symbols)

            def remove(v: str) -> str:
                return v.translate(table)

            fmt = remove

        elif p.mode == "replace":
            old, new = p.old or "", p.new

            def replace(v: str) -> str:
                return v.replace(old, new)

            fmt = replace

        elif p.mode == "pad":
            width, fill, left = p.width or 0, p.fill, p.side == "left"

            def pad(v: str) -> str:
                return v.rjust(width, fill) if left else v.ljust(width, fill)

            fmt = pad

        else:
            text, before = p.text or "", p.mode == "prefix"

            def affix(v: str) -> str:
                return text + v if before else v + text

            fmt = affix

        def format_row(row: Row, rt: Runtime) -> Row:
            for column in columns:
                value = row[column]
                if value is not None:
                    row[column] = fmt(value)
            return row

        return format_row
