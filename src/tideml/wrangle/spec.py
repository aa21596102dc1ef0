"""The flow file: named sources, an ordered list of steps over named frames, and named outputs.

A flow is JSON (YAML accepted)::

    {
      "version": 1,
      "name": "claims",
      "sources": {"claims": {"kind": "csv"}},
      "steps": [
        {"op": "format_string", "mode": "lower"},
        {"op": "one_hot", "column": "incident_type", "on_unseen": "all_zero"}
      ],
      "outputs": {"claims": "claims"}
    }

Frames: every source is a frame of that name. A step reads `frame` (default: the frame the previous step
wrote; the first step reads the first source) and writes `into` (default: the frame it reads). Joins and
concatenations name their other frames. `outputs` maps output names to frames (default: the frame the
last step wrote, under its own name). Loading a malformed flow raises a ValidationError naming the step
index, the operator and the parameter.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pydantic
import yaml

from tideml.errors import NotFound, ValidationError
from tideml.wrangle.transforms import OPERATORS, StepParams
from tideml.wrangle.transforms.base import StepContext, StrictModel
from tideml.wrangle.types import DType

if TYPE_CHECKING:
    import polars as pl

    from tideml.wrangle.engine import FittedFlow
    from tideml.wrangle.io import SourceInput

__all__ = [
    "FLOW_VERSION",
    "CsvSource",
    "FeatureGroupSource",
    "Flow",
    "ParquetSource",
    "ResolvedStep",
    "Source",
]

FLOW_VERSION = 1


class CsvSource(StrictModel):
    """A CSV file with a header row. Nothing is read as null except empty fields and `null_values`."""

    kind: Literal["csv"]
    path: str | None = pydantic.Field(None, description="Default path (relative to the flow file).")
    separator: str = pydantic.Field(",", min_length=1, max_length=1)
    null_values: list[str] = pydantic.Field(default_factory=list, description="Extra texts read as null.")
    columns: dict[str, DType] | None = pydantic.Field(
        None, description="Declared input schema; default: inferred from the data at fit time."
    )


class ParquetSource(StrictModel):
    """A Parquet file (or a glob of files with one schema)."""

    kind: Literal["parquet"]
    path: str | None = None
    columns: dict[str, DType] | None = None


class FeatureGroupSource(StrictModel):
    """A feature group of the workspace's feature store, read through the service's resolver."""

    kind: Literal["feature_group"]
    name: str = pydantic.Field(min_length=1)
    version: int | None = pydantic.Field(None, ge=1)
    features: list[str] | None = pydantic.Field(None, min_length=1, description="Columns to read.")
    columns: dict[str, DType] | None = None


Source = Annotated[CsvSource | ParquetSource | FeatureGroupSource, pydantic.Field(discriminator="kind")]


class ResolvedStep(StrictModel):
    """A step with its frame names resolved."""

    index: int
    params: pydantic.SerializeAsAny[StepParams]
    frame: str
    into: str
    writes: list[str]


def _where(flow: str) -> str:
    return f"flow {flow!r}"


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _convert(exc: pydantic.ValidationError, obj: str, prefix: str = "") -> ValidationError:
    first = exc.errors()[0]
    loc = tuple(
        p for p in first["loc"] if not (isinstance(p, str) and p in ("csv", "parquet", "feature_group"))
    )
    field = prefix + ("." if prefix and loc else "") + _path(loc) if loc else (prefix or None)
    kind = first["type"]
    fixes = {
        "extra_forbidden": "remove the unknown key (check its spelling)",
        "missing": "add the required key",
        "literal_error": "use one of the allowed values",
        "union_tag_invalid": "use one of the allowed kinds",
    }
    message = first["msg"]
    if len(exc.errors()) > 1:
        message += f" (and {len(exc.errors()) - 1} more problem(s))"
    return ValidationError(message, obj=obj, field=field, fix=fixes.get(kind, "correct the value"))


def _parse_step(flow: str, index: int, raw: Any) -> StepParams:
    obj = f"{_where(flow)} steps[{index}]"
    if not isinstance(raw, Mapping):
        raise ValidationError("a step must be an object", obj=obj, fix='write {"op": …, …}')
    op = raw.get("op")
    if op not in OPERATORS:
        raise ValidationError(
            f"unknown operator {op!r}" if op is not None else "the step has no 'op'",
            obj=obj,
            field="op",
            fix=f"use one of {', '.join(sorted(OPERATORS))}",
        )
    model = OPERATORS[op].params_model
    try:
        return model.model_validate(dict(raw))
    except pydantic.ValidationError as exc:
        raise _convert(exc, f"{obj} ({op})") from None


class Flow(StrictModel):
    """A declarative data-preparation flow. Build it with `Flow.load`, `Flow.from_dict` or `Flow.loads`."""

    version: Literal[1] = 1
    name: str = pydantic.Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=128)
    description: str = ""
    sources: dict[str, Source] = pydantic.Field(min_length=1)
    steps: list[pydantic.SerializeAsAny[StepParams]] = pydantic.Field(default_factory=list)
    outputs: dict[str, str] = pydantic.Field(default_factory=dict)
    _base_dir: Path | None = pydantic.PrivateAttr(None)

    @pydantic.field_validator("steps", mode="before")
    @classmethod
    def _parse_steps(cls, steps: Any) -> Any:
        """Steps given as dicts (direct construction) are parsed by their operator's model."""
        if isinstance(steps, list):
            return [s if isinstance(s, StepParams) else _parse_step("?", i, s) for i, s in enumerate(steps)]
        return steps

    @property
    def base_dir(self) -> Path | None:
        """The folder of the file the flow was loaded from: relative source paths start there."""
        return self._base_dir

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any) -> Flow:
        """Validate a flow document; errors name the step index, the operator and the parameter."""
        if not isinstance(data, Mapping):
            raise ValidationError("a flow must be a JSON object", obj="flow", fix="see docs/wrangle.md")
        name = str(data.get("name", "?"))
        raw_steps = data.get("steps", [])
        if not isinstance(raw_steps, list):
            raise ValidationError(
                "'steps' must be a list", obj=_where(name), field="steps", fix='write "steps": [{"op": …}, …]'
            )
        steps = [_parse_step(name, i, raw) for i, raw in enumerate(raw_steps)]
        try:
            flow = cls.model_validate({**data, "steps": steps})
        except pydantic.ValidationError as exc:
            raise _convert(exc, _where(name)) from None
        flow.resolve()
        return flow

    @classmethod
    def loads(cls, text: str, *, format: Literal["json", "yaml"] = "json", origin: str = "flow") -> Flow:
        """Parse flow text (JSON, or YAML)."""
        try:
            data = json.loads(text) if format == "json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ValidationError(
                f"not valid {format.upper()}: {exc}", obj=origin, fix="fix the syntax of the flow file"
            ) from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Flow:
        """Read a flow file (`.json`, or `.yaml` / `.yml`)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFound(f"no flow file at {p}", obj="flow", fix="check the path") from None
        fmt: Literal["json", "yaml"] = "yaml" if p.suffix.lower() in (".yaml", ".yml") else "json"
        flow = cls.loads(text, format=fmt, origin=f"flow file {p}")
        flow._base_dir = p.resolve().parent
        return flow

    # -- serialisation -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The flow as a JSON-ready dict (defaults omitted inside steps, so it reads like the file)."""
        data = self.model_dump(mode="json", exclude={"steps"})
        data["steps"] = [
            step.model_dump(mode="json", exclude_defaults=True) | {"op": step.op} for step in self.steps
        ]
        return data

    def to_json(self, *, indent: int | None = 2) -> str:
        """The flow as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @property
    def sha256(self) -> str:
        """Content hash of the flow's canonical JSON (key order and whitespace do not matter)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the flow as JSON, atomically."""
        from tideml.wrangle.io import atomic_write_text

        return atomic_write_text(Path(path), self.to_json() + "\n")

    # -- structure ---------------------------------------------------------------------------------
    def resolve(self) -> list[ResolvedStep]:
        """Each step with its frame names filled in; fails on a frame no source or earlier step provides."""
        known = list(self.sources)
        current = known[0]
        resolved = []
        for index, step in enumerate(self.steps):
            op = OPERATORS[step.op]
            frame = step.frame or current
            into = step.into or frame
            operator = op(step, StepContext(self.name, index, step.op), frame, into)
            for name in operator.reads():
                if name not in known:
                    raise ValidationError(
                        f"unknown frame {name!r}: no source or earlier step provides it",
                        obj=f"{_where(self.name)} steps[{index}] ({step.op})",
                        field="frame",
                        fix=f"use one of {', '.join(known)}",
                    )
            for name in operator.writes():
                if name not in known:
                    known.append(name)
            current = operator.writes()[0]
            resolved.append(
                ResolvedStep(index=index, params=step, frame=frame, into=into, writes=operator.writes())
            )
        for output, frame in self.outputs.items():
            if frame not in known:
                raise ValidationError(
                    f"output {output!r} names the unknown frame {frame!r}",
                    obj=_where(self.name),
                    field=f"outputs.{output}",
                    fix=f"use one of {', '.join(known)}",
                )
        return resolved

    def output_frames(self) -> dict[str, str]:
        """Output name → frame (default: the last written frame under its own name)."""
        if self.outputs:
            return dict(self.outputs)
        steps = self.resolve()
        last = steps[-1].writes[0] if steps else next(iter(self.sources))
        return {last: last}

    @property
    def needs_trust(self) -> bool:
        """Whether the flow contains custom Python code."""
        return any(step.op == "python" for step in self.steps)

    # -- execution ---------------------------------------------------------------------------------
    def fit(
        self,
        sources: SourceInput | Mapping[str, SourceInput] | None = None,
        *,
        trust_custom_code: bool = False,
        run_time: float | None = None,
        progress: bool = False,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> FittedFlow:
        """Learn every step's state from the sources and return the fitted flow.

        `sources` maps source names to Polars / pandas frames or file paths (one value is enough for a
        single-source flow); a source left out is read from its `path`, relative to `base_dir` (default:
        the flow file's folder).
        """
        from tideml.wrangle.engine import fit_flow

        return fit_flow(
            self,
            sources,
            trust_custom_code=trust_custom_code,
            run_time=run_time,
            progress=progress,
            base_dir=base_dir if base_dir is not None else self._base_dir,
        )

    def fit_transform(
        self,
        sources: SourceInput | Mapping[str, SourceInput],
        *,
        trust_custom_code: bool = False,
        run_time: float | None = None,
    ) -> tuple[FittedFlow, dict[str, pl.DataFrame]]:
        """Fit, then transform the same sources in training mode (balance and split applied)."""
        fitted = self.fit(sources, trust_custom_code=trust_custom_code, run_time=run_time)
        return fitted, fitted.transform_all(sources, training=True, run_time=run_time)
