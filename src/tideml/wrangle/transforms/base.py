"""The operator contract every transform follows, the step context errors are built from, and the registry.

An operator is one step of a flow. It is configured by a pydantic `StepParams` model (the step as written
in the flow file), learns a JSON-serialisable pydantic state in `fit`, and then runs on two paths that
must agree value for value and type for type:

* the batch path: `source` returns Polars code (a few lines over `frames`, a dict of LazyFrames, and
  `rt`, the run's runtime). The engine compiles it once; `tide wrangle export` copies it into a script;
* the record path: `record` returns a plain-Python closure over one row per frame, with no frame
  machinery, built once when the flow is fitted or loaded.

Most operators read and write one frame row by row; they subclass `RowOperator` and implement five small
methods on a single schema instead.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Generic, NoReturn, TypeVar

import polars as pl
import pydantic

from tideml.errors import ValidationError
from tideml.wrangle.types import DType, Schema

__all__ = [
    "OPERATORS",
    "ColumnList",
    "Env",
    "EnvFn",
    "GuardFailure",
    "NoState",
    "Operator",
    "Row",
    "RowFn",
    "RowOperator",
    "Runtime",
    "StepContext",
    "StepParams",
    "StrictModel",
    "col",
    "pdt",
    "py",
    "register",
]


def _distinct(columns: list[str]) -> list[str]:
    if len(set(columns)) != len(columns):
        raise ValueError("a column is listed twice")
    return columns


ColumnList = Annotated[list[str], pydantic.Field(min_length=1), pydantic.AfterValidator(_distinct)]
"""A non-empty list of distinct column names (a step parameter type)."""

Row = dict[str, Any]
Env = dict[str, Row | None]
RowFn = Callable[[Row, "Runtime"], Row | None]
EnvFn = Callable[[Env, "Runtime"], None]


class StrictModel(pydantic.BaseModel):
    """Base of every spec and state model: immutable, and unknown keys are errors."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")


class StepParams(StrictModel):
    """Fields every step has; each operator adds its own parameters beside them."""

    op: str = pydantic.Field(description="The operator's name.")
    frame: str | None = pydantic.Field(
        None, min_length=1, description="Frame the step reads (default: the frame the previous step wrote)."
    )
    into: str | None = pydantic.Field(
        None, min_length=1, description="Frame the step writes (default: the frame it reads)."
    )
    comment: str | None = pydantic.Field(None, description="Free text for readers of the flow.")


class NoState(StrictModel):
    """The state of an operator that learns nothing."""


class GuardFailure(Exception):
    """Raised inside a run when a row breaks a rule; the runtime holds the ValidationError to report."""


class Runtime:
    """One run of a fitted flow: its clock, its mode, and the first rule a row broke."""

    def __init__(self, flow: str, run_time: float, *, training: bool = False) -> None:
        self.flow = flow
        self.run_time = run_time
        self.training = training
        self.error: ValidationError | None = None

    def fail(self, where: str, column: str | None, message: str, fix: str | None) -> NoReturn:
        """Record the error (the first one wins) and abort the run."""
        error = ValidationError(message, obj=f"flow {self.flow!r} {where}", field=column, fix=fix)
        if self.error is None:
            self.error = error
        raise error


