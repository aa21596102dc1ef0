"""`tide lineage show|export`: where an artifact came from, or what used it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from tideml.cli._app import JsonOption, WorkspaceOption, app, console, emit_json, open_workspace

if TYPE_CHECKING:
    from tideml.lineage import LineageGraph
    from tideml.workspace import Workspace

lineage_app = typer.Typer(help="Provenance of every artifact.", no_args_is_help=True)

Ref = Annotated[str, typer.Argument(help="model:GROUP/N, sha256:HASH, an artifact URI or name.")]
Depth = Annotated[int, typer.Option("--depth", help="Maximum edges from the artifact.")]
Direction = Annotated[
    Literal["upstream", "downstream"], typer.Option("--direction", help="upstream or downstream.")
]
Types = Annotated[list[str] | None, typer.Option("--type", help="Keep only artifacts of this type.")]


def _graph(ws: Workspace, ref: str, direction: str, depth: int, types: list[str] | None) -> LineageGraph:
    node = ws.lineage.resolve(ref)
    return ws.lineage.graph(
        node,
        "upstream" if direction == "upstream" else "downstream",
        max_depth=depth,
        types=set(types) if types else None,
    )


@lineage_app.command("show")
def show(
    ref: Ref,
    direction: Direction = "upstream",
    depth: Depth = 50,
    type: Types = None,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Print the lineage tree of an artifact down to raw files and flows (or up to what used it)."""
    from tideml.lineage.export import to_tree

    with open_workspace(workspace) as ws:
        graph = _graph(ws, ref, direction, depth, type)
    if json:
        emit_json(graph.to_json())
    else:
        console.print(to_tree(graph, direction))


@lineage_app.command("export")
def export(
    ref: Ref,
    format: Annotated[
        Literal["json", "dot", "openlineage"], typer.Option("--format", help="json, dot or openlineage.")
    ] = "json",
    out: Annotated[Path | None, typer.Option("--out", help="File to write (default: stdout).")] = None,
    direction: Direction = "upstream",
    depth: Depth = 50,
    workspace: WorkspaceOption = None,
) -> None:
    """Export the lineage graph as a JSON graph, Graphviz DOT or OpenLineage run events."""
    import orjson

    from tideml.lineage.export import to_dot, to_openlineage

    with open_workspace(workspace) as ws:
        graph = _graph(ws, ref, direction, depth, None)
    if format == "dot":
        text = to_dot(graph)
    else:
        data = graph.to_json() if format == "json" else to_openlineage(graph)
        text = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")


app.add_typer(lineage_app, name="lineage")
