"""`tide wrangle run | analyze | export | show`: processing jobs, analyses and script export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tideml.cli._app import JsonOption, WorkspaceOption, app, console, emit_json, open_workspace
from tideml.errors import NotFound, ValidationError

wrangle_app = typer.Typer(
    help="Data wrangling: run flows, analyse tables, export fitted flows.", no_args_is_help=True
)


def _parse_inputs(items: list[str]) -> dict[str, str]:
    inputs: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValidationError(
                f"{item!r} is not NAME=PATH",
                obj="tide wrangle run",
                field="--input",
                fix="e.g. --input claims=claims.csv",
            )
        inputs[name] = path
    return inputs


@wrangle_app.command("run")
def run(
    flow: Annotated[Path, typer.Argument(help="Flow file (.json or .yaml).")],
    input: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="NAME=PATH for a source (repeatable).")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for <output>.parquet.")] = Path(
        "wrangle-output"
    ),
    fitted: Annotated[
        str | None,
        typer.Option("--fitted", help="Apply this fitted flow (path or sha256:…) instead of fitting."),
    ] = None,
    training: Annotated[
        bool | None,
        typer.Option(
            "--training/--inference",
            help="Apply balance/split steps (default: --training when fitting, --inference with --fitted).",
        ),
    ] = None,
    save_fitted: Annotated[
        Path | None, typer.Option("--save-fitted", help="Also write the fitted flow JSON here.")
    ] = None,
    trust_custom_code: Annotated[
        bool, typer.Option("--trust-custom-code", help="Allow the flow's custom Python steps to run.")
    ] = False,
    run_time: Annotated[
        float | None, typer.Option("--run-time", help="The run's time for event_time (Unix seconds).")
    ] = None,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Fit a flow (or load a fitted one), write its outputs as Parquet and record lineage."""

    inputs = _parse_inputs(input or [])
    with open_workspace(workspace) as ws:
        result = ws.wrangle.run(
            flow,
            inputs,
            output,
            fitted=fitted,
            training=training,
            trust_custom_code=trust_custom_code,
            run_time=run_time,
            progress=not json,
        )
    if save_fitted is not None:
        result.fitted.save(save_fitted)
    if json:
        emit_json(result.to_dict())
        return
    verb = "fitted and applied" if result.fitted_here else "applied"
    console.print(
        f"{verb} flow [bold]{result.flow}[/] ({'training' if result.training else 'inference'} mode)"
    )
    console.print(f"  fitted flow  sha256:{result.fitted_sha256}", soft_wrap=True)
    table = Table("output", "rows", "columns", "file")
    for out in result.outputs.values():
        table.add_row(out.name, f"{out.rows:,}", str(len(out.columns)), str(out.path))
    console.print(table)


@wrangle_app.command("analyze")
def analyze_command(
    data: Annotated[Path, typer.Argument(help="CSV or Parquet table.")],
    target: Annotated[str | None, typer.Option("--target", "-t", help="The label column.")] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for analysis.json and analysis.html.")
    ] = Path("analysis"),
    seed: Annotated[int, typer.Option(help="Seed for sampling and models.")] = 0,
    record: Annotated[
        bool,
        typer.Option("--record/--no-record", help="Store the report and record lineage in the workspace."),
    ] = True,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Profile a table: summary, histograms, class balance, correlations, VIF, leakage, quick model."""
    from tideml.wrangle.analyses import analyze, read_table

    ws = None
    if record:
        try:
            ws = open_workspace(workspace)
        except NotFound:
            if workspace is not None:
                raise
    if ws is not None:
        with ws:
            report, written = ws.wrangle.analyze(
                data, target=target, out_dir=out, seed=seed, progress=not json
            )
    else:
        report = analyze(read_table(data), target=target, seed=seed, progress=not json, title=data.name)
        written = report.save(out)
    if json:
        emit_json({"report": report.to_dict(), "files": {k: str(v) for k, v in written.items()}})
        return
    console.print(f"analysed {report.rows:,} rows x {report.columns} columns of [bold]{report.title}[/]")
    for warning in report.warnings[:20]:
        console.print(f"  [yellow]![/] {warning}")
    if report.quick_model:
        metrics = {k: v for k, v in report.quick_model.items() if isinstance(v, float)}
        console.print("  quick model: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    for kind, path in written.items():
        console.print(f"  {kind:5} {path}")
    if ws is None:
        console.print("  (no workspace: report not recorded in lineage)")


@wrangle_app.command("export")
def export_command(
    fitted_flow: Annotated[
        str, typer.Argument(help="Fitted flow JSON (path, or sha256:… in the workspace).")
    ],
    to: Annotated[Path, typer.Option("--to", help="The script to write.")],
    trust_custom_code: Annotated[
        bool, typer.Option("--trust-custom-code", help="Allow exporting a flow with custom Python steps.")
    ] = False,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Write a standalone Polars script whose output equals the fitted flow's transform."""
    from tideml.wrangle.engine import FittedFlow
    from tideml.wrangle.export import write_script

    if fitted_flow.startswith("sha256:"):
        with open_workspace(workspace) as ws:
            data = ws.artifacts.get(fitted_flow)
        fitted = FittedFlow.from_json(data.decode("utf-8"), trust_custom_code=trust_custom_code)
    else:
        fitted = FittedFlow.load(fitted_flow, trust_custom_code=trust_custom_code)
    path = write_script(fitted, to)
    if json:
        emit_json({"script": str(path), "flow": fitted.name, "outputs": list(fitted.outputs)})
    else:
        console.print(f"wrote {path} (flow {fitted.name}; run it with python {path.name} --help)")


@wrangle_app.command("show")
def show_command(
    flow: Annotated[Path, typer.Argument(help="Flow file or fitted flow JSON.")],
    json: JsonOption = False,
) -> None:
    """Validate a flow (or fitted flow) file and list its steps."""
    import json as _json

    from tideml.wrangle.engine import FITTED_FORMAT
    from tideml.wrangle.spec import Flow

    if not flow.exists():
        raise NotFound(f"no file at {flow}", obj="flow", fix="check the path")
    recorded = None
    if flow.suffix.lower() == ".json":
        data = _json.loads(flow.read_text(encoding="utf-8"))
        if isinstance(data, dict) and data.get("format") == FITTED_FORMAT:
            # A fitted flow's steps are listed without compiling them, so no trust is needed to look.
            spec = Flow.from_dict(data.get("flow"))
            recorded = {k: [c for c, _ in v] for k, v in (data.get("outputs") or {}).items()}
        else:
            spec = Flow.from_dict(data)
    else:
        spec = Flow.load(flow)
    steps = spec.resolve()
    if json:
        emit_json(
            {
                "name": spec.name,
                "sha256": spec.sha256,
                "sources": list(spec.sources),
                "steps": [
                    {"index": s.index, "op": s.params.op, "frame": s.frame, "writes": s.writes} for s in steps
                ],
                "outputs": spec.output_frames(),
                "output_columns": recorded,
            }
        )
        return
    console.print(f"flow [bold]{spec.name}[/] sha256:{spec.sha256[:16]}… sources: {', '.join(spec.sources)}")
    table = Table("#", "op", "frame", "writes", "comment")
    for s in steps:
        table.add_row(str(s.index), s.params.op, s.frame, ", ".join(s.writes), s.params.comment or "")
    console.print(table)


app.add_typer(wrangle_app, name="wrangle")