@dataclass(frozen=True)
class StepContext:
    """Where a step sits in its flow, for error messages: `flow 'claims' steps[3] (one_hot)`."""

    flow: str
    index: int
    op: str

    @property
    def where(self) -> str:
        """`steps[3] (one_hot)`."""
        return f"steps[{self.index}] ({self.op})"

    def error(self, message: str, column: str | None = None, fix: str | None = None) -> ValidationError:
        """A ValidationError that names the flow, the step index, the operator and the column."""
        return ValidationError(message, obj=f"flow {self.flow!r} {self.where}", field=column, fix=fix)

    def require(
        self, schema: Schema, column: str, dtypes: Collection[str] | None = None, *, frame: str = ""
    ) -> DType:
        """The type of `column`, or an error if the frame lacks it or it has a type not in `dtypes`."""
        if column not in schema:
            close = difflib.get_close_matches(column, list(schema), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"columns are {', '.join(list(schema)[:12])}"
            where = f" of frame {frame!r}" if frame else ""
            raise self.error(f"unknown column: not among the columns{where}", column, hint)
        dtype = schema[column]
        if dtypes is not None and dtype not in dtypes:
            raise self.error(
                f"wrong type: {self.op} needs {' or '.join(sorted(dtypes))}, the column is {dtype}",
                column,
                "cast the column first with a `cast` step",
            )
        return dtype

    def require_new(self, schema: Schema, column: str) -> None:
        """Fail if a column the step would create exists already."""
        if column in schema:
            raise self.error(
                "the step would create a column that exists already", column, "rename one of them"
            )


def py(value: object) -> str:
    """Python source for a constant: exact for floats (repr round-trips), NaN and infinities included."""
    if isinstance(value, float):
        if math.isnan(value):
            return "float('nan')"
        if math.isinf(value):
            return "float('inf')" if value > 0 else "float('-inf')"
        return repr(value)
    if isinstance(value, dt.datetime):
        parts = (
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
        )
        return f"dt.datetime{parts!r}"
    if isinstance(value, dt.date):
        return f"dt.date({value.year}, {value.month}, {value.day})"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(py(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py(k)}: {py(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, bool | int | str):
        return repr(value)
    raise TypeError(f"no source form for {type(value).__name__}")


def col(name: str) -> str:
    """Source of a column reference."""
    return f"pl.col({name!r})"


_PDT = {
    "int64": "pl.Int64",
    "float64": "pl.Float64",
    "string": "pl.String",
    "bool": "pl.Boolean",
    "date": "pl.Date",
    "datetime": "pl.Datetime('us')",
}


def pdt(dtype: str) -> str:
    """Source of a Polars dtype."""
    return _PDT[dtype]


P = TypeVar("P", bound=StepParams)
S = TypeVar("S", bound=StrictModel)


class Operator(ABC, Generic[P, S]):
    """One step: fit learns state; `source` is its batch code, `record` its per-record closure."""

    op: ClassVar[str]
    params_model: ClassVar[type[StepParams]]
    state_model: ClassVar[type[StrictModel]] = NoState
    training_only: ClassVar[bool] = False
    summary: ClassVar[str] = ""

    def __init__(self, params: P, ctx: StepContext, frame: str, into: str) -> None:
        self.params = params
        self.ctx = ctx
        self.frame = frame
        self.into = into

    def reads(self) -> list[str]:
        """Frames the step reads; the first is its own frame."""
        return [self.frame]

    def writes(self) -> list[str]:
        """Frames the step writes."""
        return [self.into]

    @abstractmethod
    def fit(self, frames: Mapping[str, pl.LazyFrame], schemas: Mapping[str, Schema]) -> S:
        """Validate the step against the schemas and learn its state from the frames."""

    @abstractmethod
    def output_schemas(self, schemas: Mapping[str, Schema], state: S) -> dict[str, Schema]:
        """The schemas of the frames the step writes (validating params and state against the input)."""

    @abstractmethod
    def source(self, schemas: Mapping[str, Schema], state: S) -> list[str]:
        """Polars code (lines) over `frames` and `rt` that applies the fitted step in inference mode."""

    @abstractmethod
    def record(self, schemas: Mapping[str, Schema], state: S) -> EnvFn:
        """A closure that applies the fitted step to one row per frame (None: the frame has no row)."""

    def apply_training(
        self, frames: dict[str, pl.DataFrame], schemas: Mapping[str, Schema], state: S, rt: Runtime
    ) -> dict[str, pl.DataFrame]:
        """Training-only operators: the whole-frame transformation run when `training=True`."""
        raise TypeError(f"{self.op} has no training-only behaviour; only balance and split do")


class RowOperator(Operator[P, S]):
    """An operator that maps one frame to one frame, row by row (or dropping rows)."""

    def check(self, schema: Schema) -> None:
        """Validate the parameters against the input schema (columns exist, types fit)."""

    def fit_frame(self, lf: pl.LazyFrame, schema: Schema) -> S:
        """Learn the state from the input frame; the default learns nothing."""
        return self.state_model()  # type: ignore[return-value]

    @abstractmethod
    def frame_schema(self, schema: Schema, state: S) -> Schema:
        """The output schema."""

    @abstractmethod
    def frame_source(self, schema: Schema, state: S) -> list[str]:
        """Polars code lines that rebind `lf` (the frame) to its transformed version."""

    @abstractmethod
    def row_function(self, schema: Schema, state: S) -> RowFn:
        """A closure over one row dict; it may mutate and return the row, or return None to drop it."""

    def fit(self, frames: Mapping[str, pl.LazyFrame], schemas: Mapping[str, Schema]) -> S:
        schema = schemas[self.frame]
        self.check(schema)
        return self.fit_frame(frames[self.frame], schema)

    def output_schemas(self, schemas: Mapping[str, Schema], state: S) -> dict[str, Schema]:
        schema = schemas[self.frame]
        self.check(schema)
        return {self.into: self.frame_schema(schema, state)}

    def source(self, schemas: Mapping[str, Schema], state: S) -> list[str]:
        lines = self.frame_source(schemas[self.frame], state)
        return [f"lf = frames[{self.frame!r}]", *lines, f"frames[{self.into!r}] = lf"]

    def record(self, schemas: Mapping[str, Schema], state: S) -> EnvFn:
        fn = self.row_function(schemas[self.frame], state)
        frame, into = self.frame, self.into
        if frame == into:

            def apply_in_place(env: Env, rt: Runtime) -> None:
                row = env[frame]
                if row is not None:
                    env[frame] = fn(row, rt)

            return apply_in_place

        def apply_copy(env: Env, rt: Runtime) -> None:
            row = env[frame]
            env[into] = None if row is None else fn(dict(row), rt)

        return apply_copy


OPERATORS: dict[str, type[Operator[Any, Any]]] = {}
_O = TypeVar("_O", bound=type[Operator[Any, Any]])


def register(cls: _O) -> _O:
    """Class decorator: add an operator to the catalogue under its `op` name."""
    if cls.op in OPERATORS:
        raise RuntimeError(f"operator {cls.op!r} registered twice")
    OPERATORS[cls.op] = cls
    return cls
