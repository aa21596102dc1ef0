"""Pipeline parameters: typed by the pipeline function's signature, validated by pydantic at run time.

While a pipeline's graph is built, each parameter is a `ParamRef` placeholder. Passed to a step it is
resolved to the run's value; formatted into a string (`f"test_auc >= {min_auc}"`) it becomes `${min_auc}`,
which condition and fail steps substitute when they run, so the definition shows the template.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, create_model

from tideml.errors import ValidationError

__all__ = ["ParamRef", "params_model", "resolve_params", "substitute", "validate_params"]

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ParamRef:
    """A pipeline parameter while the graph is being built (its value is known only at run time)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"ParamRef({self.name!r})"

    def __str__(self) -> str:
        return "${" + self.name + "}"

    def __format__(self, spec: str) -> str:
        return str(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ParamRef) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("ParamRef", self.name))

    def __bool__(self) -> bool:
        raise ValidationError(
            "a pipeline parameter has no value while the pipeline is being defined",
            obj=f"parameter {self.name}",
            fix="branch at run time with a condition step (tideml.pipelines.condition), not a Python `if`",
        )


def params_model(fn: Callable[..., Any], name: str) -> type[BaseModel]:
    """A pydantic model of a pipeline function's parameters (annotation and default of each)."""
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ValidationError(
                "*args and **kwargs cannot be pipeline parameters",
                obj=f"pipeline {name}",
                field=param.name,
                fix="declare each parameter by name with a type and a default",
            )
        annotation = Any if param.annotation is inspect.Parameter.empty else param.annotation
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
    model: type[BaseModel] = create_model(
        f"{name}_parameters",
        __config__=ConfigDict(extra="forbid"),
        __module__=fn.__module__,
        **fields,
    )
    # resolve string annotations (`from __future__ import annotations`) in the function's module
    with contextlib.suppress(pydantic.PydanticUndefinedAnnotation, NameError):
        model.model_rebuild(_types_namespace=dict(getattr(fn, "__globals__", {})))
    return model


def validate_params(model: type[BaseModel], values: Mapping[str, Any], pipeline: str) -> dict[str, Any]:
    """Validate run-time values against the parameter model; errors name the parameter and the fix."""
    try:
        validated = model.model_validate(dict(values))
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "parameters"
        if err["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields) or "none"
            raise ValidationError(
                "unknown parameter", obj=f"pipeline {pipeline}", field=field, fix=f"known parameters: {known}"
            ) from exc
        if err["type"] == "missing":
            raise ValidationError(
                "required parameter not given",
                obj=f"pipeline {pipeline}",
                field=field,
                fix=f"pass it, e.g. --param {field}=VALUE",
            ) from exc
        raise ValidationError(
            err["msg"].lower(),
            obj=f"pipeline {pipeline}",
            field=field,
            fix=f"give a value of the declared type ({_annotation_name(model, field)})",
        ) from exc
    return validated.model_dump(mode="json")


def _annotation_name(model: type[BaseModel], field: str) -> str:
    info = model.model_fields.get(field.split(".")[0])
    if info is None or info.annotation is None:
        return "any"
    return getattr(info.annotation, "__name__", str(info.annotation))


def substitute(text: str, values: Mapping[str, Any]) -> str:
    """Replace `${name}` placeholders with parameter values."""

    def repl(m: re.Match[str]) -> str:
        if m[1] not in values:
            raise ValidationError(
                f"placeholder ${{{m[1]}}} names no pipeline parameter",
                obj=f"template {text!r}",
                fix=f"use one of {', '.join(sorted(values)) or '(none)'}",
            )
        return str(values[m[1]])

    return _PLACEHOLDER.sub(repl, text)


def resolve_params(value: Any, values: Mapping[str, Any], *, templates: bool = False) -> Any:
    """Replace every ParamRef (recursively in lists and dicts) by its value; optionally `${…}` too."""
    if isinstance(value, ParamRef):
        return values[value.name]
    if isinstance(value, dict):
        return {k: resolve_params(v, values, templates=templates) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve_params(v, values, templates=templates) for v in value]
    if templates and isinstance(value, str):
        return substitute(value, values)
    return value
