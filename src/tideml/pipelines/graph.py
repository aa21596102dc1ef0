"""The pipeline graph: steps (nodes), references to their outputs, and the DAG they form.

Edges are inferred from data: an argument that holds another step's `OutputRef` depends on that step.
Steps inside a condition's branch also depend on the condition, and `after=` adds ordering edges for
steps that share no data. Everything here is plain data, serialisable to JSON; nothing runs.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from tideml.errors import ValidationError
from tideml.pipelines.hashing import JSONValue, canonical_json, sha256_hex, to_json_value
from tideml.pipelines.params import ParamRef
from tideml.pipelines.policies import CachePolicy, RetryPolicy

__all__ = [
    "GraphBuilder",
    "OutputRef",
    "PipelineGraph",
    "StepHandle",
    "StepNode",
    "TargetRef",
    "current_builder",
    "iter_refs",
    "replace_refs",
]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")
ReadAs = Literal["value", "sha256", "path"]


@dataclass(frozen=True)
class OutputRef:
    """A reference to one output of a step, optionally to a field inside it (JSON outputs).

    `read_as` says what the consuming step receives: the decoded value (default), the artifact's
    `sha256` (to hand to a service, e.g. a model to register), or a local `path` to the stored file.
    """

    step: str
    output: str = "return"
    select: tuple[str, ...] = ()
    read_as: ReadAs = "value"

    def __getitem__(self, key: str) -> OutputRef:
        """A field of this JSON output (`evaluation["test_auc"]`)."""
        return OutputRef(self.step, self.output, (*self.select, str(key)), self.read_as)

    @property
    def sha256(self) -> OutputRef:
        """Pass the artifact's content hash instead of its value."""
        return self._as("sha256")

    @property
    def path(self) -> OutputRef:
        """Pass a local path to the stored artifact instead of its value."""
        return self._as("path")

    def _as(self, read_as: ReadAs) -> OutputRef:
        if self.select:
            raise ValidationError(
                "a field of an output has no artifact of its own",
                obj=f"step {self.step}",
                field=".".join(self.select),
                fix="take .sha256 / .path of the whole output, not of a field",
            )
        return OutputRef(self.step, self.output, (), read_as)

    def describe(self) -> str:
        """`step.output[field]…@mode`, as shown in definitions and cache keys."""
        text = self.step if self.output == "return" else f"{self.step}.{self.output}"
        text += "".join(f"[{k}]" for k in self.select)
        return text if self.read_as == "value" else f"{text}@{self.read_as}"

    def to_json(self) -> dict[str, JSONValue]:
        return {"step": self.step, "output": self.output, "select": list(self.select), "as": self.read_as}


class StepHandle(OutputRef):
    """What calling a step inside a pipeline returns: a reference to its output(s)."""

    _outputs: tuple[str, ...]

    def __init__(self, step: str, outputs: tuple[str, ...]) -> None:
        super().__init__(step, "return" if outputs == ("return",) else "*")
        object.__setattr__(self, "_outputs", outputs)

    def __getitem__(self, key: str) -> OutputRef:
        """A named output of a multi-output step, or a field of a single JSON output."""
        if self._outputs != ("return",):
            if key not in self._outputs:
                raise ValidationError(
                    f"step has no output {key!r}",
                    obj=f"step {self.step}",
                    field="outputs",
                    fix=f"use one of {', '.join(self._outputs)}",
                )
            return OutputRef(self.step, key)
        return super().__getitem__(key)

    @property
    def name(self) -> str:
        return self.step


@dataclass(frozen=True)
class TargetRef:
    """Where a step's function lives, so any worker process can import it."""

    module: str
    qualname: str
    file: str | None = None

    @property
    def dotted(self) -> str:
        """`module:qualname`; a file loaded by path shows as `stem.py:qualname` (same on any machine)."""
        if self.module.startswith("_tide_file_"):
            return f"{self.module.split('_', 4)[-1]}.py:{self.qualname}"
        return f"{self.module}:{self.qualname}"


