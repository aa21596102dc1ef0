"""Reading hand-editable JSON files with errors that name the file, the line and the field.

`json` reports the line of a syntax error; schema errors come from pydantic as a field path
(`features.3.completeness`), which `line_of` maps back to the line where that value starts in the text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import pydantic

from tideml.errors import NotFound, ValidationError

__all__ = ["field_path", "line_of", "read_json", "validate_json"]

M = TypeVar("M", bound=pydantic.BaseModel)
Loc = Sequence[str | int]
_WS = " \t\r\n"


def read_json(path: Path, *, what: str, fix: str) -> tuple[Any, str]:
    """The parsed content and the text of a JSON file; syntax errors name the line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFound("no such file", obj=str(path), fix=fix) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read the {what}: {exc}", obj=str(path), fix=fix) from exc
    try:
        return json.loads(text), text
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"not valid JSON: {exc.msg} (column {exc.colno})",
            obj=str(path),
            field=f"line {exc.lineno}",
            fix=f"fix the JSON syntax of the {what} at that line",
        ) from None


def field_path(loc: Loc) -> str:
    """`features[3].completeness` from pydantic's `("features", 3, "completeness")`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate_json(model: type[M], data: Any, *, path: Path | str, text: str | None, what: str, fix: str) -> M:
    """`model.model_validate(data)`, with the first error naming file, line and field path."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        loc = [p for p in first["loc"] if isinstance(p, str | int)]
        # pydantic appends union/tag names to the location; keep the part that exists in the document
        line = line_of(text, loc) if text is not None else None
        where = f"{path}:{line}" if line is not None else str(path)
        message = f"{first['msg']} (got {_short(first.get('input'))})"
        if len(errors) > 1:
            second = errors[1]
            message += f"; {len(errors) - 1} more, e.g. {field_path(second['loc'])}: {second['msg']}"
        raise ValidationError(message, obj=where, field=field_path(loc), fix=fix) from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# -- locating a path in JSON text ----------------------------------------------------------------------
class _Found(Exception):
    def __init__(self, index: int) -> None:
        self.index = index


def line_of(text: str, loc: Loc) -> int | None:
    """Line (1-based) where the value at `loc` starts, or where its deepest existing parent starts."""
    target = list(loc)
    best = [0]

    def ws(i: int) -> int:
        while i < len(text) and text[i] in _WS:
            i += 1
        return i

    def string_end(i: int) -> int:  # i at the opening quote
        i += 1
        while i < len(text):
            ch = text[i]
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                return i + 1
            i += 1
        return i

    def value(i: int, path: list[str | int]) -> int:
        i = ws(i)
        if path == target[: len(path)]:
            best[0] = i
            if len(path) == len(target):
                raise _Found(i)
        if i >= len(text):
            return i
        ch = text[i]
        if ch == "{":
            i = ws(i + 1)
            if i < len(text) and text[i] == "}":
                return i + 1
            while i < len(text):
                i = ws(i)
                end = string_end(i)
                try:
                    key = json.loads(text[i:end])
                except json.JSONDecodeError:
                    return end
                i = ws(end)
                i = value(i + 1, [*path, str(key)])  # skip ':'
                i = ws(i)
                if i < len(text) and text[i] == ",":
                    i += 1
                    continue
                return i + 1
            return i
        if ch == "[":
            i = ws(i + 1)
            if i < len(text) and text[i] == "]":
                return i + 1
            index = 0
            while i < len(text):
                i = value(i, [*path, index])
                index += 1
                i = ws(i)
                if i < len(text) and text[i] == ",":
                    i += 1
                    continue
                return i + 1
            return i
        if ch == '"':
            return string_end(i)
        while i < len(text) and text[i] not in ",]}" + _WS:
            i += 1
        return i

    try:
        value(0, [])
    except _Found as found:
        return text.count("\n", 0, found.index) + 1
    except RecursionError:
        return None
    return text.count("\n", 0, best[0]) + 1 if target else 1


def json_safe(obj: Any) -> Any:
    """A copy JSON can hold: NaN → null, ±inf → "Infinity"/"-Infinity" (the managed files' spelling)."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "Infinity" if obj > 0 else "-Infinity"
        return obj
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj
