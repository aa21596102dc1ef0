"""Fit a flow, and run a fitted flow on batches (Polars, lazy, streaming) and on single records.

`fit_flow` learns each step's state in order, each step fitted on the output of the steps before it.
`FittedFlow` holds the flow, the input schemas and the states; it is plain JSON on disk. When it is built
(by fitting or loading) it validates every state against the schemas, compiles the batch program once
(`tideml.wrangle.program`) and precomputes one plain-Python closure per step for `transform_record`,
which touches no frame machinery.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, Literal, cast

import polars as pl
import pydantic

import tideml
from tideml._progress import progress_bar
from tideml.errors import NotFound, TideError, ValidationError
from tideml.wrangle.io import SourceInput, atomic_outputs, atomic_write_text, infer_schema, scan_source
from tideml.wrangle.prelude import TypeMismatch, conform
from tideml.wrangle.program import FittedStep, compile_program
from tideml.wrangle.spec import Flow
from tideml.wrangle.transforms import OPERATORS, Runtime, StepContext
from tideml.wrangle.transforms.base import Env, EnvFn, StrictModel
from tideml.wrangle.types import DType, Schema, python_type_name, value_coercer

__all__ = ["FITTED_FORMAT", "FittedFlow", "fit_flow"]

FITTED_FORMAT = "tideml.fitted-flow"
FITTED_VERSION = 1


def _require_trust(flow: Flow, trust_custom_code: bool) -> None:
    if trust_custom_code:
        return
    for index, step in enumerate(flow.steps):
        if step.op == "python":
            raise ValidationError(
                "the flow runs custom Python code, which is refused unless you trust the flow",
                obj=f"flow {flow.name!r} steps[{index}] (python)",
                field="code",
                fix="review the code, then pass trust_custom_code=True (CLI: --trust-custom-code)",
            )


def _bind(flow: Flow, sources: SourceInput | Mapping[str, SourceInput] | None) -> dict[str, SourceInput]:
    names = list(flow.sources)
    if sources is None:
        return {}
    if isinstance(sources, Mapping):
        unknown = [k for k in sources if k not in flow.sources]
        if unknown:
            raise ValidationError(
                f"no source named {unknown[0]!r}",
                obj=f"flow {flow.name!r}",
                fix=f"sources are {', '.join(names)}",
            )
        return dict(sources)
    if len(names) != 1:
        raise ValidationError(
            f"the flow has {len(names)} sources; pass a mapping of source name to data",
            obj=f"flow {flow.name!r}",
            fix=f"e.g. {{{', '.join(repr(n) + ': …' for n in names)}}}",
        )
    return {names[0]: sources}


def _guarded(rt: Runtime, run: Callable[[], Any]) -> Any:
    """Run a Polars computation; a rule a row broke, or a Polars error, becomes one ValidationError."""
    try:
        return run()
    except TideError:
        if rt.error is not None:
            raise rt.error from None
        raise
    except Exception as exc:
        if rt.error is not None:
            raise rt.error from None
        if isinstance(exc, pl.exceptions.PolarsError):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValidationError(
                f"the batch failed: {first}",
                obj=f"flow {rt.flow!r}",
                fix="check the input data against the flow's input schema",
            ) from None
        raise


def _operator(flow: Flow, index: int, frame: str, into: str) -> Any:
    step = flow.steps[index]
    return OPERATORS[step.op](step, StepContext(flow.name, index, step.op), frame, into)


def fit_flow(
    flow: Flow,
    sources: SourceInput | Mapping[str, SourceInput] | None,
    *,
    trust_custom_code: bool = False,
    run_time: float | None = None,
    progress: bool = False,
    base_dir: str | os.PathLike[str] | None = None,
) -> FittedFlow:
    """Learn every step's state; each step is fitted on what the previous steps produce (in training mode)."""
    _require_trust(flow, trust_custom_code)
    bound = _bind(flow, sources)
    rt = Runtime(flow.name, time.time() if run_time is None else run_time, training=True)
    frames: dict[str, pl.LazyFrame] = {}
    inputs: dict[str, Schema] = {}
    for name, spec in flow.sources.items():
        lf = scan_source(flow.name, name, spec, bound.get(name), spec.columns, base_dir)
        inputs[name] = infer_schema(flow.name, name, lf, spec.columns)
        frames[name] = conform(lf, name, cast(dict[str, str], inputs[name]), rt)
    schemas: dict[str, Schema] = dict(inputs)
    states: list[StrictModel] = []
    resolved = flow.resolve()
    with progress_bar(f"Fitting {flow.name}", total=len(resolved), enabled=progress) as bar:
        for step in resolved:
            op = _operator(flow, step.index, step.frame, step.into)
            state = _guarded(rt, partial(op.fit, frames, schemas))
            outs = op.output_schemas(schemas, state)
            fitted = FittedStep(op, state, dict(schemas))
            if op.training_only:
                collected = _guarded(rt, partial(pl.collect_all, [frames[f] for f in op.reads()]))
                eager = dict(zip(op.reads(), collected, strict=True))
                result = op.apply_training(eager, schemas, state, rt)
                frames.update({k: v.lazy() for k, v in result.items()})
            else:
                function = compile_program(flow.name, [fitted])[step.index]
                _guarded(rt, partial(function, frames, rt))
            schemas.update(outs)
            states.append(state)
            bar.advance()
    return FittedFlow(flow, inputs, states, trust_custom_code=trust_custom_code)


