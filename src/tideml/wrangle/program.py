"""The batch path as a program: each fitted step becomes a small Polars function, compiled once.

The same source text runs inside tideml (`FittedFlow.transform`) and in exported scripts, so the two
cannot drift apart.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from tideml.wrangle import prelude
from tideml.wrangle.transforms.base import Operator, StrictModel
from tideml.wrangle.transforms.custom import CustomPython
from tideml.wrangle.types import Schema

__all__ = ["FittedStep", "StepFunction", "compile_program", "program_source", "step_source"]

StepFunction = Callable[[dict[str, pl.LazyFrame], Any], None]


@dataclass(frozen=True)
class FittedStep:
    """One step of a fitted flow: its operator, its learned state and the frame schemas it sees."""

    op: Operator[Any, Any]
    state: StrictModel
    schemas: Mapping[str, Schema]

    @property
    def index(self) -> int:
        """The step's position in the flow."""
        return self.op.ctx.index


def step_source(step: FittedStep) -> str:
    """Python source of `step_<index>(frames, rt)`, which rewrites `frames` in place."""
    lines = step.op.source(step.schemas, step.state)
    summary = step.op.summary or step.op.op
    doc = f"{step.op.ctx.where}: {summary}".replace('"""', "'''")
    body = "\n".join("    " + line for line in lines)
    return f'def step_{step.index}(frames, rt):\n    """{doc}"""\n{body}\n'


def program_source(steps: list[FittedStep]) -> str:
    """All step functions, one after another."""
    return "\n\n".join(step_source(step) for step in steps)


def namespace(steps: list[FittedStep]) -> dict[str, Any]:
    """The globals the generated code needs: Polars, the prelude and any trusted custom functions."""
    ns: dict[str, Any] = {"pl": pl, "dt": datetime, "math": math, "__name__": "tideml_flow"}
    ns.update({name: getattr(prelude, name) for name in prelude.__all__})
    for step in steps:
        if isinstance(step.op, CustomPython):
            ns.update(step.op.functions())
    return ns


def compile_program(flow: str, steps: list[FittedStep]) -> dict[int, StepFunction]:
    """Compile the steps' batch code; returns step index → function."""
    ns = namespace(steps)
    exec(compile(program_source(steps), f"<tideml flow {flow}>", "exec"), ns)
    return {step.index: ns[f"step_{step.index}"] for step in steps}
