"""`tide init`, `tide workspace info` and `tide artifacts …`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tideml.cli._app import JsonOption, WorkspaceOption, app, console, emit_json, open_workspace

workspace_app = typer.Typer(help="Inspect the workspace.", no_args_is_help=True)
artifacts_app = typer.Typer(help="The content-addressed artifact store.", no_args_is_help=True)


@app.command("init")
def init(
    path: Annotated[Path | None, typer.Argument(help="Folder to create (default: ./tide-workspace).")] = None,
    json: JsonOption = False,
) -> None:
    """Create a workspace with embedded defaults (SQLite metadata, local folders)."""
    from tideml.workspace import Workspace

    ws = Workspace.init(path)
    if json:
        emit_json(ws.info())
    else:
        console.print(f"initialised workspace [bold]{ws.root}[/]")
        console.print(f"  metadata   {ws.settings.metadata.url}")
        console.print(f"  artifacts  {ws.settings.artifacts.root}")


@workspace_app.command("info")
def info(workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """Print the resolved settings (tide.toml plus TIDE_* overrides)."""
    with open_workspace(workspace) as ws:
        data = ws.info()
    if json:
        emit_json(data)
        return
    table = Table(title=f"workspace {data['root']}", show_header=True)
    table.add_column("setting")
    table.add_column("value")
    for section, values in data["settings"].items():
        for key, value in values.items():
            table.add_row(f"{section}.{key}", value)
    table.add_row("metadata backend", data["metadata"]["backend"])
    table.add_row("schema revisions", ", ".join(data["metadata"]["schema_revisions"]))
    console.print(table)


@artifacts_app.command("list")
def list_artifacts(workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """List the objects in the artifact store."""
    with open_workspace(workspace) as ws:
        refs = ws.artifacts.list()
    if json:
        emit_json([{"sha256": r.sha256, "size": r.size, "media_type": r.media_type} for r in refs])
        return
    table = Table("sha256", "size", "media type")
    for r in refs:
        table.add_row(r.sha256, f"{r.size:,}", r.media_type)
    console.print(table)


@artifacts_app.command("put")
def put_artifact(
    path: Annotated[Path, typer.Argument(help="File to store.")],
    media_type: Annotated[str | None, typer.Option(help="Media type (default: guessed).")] = None,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Store a file; prints its sha256."""
    with open_workspace(workspace) as ws:
        ref = ws.put_artifact(path, media_type)
    if json:
        emit_json({"sha256": ref.sha256, "size": ref.size, "media_type": ref.media_type})
    else:
        console.print(ref.sha256)


@artifacts_app.command("cat")
def cat_artifact(key: str, workspace: WorkspaceOption = None) -> None:
    """Write an object's bytes to stdout, verified against its hash."""
    with open_workspace(workspace) as ws:
        data = ws.artifacts.get(key)
    sys.stdout.buffer.write(data)


@artifacts_app.command("verify")
def verify_artifacts(workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """Re-hash every stored object; exits non-zero if any is corrupt."""
    from tideml.errors import IntegrityError

    bad: list[str] = []
    with open_workspace(workspace) as ws:
        refs = ws.artifacts.list()
        for ref in refs:
            try:
                ws.artifacts.verify(ref.sha256)
            except IntegrityError:
                bad.append(ref.sha256)
    if json:
        emit_json({"checked": len(refs), "corrupt": bad})
    else:
        console.print(f"checked {len(refs)} objects, {len(bad)} corrupt")
        for key in bad:
            console.print(f"  [red]corrupt[/] {key}")
    if bad:
        raise typer.Exit(code=5)


app.add_typer(workspace_app, name="workspace")
app.add_typer(artifacts_app, name="artifacts")
