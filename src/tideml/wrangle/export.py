"""Export a fitted flow as a standalone Python script that needs only Polars.

The script embeds the runtime helpers (`tideml.wrangle.prelude`, verbatim) and the very step functions
`FittedFlow.transform` compiles, so its output equals the library's exactly. It runs the flow in inference
mode: training-only steps (balance, split) pass rows through, as in `transform(training=False)`.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import TYPE_CHECKING

import tideml
from tideml.wrangle import prelude
from tideml.wrangle.io import atomic_write_text
from tideml.wrangle.program import program_source
from tideml.wrangle.spec import CsvSource
from tideml.wrangle.transforms.custom import CustomPython

if TYPE_CHECKING:
    from tideml.wrangle.engine import FittedFlow

__all__ = ["export_script", "write_script"]

_HEADER = '''#!/usr/bin/env python3
"""Standalone transformation for the fitted flow {name!r}, exported by tideml {version}.

Flow sha256 {sha}.
Needs only Polars (no tideml). Applies the fitted flow in inference mode, exactly as
`FittedFlow.transform` does: training-only steps (balance, split) pass rows through.

    python {script} {inputs} --output-dir OUT [--run-time UNIX_SECONDS]

writes OUT/<output>.parquet for each output ({outputs}), all or nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import polars as pl

FLOW_NAME = {name!r}
SOURCES = {sources!r}
INPUT_SCHEMAS = {inputs_schema!r}
OUTPUTS = {outputs_map!r}
'''

_FOOTER = '''

STEPS = [{steps}]


class FlowError(ValueError):
    """A row broke one of the flow's rules (an unseen category, a value that does not cast, ...)."""


class Runtime:
    """The run's clock and the first error a row raised."""

    def __init__(self, run_time: float) -> None:
        self.run_time = run_time
        self.error: FlowError | None = None

    def fail(self, where: str, column: str | None, message: str, fix: str | None) -> None:
        text = f"flow {{FLOW_NAME!r}} {{where}}: " + (f"{{column}}: " if column else "") + message
        error = FlowError(text + (f" (fix: {{fix}})" if fix else ""))
        if self.error is None:
            self.error = error
        raise error


def read_source(name: str, path: str) -> pl.LazyFrame:
    """Scan a CSV or Parquet file with the fitted input types."""
    spec = SOURCES[name]
    if str(path).lower().endswith(".csv"):
        schema = {{c: DTYPES_POLARS[t] for c, t in INPUT_SCHEMAS[name].items()}}
        return pl.scan_csv(
            path,
            separator=spec.get("separator", ","),
            null_values=spec.get("null_values") or None,
            schema_overrides=schema,
            infer_schema_length=10000,
            empty_string_is_null=True,
        )
    return pl.scan_parquet(path)


def run(sources: Mapping[str, Any], run_time: float | None = None) -> tuple[dict[str, pl.LazyFrame], Runtime]:
    """Output name -> LazyFrame for source name -> DataFrame / LazyFrame."""
    rt = Runtime(time.time() if run_time is None else float(run_time))
    frames: dict[str, pl.LazyFrame] = {{}}
    for name, schema in INPUT_SCHEMAS.items():
        data = sources[name]
        frames[name] = conform(data.lazy() if isinstance(data, pl.DataFrame) else data, name, schema, rt)
    for step in STEPS:
        step(frames, rt)
    return {{output: frames[frame] for output, frame in OUTPUTS.items()}}, rt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=f"Apply the fitted flow {{FLOW_NAME!r}}.")
    parser.add_argument("--input", action="append", default=[], metavar="NAME=PATH", help="a source's file")
    parser.add_argument("--output-dir", required=True, help="folder for <output>.parquet")
    parser.add_argument("--run-time", type=float, default=None, help="the run's time, Unix seconds")
    args = parser.parse_args(argv)
    given = dict(item.split("=", 1) for item in args.input)
    if len(INPUT_SCHEMAS) == 1 and len(given) == 1 and next(iter(given)) not in INPUT_SCHEMAS:
        given = {{next(iter(INPUT_SCHEMAS)): next(iter(given.values()))}}
    missing = [name for name in INPUT_SCHEMAS if name not in given]
    if missing:
        parser.error(f"missing --input for {{', '.join(missing)}}")
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    temps = {{name: out_dir / f".{{name}}.parquet.tmp-{{uuid.uuid4().hex[:12]}}" for name in OUTPUTS}}
    rt = None
    try:
        outputs, rt = run({{name: read_source(name, given[name]) for name in INPUT_SCHEMAS}}, args.run_time)
        pl.collect_all(
            [outputs[name].sink_parquet(temps[name], lazy=True) for name in OUTPUTS], engine="streaming"
        )
    except Exception as exc:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)
        error = rt.error if rt is not None and rt.error is not None else exc
        print(f"error: {{error}}", file=sys.stderr)
        return 2
    for name, tmp in temps.items():
        os.replace(tmp, out_dir / f"{{name}}.parquet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


def _prelude_body() -> str:
    """The prelude's code after its imports and `__all__`, so the script's header supplies the imports."""
    lines = inspect.getsource(prelude).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("__all__ = ["))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("]"))
    return "\n".join(lines[end + 1 :]).strip() + "\n"


def export_script(fitted: FittedFlow, *, script_name: str = "flow.py") -> str:
    """The text of a standalone Polars script equivalent to `fitted.transform`."""
    sources = {}
    for name, spec in fitted.flow.sources.items():
        entry: dict[str, object] = {"kind": spec.kind}
        if isinstance(spec, CsvSource):
            entry.update(separator=spec.separator, null_values=list(spec.null_values))
        sources[name] = entry
    parts = [
        _HEADER.format(
            name=fitted.name,
            version=tideml.__version__,
            sha=fitted.flow.sha256,
            script=script_name,
            inputs=" ".join(f"--input {n}=PATH" for n in fitted.input_schemas),
            outputs=", ".join(fitted.outputs),
            sources=sources,
            inputs_schema={n: dict(s) for n, s in fitted.input_schemas.items()},
            outputs_map=dict(fitted.outputs),
        ),
        "\n# -- runtime helpers (tideml.wrangle.prelude, verbatim) " + "-" * 40 + "\n",
        _prelude_body(),
    ]
    custom = [s.op for s in fitted.steps if isinstance(s.op, CustomPython)]
    if custom:
        parts.append("\n# -- trusted custom code, as written in the flow " + "-" * 46 + "\n")
        for op in custom:
            parts.append(
                f"{op.name.upper()}_CODE = {op.params.code!r}\n"
                f"{op.name} = compile_custom("
                f"{op.name.upper()}_CODE, {op.params.function!r}, {op.ctx.where!r})\n"
            )
    parts.append("\n# -- the fitted steps " + "-" * 73 + "\n\n")
    parts.append(program_source(fitted.steps))
    parts.append(_FOOTER.format(steps=", ".join(f"step_{s.index}" for s in fitted.steps)))
    return "".join(parts)


def write_script(fitted: FittedFlow, path: str | os.PathLike[str]) -> Path:
    """Write the exported script atomically (executable)."""
    target = Path(path)
    atomic_write_text(target, export_script(fitted, script_name=target.name))
    target.chmod(0o755)
    return target