@dataclass
class StepNode:
    """One step of a pipeline with its resolved-at-definition arguments and policies."""

    name: str
    kind: str
    target: TargetRef
    arguments: dict[str, Any]
    outputs: tuple[str, ...] = ("return",)
    code_version: str | None = None
    version: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    cache: CachePolicy = field(default_factory=CachePolicy)
    after: tuple[str, ...] = ()
    guards: tuple[tuple[str, bool], ...] = ()
    files: tuple[str, ...] = ()
    in_driver: bool = False
    templates: bool = False
    service: str | None = None

    def upstream(self) -> list[str]:
        """Names of the steps this one waits for (data, branch conditions, explicit `after`)."""
        names = [ref.step for _, ref in iter_refs(self.arguments)]
        names += [g for g, _ in self.guards]
        names += list(self.after)
        return list(dict.fromkeys(names))

    def to_json(self) -> dict[str, JSONValue]:
        def encode(value: Any) -> Any:
            if isinstance(value, OutputRef):
                return {"$output": value.to_json()}
            if isinstance(value, ParamRef):
                return {"$param": value.name}
            if isinstance(value, dict):
                return {k: encode(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [encode(v) for v in value]
            return value

        return {
            "name": self.name,
            "kind": self.kind,
            "function": self.target.dotted,
            "service": self.service,
            "code_version": self.code_version,
            "version": self.version,
            "arguments": to_json_value(encode(self.arguments), where=f"step {self.name}"),
            "outputs": list(self.outputs),
            "upstream": list(self.upstream()),
            "branch": [{"condition": g, "when": w} for g, w in self.guards],
            "retry": to_json_value(self.retry.model_dump(mode="json")),
            "cache": to_json_value(self.cache.model_dump(mode="json")),
            "files": list(self.files),
        }


def iter_refs(value: Any, where: str = "") -> Iterator[tuple[str, OutputRef]]:
    """Every OutputRef inside an argument tree, with its location (`data`, `evidence.bias`, `m[1]`)."""
    if isinstance(value, OutputRef):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from iter_refs(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from iter_refs(v, f"{where}[{i}]")


def replace_refs(value: Any, fn: Any, where: str = "") -> Any:
    """A copy of an argument tree with each OutputRef replaced by `fn(location, ref)`."""
    if isinstance(value, OutputRef):
        return fn(where, value)
    if isinstance(value, dict):
        return {k: replace_refs(v, fn, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [replace_refs(v, fn, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


class PipelineGraph:
    """The DAG of a pipeline's steps, in definition order (which is a topological order)."""

    def __init__(self, nodes: list[StepNode]) -> None:
        self.nodes: dict[str, StepNode] = {}
        for node in nodes:
            self.nodes[node.name] = node
        self.downstream: dict[str, list[str]] = {n: [] for n in self.nodes}
        for node in nodes:
            for up in node.upstream():
                self.downstream[up].append(node.name)

    def __iter__(self) -> Iterator[StepNode]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> StepNode:
        if name not in self.nodes:
            raise ValidationError(
                "no such step",
                obj=f"step {name}",
                fix=f"steps are: {', '.join(self.nodes)}",
            )
        return self.nodes[name]

    def edges(self) -> list[tuple[str, str]]:
        return [(up, n.name) for n in self for up in n.upstream()]

    def descendants(self, names: list[str]) -> set[str]:
        """The named steps and everything downstream of them."""
        seen: set[str] = set()
        stack = [self.node(n).name for n in names]
        while stack:
            cur = stack.pop()
            if cur not in seen:
                seen.add(cur)
                stack.extend(self.downstream[cur])
        return seen

    def ancestors(self, names: set[str]) -> set[str]:
        """Everything upstream of the named steps (not including them)."""
        seen: set[str] = set()
        stack = [up for n in names for up in self.node(n).upstream()]
        while stack:
            cur = stack.pop()
            if cur not in seen:
                seen.add(cur)
                stack.extend(self.nodes[cur].upstream())
        return seen

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "steps": [n.to_json() for n in self],
            "edges": [[a, b] for a, b in self.edges()],
        }

    def sha256(self) -> str:
        return sha256_hex(canonical_json(self.to_json()))


class GraphBuilder:
    """Collects the steps called while a pipeline function runs in definition mode."""

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.nodes: list[StepNode] = []
        self.names: set[str] = set()
        self.guards: list[tuple[str, bool]] = []

    def add(self, node: StepNode) -> None:
        if not _NAME.match(node.name):
            raise ValidationError(
                f"{node.name!r} is not a valid step name",
                obj=f"pipeline {self.pipeline}",
                field="name",
                fix="use letters, digits, '_', '-' or '.', starting with a letter (at most 100)",
            )
        if node.name in self.names:
            raise ValidationError(
                "two steps share this name",
                obj=f"pipeline {self.pipeline}",
                field=f"step {node.name}",
                fix=f"name the second call, e.g. {node.name}.with_options(name='{node.name}_2')(...)",
            )
        for up in node.upstream():
            if up not in self.names:
                raise ValidationError(
                    f"depends on {up!r}, which is not a step of this pipeline",
                    obj=f"pipeline {self.pipeline}",
                    field=f"step {node.name}",
                    fix="pass outputs of steps called earlier in the same pipeline function",
                )
        node.guards = (*node.guards, *self.guards)
        self.nodes.append(node)
        self.names.add(node.name)


_BUILDER: contextvars.ContextVar[GraphBuilder | None] = contextvars.ContextVar("tide_builder", default=None)


def current_builder() -> GraphBuilder | None:
    """The builder of the pipeline being defined in this context, if any."""
    return _BUILDER.get()


def set_builder(builder: GraphBuilder | None) -> contextvars.Token[GraphBuilder | None]:
    """Make `builder` current (returns the token to reset it)."""
    return _BUILDER.set(builder)


def reset_builder(token: contextvars.Token[GraphBuilder | None]) -> None:
    _BUILDER.reset(token)
