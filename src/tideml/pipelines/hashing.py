"""Deterministic hashing: canonical JSON, code versions of functions and the cache key of a step.

Nothing that varies between two runs of an unchanged pipeline may enter a hash: no timestamps, no run
ids, no temporary paths, no object ids. Code versions hash the *normalised* source (its AST without
docstrings, decorators, comments or formatting), so re-indenting a step or fixing a typo in its
docstring keeps its cache.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import enum
import hashlib
import inspect
import math
import textwrap
from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Any

import orjson
from pydantic import BaseModel

from tideml.artifacts import file_sha256
from tideml.errors import ValidationError

__all__ = [
    "CACHE_SALT",
    "JSONValue",
    "cache_key",
    "cache_key_material",
    "canonical_json",
    "code_version",
    "explain_cache_key",
    "file_sha256",
    "sha256_hex",
    "to_json_value",
]

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]
# Bumped whenever the composition of the key changes, so old entries can never be mistaken for new.
CACHE_SALT = "tideml.pipelines/cache-key/1"


def sha256_hex(data: bytes) -> str:
    """The hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def to_json_value(value: Any, *, where: str = "value") -> JSONValue:
    """Turn a parameter or small result into plain JSON, refusing anything without a stable form.

    Pydantic models and dataclasses become dicts, tuples become lists, paths become strings, enums their
    values and datetimes ISO strings. Sets (no order), NaN/inf floats (no JSON) and arbitrary objects
    (whose repr carries an id) are refused with the field path named.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise ValidationError(
                "integer outside the 64-bit range",
                obj="pipeline value",
                field=where,
                fix="pass very large integers as strings",
            )
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(
                f"{value!r} has no JSON form",
                obj="pipeline value",
                field=where,
                fix="use a finite number or None",
            )
        return float(value)
    if isinstance(value, BaseModel):
        return to_json_value(value.model_dump(mode="json"), where=where)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json_value({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, where=where)
    if isinstance(value, Mapping):
        out: dict[str, JSONValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(
                    f"key {key!r} is not a string",
                    obj="pipeline value",
                    field=where,
                    fix="use string keys in dicts passed as parameters or returned as JSON",
                )
            out[key] = to_json_value(item, where=f"{where}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [to_json_value(item, where=f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, enum.Enum):
        return to_json_value(value.value, where=where)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and getattr(value, "shape", None) == ():
        return to_json_value(item(), where=where)
    raise ValidationError(
        f"a {type(value).__name__} has no stable JSON form",
        obj="pipeline value",
        field=where,
        fix="pass JSON-able values (numbers, strings, lists, dicts, pydantic models) or a step output",
    )


def canonical_json(value: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, no whitespace, shortest float repr."""
    return orjson.dumps(to_json_value(value), option=orjson.OPT_SORT_KEYS)


class _Normalise(ast.NodeTransformer):
    """Drop what does not change behaviour: docstrings and decorators."""

    def _strip(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> ast.AST:
        node.decorator_list = []
        body = node.body
        first = body[0] if body else None
        if (
            isinstance(first, ast.Expr)
            and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
        self.generic_visit(node)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return self._strip(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        return self._strip(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        return self._strip(node)


def _unwrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    inner: Callable[..., Any] | None = getattr(fn, "fn", None)  # a StepDef
    return inner if callable(inner) else inspect.unwrap(fn)


def code_version(fn: Callable[..., Any], version: str | None = None) -> str:
    """The code version of a function: sha256 of its normalised source, or of an explicit `version`.

    An explicit version overrides the source (as Dagster's `code_version` does): bump it to force a
    re-run when something the source does not show changed, keep it to survive a refactor.
    """
    if version is not None:
        return sha256_hex(f"explicit:{version}".encode())
    target = _unwrap(fn)
    try:
        source = textwrap.dedent(inspect.getsource(target))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        code = getattr(target, "__code__", None)
        if code is None:
            raise ValidationError(
                "cannot read the source of this callable",
                obj=f"step function {getattr(target, '__qualname__', target)!r}",
                field="version",
                fix="give the step an explicit version='1' (bump it when the code changes)",
            ) from None
        # Bytecode is stable for one Python version; good enough for code typed into a REPL.
        return sha256_hex(b"bytecode:" + code.co_code + repr(code.co_consts).encode())
    normalised = _Normalise().visit(tree)
    return sha256_hex(ast.dump(normalised, annotate_fields=True, include_attributes=False).encode())


def cache_key_material(
    *,
    kind: str,
    code_version: str,
    parameters: Mapping[str, Any],
    inputs: Mapping[str, str],
    files: Mapping[str, str] | None = None,
    outputs: tuple[str, ...] = ("return",),
) -> dict[str, JSONValue]:
    """Everything a step's cache key is made of, as plain JSON (stored with each step run).

    `inputs` maps argument names to the content hashes of the artifacts they read (plus a selector, if
    the argument reads one field of a JSON output); `files` maps file-path parameters to the sha256 of
    the file's content, which replaces the path itself in `parameters`.
    """
    params = to_json_value(dict(parameters), where="parameters")
    assert isinstance(params, dict)
    for name in files or {}:
        params[name] = {"file_sha256": (files or {})[name]}
    return {
        "salt": CACHE_SALT,
        "kind": kind,
        "code_version": code_version,
        "parameters": params,
        "inputs": dict(sorted(inputs.items())),
        "outputs": list(outputs),
    }


def cache_key(material: Mapping[str, Any]) -> str:
    """The sha256 of the canonical JSON of a step's key material."""
    return sha256_hex(canonical_json(material))


def explain_cache_key(material: Mapping[str, Any]) -> str:
    """A readable account of what went into a cache key, one line per ingredient."""
    lines = [f"cache key {cache_key(material)}", f"  salt          {material.get('salt')}"]
    lines.append(f"  kind          {material.get('kind')}")
    lines.append(f"  code version  {material.get('code_version')}")
    params = material.get("parameters") or {}
    if params:
        lines.append("  parameters")
        for name, value in sorted(dict(params).items()):
            lines.append(f"    {name} = {orjson.dumps(value).decode()}")
    inputs = material.get("inputs") or {}
    if inputs:
        lines.append("  inputs (content hashes)")
        for name, digest in sorted(dict(inputs).items()):
            lines.append(f"    {name} <- {digest}")
    lines.append(f"  outputs       {', '.join(material.get('outputs') or [])}")
    return "\n".join(lines)