def _schema_pairs(schema: Schema) -> list[list[str]]:
    return [[k, v] for k, v in schema.items()]


def _schema_from_pairs(pairs: Any, where: str) -> Schema:
    adapter = pydantic.TypeAdapter(list[tuple[str, DType]])
    try:
        return dict(adapter.validate_python(pairs))
    except pydantic.ValidationError as exc:
        raise ValidationError(
            f"malformed schema: {exc.errors()[0]['msg']}",
            obj="fitted flow",
            field=where,
            fix="refit the flow",
        ) from None


class FittedFlow:
    """A fitted flow: apply it to batches (`transform`) and to one record (`transform_record`)."""

    def __init__(
        self,
        flow: Flow,
        input_schemas: Mapping[str, Schema],
        states: list[StrictModel],
        *,
        trust_custom_code: bool = False,
    ) -> None:
        _require_trust(flow, trust_custom_code)
        if len(states) != len(flow.steps):
            raise ValidationError(
                f"{len(states)} fitted states for {len(flow.steps)} steps",
                obj="fitted flow",
                fix="refit the flow",
            )
        self.flow = flow
        self.input_schemas: dict[str, Schema] = {k: dict(v) for k, v in input_schemas.items()}
        self._trust = trust_custom_code
        self.steps: list[FittedStep] = []
        schemas: dict[str, Schema] = {k: dict(v) for k, v in self.input_schemas.items()}
        for step, state in zip(flow.resolve(), states, strict=True):
            op = _operator(flow, step.index, step.frame, step.into)
            if not isinstance(state, op.state_model):
                state = _load_state(op, state)
            outs = op.output_schemas(schemas, state)
            self.steps.append(FittedStep(op, state, dict(schemas)))
            schemas.update(outs)
        self.frame_schemas = schemas
        self.outputs = flow.output_frames()
        self._program = compile_program(flow.name, self.steps)
        self._record_steps: list[EnvFn] = [s.op.record(s.schemas, s.state) for s in self.steps]
        self._coercers = {
            name: [(column, value_coercer(dtype), dtype) for column, dtype in schema.items()]
            for name, schema in self.input_schemas.items()
        }
        self._single_source = next(iter(flow.sources)) if len(flow.sources) == 1 else None

    # -- description -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The flow's name."""
        return self.flow.name

    def output_schema(self, output: str | None = None) -> Schema:
        """The columns and types of an output (default: the flow's only, or first, output)."""
        return dict(self.frame_schemas[self.outputs[self._output(output)]])

    @property
    def output_names(self) -> list[str]:
        """The flow's outputs, in order."""
        return list(self.outputs)

    def _output(self, output: str | None) -> str:
        if output is None:
            return next(iter(self.outputs))
        if output not in self.outputs:
            raise NotFound(
                f"no output named {output!r}",
                obj=f"flow {self.name!r}",
                fix=f"outputs are {', '.join(self.outputs)}",
            )
        return output

    # -- persistence -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fitted flow as a JSON-ready dict (portable: no pickles, no library objects)."""
        return {
            "format": FITTED_FORMAT,
            "version": FITTED_VERSION,
            "tideml_version": tideml.__version__,
            "flow": self.flow.to_dict(),
            "flow_sha256": self.flow.sha256,
            "inputs": {name: _schema_pairs(schema) for name, schema in self.input_schemas.items()},
            "states": [
                {"step": s.index, "op": s.op.op, "state": s.state.model_dump(mode="json")} for s in self.steps
            ],
            "outputs": {name: _schema_pairs(self.output_schema(name)) for name in self.outputs},
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """The fitted flow as JSON text (strict JSON: no NaN or infinities)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted flow as JSON, atomically."""
        return atomic_write_text(Path(path), self.to_json() + "\n")

    @classmethod
    def from_dict(cls, data: Any, *, trust_custom_code: bool = False) -> FittedFlow:
        """Rebuild a fitted flow from its dict; every state is validated against its step."""
        if not isinstance(data, Mapping) or data.get("format") != FITTED_FORMAT:
            raise ValidationError(
                "not a fitted flow",
                obj="fitted flow",
                field="format",
                fix="pass a file written by FittedFlow.save",
            )
        if data.get("version") != FITTED_VERSION:
            raise ValidationError(
                f"unsupported fitted-flow version {data.get('version')!r}", obj="fitted flow", field="version"
            )
        flow = Flow.from_dict(data.get("flow"))
        if data.get("flow_sha256") not in (None, flow.sha256):
            raise ValidationError(
                "the embedded flow does not match its recorded hash",
                obj="fitted flow",
                field="flow_sha256",
                fix="the file was edited; refit the flow",
            )
        inputs_raw = data.get("inputs")
        if not isinstance(inputs_raw, Mapping) or set(inputs_raw) != set(flow.sources):
            raise ValidationError(
                "input schemas do not match the flow's sources", obj="fitted flow", field="inputs"
            )
        inputs = {name: _schema_from_pairs(inputs_raw[name], f"inputs.{name}") for name in flow.sources}
        raw_states = data.get("states")
        if not isinstance(raw_states, list) or len(raw_states) != len(flow.steps):
            raise ValidationError("one state per step is expected", obj="fitted flow", field="states")
        states: list[Any] = []
        for i, (raw, step) in enumerate(zip(raw_states, flow.steps, strict=True)):
            if not isinstance(raw, Mapping) or raw.get("op") != step.op:
                raise ValidationError(
                    f"state {i} is not for operator {step.op!r}", obj="fitted flow", field=f"states[{i}]"
                )
            states.append(raw.get("state", {}))
        # No fit timestamp in the file (lineage records when): the same fit is the same artifact.
        fitted = cls(flow, inputs, states, trust_custom_code=trust_custom_code)
        recorded = data.get("outputs")
        if isinstance(recorded, Mapping):
            for name, pairs in recorded.items():
                if name in fitted.outputs and _schema_from_pairs(
                    pairs, f"outputs.{name}"
                ) != fitted.output_schema(name):
                    raise ValidationError(
                        "the recorded output schema differs from the one the states produce",
                        obj="fitted flow",
                        field=f"outputs.{name}",
                        fix="the file was edited or written by an incompatible version; refit the flow",
                    )
        return fitted

    @classmethod
    def from_json(cls, text: str, *, trust_custom_code: bool = False) -> FittedFlow:
        """Parse a fitted flow's JSON text."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"not valid JSON: {exc}", obj="fitted flow") from None
        return cls.from_dict(data, trust_custom_code=trust_custom_code)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, trust_custom_code: bool = False) -> FittedFlow:
        """Read a fitted flow written by `save`."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFound(f"no fitted flow at {path}", obj="fitted flow", fix="check the path") from None
        return cls.from_json(text, trust_custom_code=trust_custom_code)

    # -- batch path --------------------------------------------------------------------------------
    def _runtime(self, run_time: float | dt.datetime | None, training: bool) -> Runtime:
        if isinstance(run_time, dt.datetime):
            run_time = run_time.timestamp()
        return Runtime(self.name, time.time() if run_time is None else float(run_time), training=training)

    def _plan(
        self,
        sources: SourceInput | Mapping[str, SourceInput] | None,
        rt: Runtime,
        base_dir: str | os.PathLike[str] | None,
    ) -> dict[str, pl.LazyFrame]:
        bound = _bind(self.flow, sources)
        base_dir = base_dir if base_dir is not None else self.flow.base_dir
        frames: dict[str, pl.LazyFrame] = {}
        for name, spec in self.flow.sources.items():
            schema = self.input_schemas[name]
            lf = scan_source(self.name, name, spec, bound.get(name), schema, base_dir)
            frames[name] = conform(lf, name, cast(dict[str, str], schema), rt)
        for step in self.steps:
            if step.op.training_only and rt.training:
                collected = _guarded(rt, partial(pl.collect_all, [frames[f] for f in step.op.reads()]))
                eager = dict(zip(step.op.reads(), collected, strict=True))
                result = step.op.apply_training(eager, step.schemas, step.state, rt)
                frames.update({k: v.lazy() for k, v in result.items()})
            else:
                self._program[step.index](frames, rt)
        return frames

    def transform_lazy(
        self,
        sources: SourceInput | Mapping[str, SourceInput] | None = None,
        *,
        training: bool = False,
        run_time: float | dt.datetime | None = None,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> dict[str, pl.LazyFrame]:
        """Output name → LazyFrame (errors raised while collecting are Polars errors; prefer `transform`)."""
        rt = self._runtime(run_time, training)
        frames = _guarded(rt, lambda: self._plan(sources, rt, base_dir))
        return {name: frames[frame] for name, frame in self.outputs.items()}

    def transform_all(
        self,
        sources: SourceInput | Mapping[str, SourceInput] | None = None,
        *,
        training: bool = False,
        run_time: float | dt.datetime | None = None,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> dict[str, pl.DataFrame]:
        """Every output, collected. `training=True` applies balance and split; else they pass rows through."""
        rt = self._runtime(run_time, training)

        def run() -> dict[str, pl.DataFrame]:
            frames = self._plan(sources, rt, base_dir)
            names = list(self.outputs)
            collected = pl.collect_all([frames[self.outputs[n]] for n in names])
            return dict(zip(names, collected, strict=True))

        return cast(dict[str, pl.DataFrame], _guarded(rt, run))

    def transform(
        self,
        sources: SourceInput | Mapping[str, SourceInput] | None = None,
        *,
        output: str | None = None,
        training: bool = False,
        run_time: float | dt.datetime | None = None,
        base_dir: str | os.PathLike[str] | None = None,
    ) -> pl.DataFrame:
        """One output (default: the only or first one) as a DataFrame."""
        name = self._output(output)
        return self.transform_all(sources, training=training, run_time=run_time, base_dir=base_dir)[name]

    def sink(
        self,
        sources: SourceInput | Mapping[str, SourceInput] | None,
        targets: Mapping[str, str | os.PathLike[str]],
        *,
        training: bool = False,
        run_time: float | dt.datetime | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        compression: Literal["zstd", "snappy", "lz4", "uncompressed"] = "zstd",
        compression_level: int | None = 1,
    ) -> dict[str, Path]:
        """Stream outputs to Parquet files (bounded memory where the plan allows) and rename them into place.

        Nothing is written unless every output succeeds. `targets` maps output names to file paths.
        zstd level 1 (the default) writes about as small as level 3 and much faster.
        """
        for name in targets:
            self._output(name)
        rt = self._runtime(run_time, training)
        paths = {name: Path(p) for name, p in targets.items()}
        with atomic_outputs(paths) as temps:

            def run() -> None:
                frames = self._plan(sources, rt, base_dir)
                sinks = [
                    frames[self.outputs[name]].sink_parquet(
                        temps[name],
                        compression=compression,
                        compression_level=compression_level if compression == "zstd" else None,
                        lazy=True,
                    )
                    for name in paths
                ]
                pl.collect_all(sinks, engine="streaming")

            _guarded(rt, run)
        return paths

    # -- record path -------------------------------------------------------------------------------
    def transform_record(
        self,
        record: Mapping[str, Any],
        *,
        output: str | None = None,
        run_time: float | None = None,
    ) -> dict[str, Any] | None:
        """One record through the fitted flow, in plain Python; equals the batch output row for it.

        For a single-source flow `record` is the row (a dict of column values; extra keys are ignored).
        For several sources it maps source names to rows (a missing or None row is an empty frame).
        Returns the output row, or None when the flow drops the record. Training-only steps (balance,
        split) pass the record through.
        """
        rt = Runtime(self.name, time.time() if run_time is None else run_time)
        env: Env = {}
        if self._single_source is not None:
            self._coerce(self._single_source, record, env)
        else:
            for key in record:
                if key not in self.input_schemas:
                    raise ValidationError(
                        f"no source named {key!r}",
                        obj=f"flow {self.name!r}",
                        fix="key the record by source name",
                    )
            for name in self.input_schemas:
                self._coerce(name, record.get(name), env)
        for step in self._record_steps:
            step(env, rt)
        frame = self.outputs[self._output(output)]
        row = env.get(frame)
        if row is None:
            return None
        return {column: row[column] for column in self.frame_schemas[frame]}

    def _coerce(self, source: str, record: Any, env: Env) -> None:
        if record is None:
            env[source] = None
            return
        if not isinstance(record, Mapping):
            raise ValidationError(
                f"a record must be a mapping of column to value, not {type(record).__name__}",
                obj=f"flow {self.name!r} source {source!r}",
            )
        row: dict[str, Any] = {}
        for column, coerce, dtype in self._coercers[source]:
            try:
                value = record[column]
            except KeyError:
                raise ValidationError(
                    "unknown column: the record lacks it",
                    obj=f"flow {self.name!r} source {source!r}",
                    field=column,
                    fix="send every input column (null where unknown)",
                ) from None
            try:
                row[column] = coerce(value)
            except TypeMismatch:
                raise ValidationError(
                    f"wrong type: expected {dtype}, got {python_type_name(value)} {value!r:.60}",
                    obj=f"flow {self.name!r} source {source!r}",
                    field=column,
                    fix=f"send a {dtype} value (or null)",
                ) from None
        env[source] = row

    # -- export ------------------------------------------------------------------------------------
    def export_script(self) -> str:
        """A standalone Python script (Polars only) whose output equals `transform` on the same input."""
        from tideml.wrangle.export import export_script

        return export_script(self)

    def __repr__(self) -> str:
        return f"FittedFlow({self.name!r}, steps={len(self.steps)}, outputs={list(self.outputs)})"


def _load_state(op: Any, raw: Any) -> StrictModel:
    try:
        return cast(StrictModel, op.state_model.model_validate(raw))
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise ValidationError(
            f"malformed fitted state: {first['msg']}",
            obj=f"fitted flow {op.ctx.flow!r} {op.ctx.where}",
            field=".".join(str(p) for p in first["loc"]) or None,
            fix="refit the flow",
        ) from None
