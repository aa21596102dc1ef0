"""`tide clarify …`: bias reports and explanations in Clarify's formats."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tideml.cli._app import JsonOption, WorkspaceOption, app, console, console_err, emit_json, open_workspace

clarify_app = typer.Typer(
    help="Bias metrics and SHAP explanations (Clarify-compatible).", no_args_is_help=True
)

DataOption = Annotated[Path, typer.Option("--data", "-d", help="Data file (CSV, Parquet or JSON Lines).")]
ModelOption = Annotated[
    str | None,
    typer.Option("--model", "-m", help="XGBoost model file (.json/.ubj) or the sha256 of a stored model."),
]
OutOption = Annotated[
    Path | None, typer.Option("--out", "-o", help="Output folder (default: ./clarify_output).")
]


def _print_stage(title: str, block: dict[str, object]) -> None:
    facets = block.get("facets", {})
    assert isinstance(facets, dict)
    for key, results in facets.items():
        for entry in results:
            table = Table(title=f"{title}: {key} = {entry['value_or_threshold']}")
            table.add_column("metric")
            table.add_column("value", justify="right")
            for m in entry["metrics"]:
                value = m["value"]
                shown = m.get("error") or (f"{value:.6g}" if isinstance(value, float) else str(value))
                table.add_row(m["name"], shown)
            console.print(table)


@clarify_app.command("bias")
def bias(
    config: Annotated[Path, typer.Option("--config", "-c", help="Clarify analysis_config.json.")],
    data: DataOption,
    model: ModelOption = None,
    out: OutOption = None,
    compat: Annotated[
        str | None, typer.Option("--compat", help='"smclarify" reproduces smclarify 0.5 quirks.')
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Probability threshold (overrides the config).")
    ] = None,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Pre-/post-training bias (and SHAP if configured); writes analysis.json and report.html."""
    out_dir = out or Path("clarify_output")
    with open_workspace(workspace) as ws:
        run = ws.clarify.bias(
            data,
            config,
            model=model,
            out_dir=out_dir,
            compat=compat,
            probability_threshold=threshold,
            progress=not json,
        )
    analysis = run.output.analysis_json()
    if json:
        emit_json(
            {
                "analysis": analysis,
                "files": {k: str(v) for k, v in run.files.items()},
                "artifacts": run.artifacts,
                "notes": run.output.extras_json()["notes"],
            }
        )
        return
    for key, title in (
        ("pre_training_bias_metrics", "pre-training"),
        ("post_training_bias_metrics", "post-training"),
    ):
        if key in analysis:
            _print_stage(title, analysis[key])
    for note in run.output.extras_json()["notes"]:
        console_err.print(f"[yellow]note:[/] {note}")
    console.print(f"wrote {out_dir / 'analysis.json'} and {out_dir / 'report.html'}")
    console.print(f"stored report {run.artifacts['analysis.json']}")


@clarify_app.command("explain")
def explain(
    model: Annotated[str, typer.Option("--model", "-m", help="XGBoost model file or stored model sha256.")],
    data: DataOption,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="analysis_config.json (shap options).")
    ] = None,
    method: Annotated[str, typer.Option("--method", help="auto, tree or kernel.")] = "auto",
    rows: Annotated[
        int | None, typer.Option("--rows", help="Explain a seeded sample of this many rows.")
    ] = None,
    top: Annotated[int, typer.Option("--top", help="Features to print.")] = 15,
    out: OutOption = None,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """SHAP explanations (exact TreeSHAP for XGBoost); writes analysis.json and local values."""
    if method not in ("auto", "tree", "kernel"):
        from tideml.errors import ValidationError

        raise ValidationError(
            f"unknown method {method!r}",
            obj="tide clarify explain",
            field="--method",
            fix="use auto, tree or kernel",
        )
    out_dir = out or Path("clarify_output")
    with open_workspace(workspace) as ws:
        run = ws.clarify.explain(
            data, model, config=config, method=method, max_rows=rows, out_dir=out_dir, progress=not json
        )
    e = run.output.explanation
    assert e is not None
    agg = run.output.agg_method
    if json:
        emit_json(
            {
                "analysis": run.output.analysis_json(),
                "files": {k: str(v) for k, v in run.files.items()},
                "artifacts": run.artifacts,
            }
        )
        return
    values = e.global_values(agg)  # type: ignore[arg-type]
    table = Table(title=f"{e.method}: global SHAP ({agg}) over {e.values.shape[0]} rows")
    table.add_column("feature")
    table.add_column("value", justify="right")
    for f in e.ranking(agg)[:top]:  # type: ignore[arg-type]
        table.add_row(f, f"{values[f]:.6g}")
    console.print(table)
    console.print(f"expected value {e.expected_value:.6g} ({e.output}); wrote {out_dir / 'analysis.json'}")


app.add_typer(clarify_app, name="clarify")
