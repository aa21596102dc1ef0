"""Pipelines: a function whose body calls steps; its signature declares the typed parameters.

    @pipeline
    def fraud(rows: int = 5000, min_auc: float = 0.75) -> None:
        raw = generate(rows=rows)
        model = train(data=raw)
        gate = condition("quality", f"test_auc >= {min_auc}", metrics=model["metrics"])
        with gate.if_false():
            fail("too_weak", "the model missed the quality bar", details=gate)

The body runs once, with placeholders for the parameters, to build the graph; the graph, not the
function, is what runs. `Pipeline.to_json()` is the definition stored with every run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, overload

from pydantic import BaseModel

from tideml.errors import ValidationError
from tideml.pipelines.graph import GraphBuilder, PipelineGraph, reset_builder, set_builder
from tideml.pipelines.hashing import JSONValue, canonical_json, sha256_hex, to_json_value
from tideml.pipelines.params import ParamRef, params_model, validate_params
from tideml.pipelines.step import target_of

if TYPE_CHECKING:
    from tideml.pipelines.runner import RunResult
    from tideml.workspace import Workspace

__all__ = ["DEFINITION_FORMAT", "Pipeline", "pipeline"]

DEFINITION_FORMAT = 1


class Pipeline:
    """A named pipeline: its parameter model and (built on first use) its graph of steps."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None, description: str = "") -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.description = description or inspect.getdoc(fn) or ""
        self.params_model: type[BaseModel] = params_model(fn, self.name)
        # a nested pipeline function works, but only a module-level one can be re-imported to resume a run
        self.target = target_of(fn, what="pipeline function", strict=False)

    def __repr__(self) -> str:
        return f"<pipeline {self.name}: {len(self.graph)} steps>"

    @cached_property
    def graph(self) -> PipelineGraph:
        """The steps and edges, built by running the body with parameter placeholders."""
        builder = GraphBuilder(self.name)
        token = set_builder(builder)
        try:
            self.fn(**{p: ParamRef(p) for p in self.params_model.model_fields})
        finally:
            reset_builder(token)
        if not builder.nodes:
            raise ValidationError(
                "defines no steps",
                obj=f"pipeline {self.name}",
                fix="call at least one @step function in the pipeline's body",
            )
        return PipelineGraph(builder.nodes)

    def validate_params(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The run's parameter values, validated against the declared types, defaults filled in."""
        return validate_params(self.params_model, values or {}, self.name)

    def parameters_json(self) -> dict[str, JSONValue]:
        """Name, type and default of each parameter (the JSON schema's properties)."""
        schema = self.params_model.model_json_schema()
        out = to_json_value(schema.get("properties", {}))
        assert isinstance(out, dict)
        return out

    def to_json(self) -> dict[str, JSONValue]:
        """The definition as JSON: name, parameters, steps (kinds, arguments, code versions), edges."""
        return {
            "format": DEFINITION_FORMAT,
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters_json(),
            "required": list(self.params_model.model_json_schema().get("required", [])),
            **self.graph.to_json(),
        }

    @property
    def definition_sha256(self) -> str:
        """Content hash of the JSON definition (same definition, same hash, on any machine)."""
        return sha256_hex(canonical_json(self.to_json()))

    def run(
        self,
        ws: Workspace,
        params: Mapping[str, Any] | None = None,
        *,
        executor: str | None = None,
        steps: list[str] | None = None,
        from_steps: list[str] | None = None,
        force: bool = False,
        max_parallel: int | None = None,
        progress: bool = True,
    ) -> RunResult:
        """Run the pipeline in a workspace (see `tideml.pipelines.run_pipeline`)."""
        from tideml.pipelines.runner import run_pipeline

        return run_pipeline(
            ws,
            self,
            params,
            executor=executor,
            steps=steps,
            from_steps=from_steps,
            force=force,
            max_parallel=max_parallel,
            progress=progress,
        )


@overload
def pipeline(fn: Callable[..., Any], /) -> Pipeline: ...


@overload
def pipeline(
    fn: None = None, /, *, name: str | None = None, description: str = ""
) -> Callable[[Callable[..., Any]], Pipeline]: ...


def pipeline(
    fn: Callable[..., Any] | None = None, /, *, name: str | None = None, description: str = ""
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Declare a pipeline (`@pipeline` or `@pipeline(name="fraud")`); parameters come from the signature."""

    def wrap(f: Callable[..., Any]) -> Pipeline:
        return Pipeline(f, name=name, description=description)

    return wrap(fn) if fn is not None else wrap
