"""Step definitions: `@step` turns a function into a step; calling it inside a pipeline adds a node.

Outside a pipeline definition a step is its plain function, so it can be unit-tested directly.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, overload

from tideml.errors import ValidationError
from tideml.pipelines.graph import OutputRef, StepHandle, StepNode, TargetRef, current_builder, iter_refs
from tideml.pipelines.hashing import code_version, to_json_value
from tideml.pipelines.params import ParamRef
from tideml.pipelines.policies import CachePolicy, RetryPolicy, validated

__all__ = ["StepDef", "add_node", "check_arguments", "step", "target_of"]

# A step function with a parameter of this name receives the run's Workspace where it executes.
WORKSPACE_ARGUMENT = "ws"


def target_of(fn: Callable[..., Any], *, what: str, strict: bool = True) -> TargetRef:
    """The import address of a module-level function; refuses lambdas and nested functions if strict."""
    qualname = getattr(fn, "__qualname__", "")
    module = getattr(fn, "__module__", None) or "__main__"
    if strict and ("<lambda>" in qualname or "<locals>" in qualname):
        raise ValidationError(
            "is not a module-level function, so worker processes cannot import it",
            obj=f"{what} {qualname or fn!r}",
            fix="define it with `def` at the top level of a module",
        )
    try:
        file = inspect.getsourcefile(fn)
    except TypeError:
        file = None
    return TargetRef(module, qualname, file)


def check_arguments(name: str, arguments: Mapping[str, Any]) -> None:
    """Every argument must be JSON-able once its step outputs and parameters are substituted."""
    for where, ref in iter_refs(dict(arguments)):
        if ref.output == "*":
            raise ValidationError(
                "a multi-output step was passed whole",
                obj=f"step {name}",
                field=where,
                fix=f"pick one output, e.g. {ref.step}['<output>']",
            )

    def placeholder(value: Any) -> Any:
        if isinstance(value, OutputRef | ParamRef):
            return None
        if isinstance(value, dict):
            return {k: placeholder(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [placeholder(v) for v in value]
        return value

    to_json_value(placeholder(dict(arguments)), where=f"step {name}")


def add_node(node: StepNode) -> StepHandle:
    """Add a node to the pipeline being defined; refuse outside a definition."""
    builder = current_builder()
    if builder is None:
        raise ValidationError(
            "step constructors only work inside a pipeline definition",
            obj=f"step {node.name}",
            fix="call it inside a function decorated with @pipeline",
        )
    check_arguments(node.name, node.arguments)
    builder.add(node)
    return StepHandle(node.name, node.outputs)


class StepDef:
    """A step: a function plus its name, kind, code version and retry/caching policies."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        kind: str = "python",
        version: str | None = None,
        retry: RetryPolicy | Mapping[str, Any] | int | None = None,
        cache: CachePolicy | Mapping[str, Any] | bool | str | None = None,
        outputs: tuple[str, ...] | list[str] | None = None,
        files: tuple[str, ...] | list[str] = (),
        after: tuple[str | OutputRef, ...] | list[str | OutputRef] = (),
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.kind = kind
        self.version = version
        self.retry: RetryPolicy = validated(RetryPolicy, retry or {}, step=self.name, field="retry")
        self.cache: CachePolicy = validated(
            CachePolicy, {} if cache is None else cache, step=self.name, field="cache"
        )
        self.outputs: tuple[str, ...] = tuple(outputs) if outputs else ("return",)
        self.files = tuple(files)
        self.after = tuple(a.step if isinstance(a, OutputRef) else a for a in after)
        self.signature = inspect.signature(fn)
        self.target = target_of(fn, what="step function")
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.__qualname__ = fn.__qualname__
        self.__module__ = fn.__module__
        self.__wrapped__ = fn
        self._code_version: str | None = None
        for f in self.files:
            if f not in self.signature.parameters:
                raise ValidationError(
                    "names no parameter of the function",
                    obj=f"step {self.name}",
                    field=f"files.{f}",
                    fix=f"use one of {', '.join(self.signature.parameters)}",
                )

    @property
    def code_version(self) -> str:
        """sha256 of the function's normalised source (or of the explicit `version`)."""
        if self._code_version is None:
            self._code_version = code_version(self.fn, self.version)
        return self._code_version

    def with_options(self, **options: Any) -> StepDef:
        """A copy with other options (name, version, retry, cache, outputs, files, after)."""
        current: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "version": self.version,
            "retry": self.retry,
            "cache": self.cache,
            "outputs": None if self.outputs == ("return",) else self.outputs,
            "files": self.files,
            "after": self.after,
        }
        unknown = set(options) - set(current)
        if unknown:
            raise ValidationError(
                f"unknown option {sorted(unknown)[0]!r}",
                obj=f"step {self.name}",
                fix=f"options are {', '.join(current)}",
            )
        return StepDef(self.fn, **{**current, **options})

    def __repr__(self) -> str:
        return f"<step {self.name} ({self.target.dotted})>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if current_builder() is None:
            return self.fn(*args, **kwargs)
        if WORKSPACE_ARGUMENT in kwargs:
            raise ValidationError(
                "the workspace is passed by the runner, not by the pipeline",
                obj=f"step {self.name}",
                field=WORKSPACE_ARGUMENT,
                fix=f"call the step without {WORKSPACE_ARGUMENT}=",
            )
        try:
            if WORKSPACE_ARGUMENT in self.signature.parameters:
                kwargs = {**kwargs, WORKSPACE_ARGUMENT: None}
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ValidationError(
                str(exc), obj=f"step {self.name}", fix=f"call it as {self.name}{self.signature}"
            ) from exc
        for pname, param in self.signature.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) and pname in bound.arguments:
                raise ValidationError(
                    "*args / **kwargs cannot carry step arguments",
                    obj=f"step {self.name}",
                    field=pname,
                    fix="declare each argument by name",
                )
        arguments = dict(bound.arguments)
        arguments.pop(WORKSPACE_ARGUMENT, None)  # injected by the worker where the step runs
        node = StepNode(
            name=self.name,
            kind=self.kind,
            target=self.target,
            arguments=arguments,
            outputs=self.outputs,
            code_version=self.code_version,
            version=self.version,
            retry=self.retry,
            cache=self.cache,
            after=self.after,
            files=self.files,
        )
        return add_node(node)


@overload
def step(fn: Callable[..., Any], /) -> StepDef: ...


@overload
def step(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    version: str | None = None,
    retry: RetryPolicy | Mapping[str, Any] | int | None = None,
    cache: CachePolicy | Mapping[str, Any] | bool | str | None = None,
    outputs: tuple[str, ...] | list[str] | None = None,
    files: tuple[str, ...] | list[str] = (),
) -> Callable[[Callable[..., Any]], StepDef]: ...


def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    version: str | None = None,
    retry: RetryPolicy | Mapping[str, Any] | int | None = None,
    cache: CachePolicy | Mapping[str, Any] | bool | str | None = None,
    outputs: tuple[str, ...] | list[str] | None = None,
    files: tuple[str, ...] | list[str] = (),
) -> StepDef | Callable[[Callable[..., Any]], StepDef]:
    """Make a function a pipeline step (`@step` or `@step(retry=3, cache="P7D", version="2")`).

    Arguments that receive another step's output are the step's inputs (read from the artifact store,
    hashed by content); every other argument is a parameter (canonical JSON). `outputs=("train",
    "test")` makes a step return a dict (or tuple) of several artifacts. `files=("path",)` names
    parameters holding file paths whose *content* hash, not the path, enters the cache key.
    """

    def wrap(f: Callable[..., Any]) -> StepDef:
        return StepDef(f, name=name, version=version, retry=retry, cache=cache, outputs=outputs, files=files)

    return wrap(fn) if fn is not None else wrap
