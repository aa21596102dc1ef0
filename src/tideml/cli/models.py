"""`tide models …`: the model registry from the shell."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.table import Table

from tideml.cli._app import JsonOption, WorkspaceOption, app, console, emit_json, open_workspace

if TYPE_CHECKING:
    from tideml.registry import ModelVersion

models_app = typer.Typer(help="Model registry: groups, versions, approval, aliases.", no_args_is_help=True)

Actor = Annotated[str | None, typer.Option("--actor", help="Who acts (default: $TIDE_USER or login).")]
Reason = Annotated[str, typer.Option("--reason", "-m", help="Why (kept in the audit trail).")]


def _plain(obj: Any) -> Any:
    data = dataclasses.asdict(obj)
    for key, value in data.items():
        if hasattr(value, "isoformat"):
            data[key] = value.isoformat()
    return data


def _versions_table(versions: list[ModelVersion]) -> Table:
    table = Table("version", "status", "aliases", "metrics", "registered", "by")
    for v in versions:
        metrics = ", ".join(f"{k}={x:.4g}" for k, x in sorted(v.metrics.items())[:4])
        table.add_row(
            str(v.version),
            v.status,
            " ".join("@" + a for a in v.aliases),
            metrics,
            f"{v.created_at:%Y-%m-%d %H:%M}",
            v.created_by,
        )
    return table


@models_app.command("create")
def create(
    group: str,
    policy: Annotated[
        list[str] | None, typer.Option("--policy", help="Rule, e.g. 'test_auc >= 0.75'.")
    ] = None,
    required_approvals: Annotated[int, typer.Option(help="Reviewers needed to approve.")] = 1,
    description: str = "",
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Create a model group with an optional approval policy."""
    with open_workspace(workspace) as ws:
        g = ws.registry.create_group(
            group, description=description, policy=policy, required_approvals=required_approvals
        )
    if json:
        emit_json(_plain(g))
    else:
        console.print(f"created model group [bold]{g.name}[/] (policy: {g.policy or 'none'})")


@models_app.command("list")
def list_(
    group: Annotated[str | None, typer.Argument(help="List this group's versions.")] = None,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """List model groups, or the versions of one group."""
    with open_workspace(workspace) as ws:
        if group is None:
            groups = ws.registry.list_groups()
            if json:
                emit_json([_plain(g) for g in groups])
                return
            table = Table("group", "policy", "reviewers", "created")
            for g in groups:
                table.add_row(
                    g.name, "; ".join(g.policy), str(g.required_approvals), f"{g.created_at:%Y-%m-%d}"
                )
            console.print(table)
            return
        versions = ws.registry.list_versions(group)
    if json:
        emit_json([_plain(v) for v in versions])
    else:
        console.print(_versions_table(versions))


@models_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="GROUP, GROUP/N or GROUP@alias.")],
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Show one version (or a group's versions) with evidence and audit trail."""
    with open_workspace(workspace) as ws:
        if "/" not in ref and "@" not in ref:
            versions = ws.registry.list_versions(ref)
            if json:
                emit_json([_plain(v) for v in versions])
            else:
                console.print(_versions_table(versions))
            return
        v = ws.registry.get_version(ref)
        history = ws.registry.history(v.group, v.version)
    if json:
        emit_json({**_plain(v), "history": [_plain(e) for e in history]})
        return
    console.print(f"[bold]{v.ref}[/] {v.status} {' '.join('@' + a for a in v.aliases)}")
    console.print(f"model sha256:{v.model_sha256}")
    for k, x in sorted(v.metrics.items()):
        console.print(f"  {k:<28} {x:.6g}")
    for kind, digest in sorted(v.evidence.items()):
        console.print(f"  evidence {kind:<19} sha256:{digest}")
    for e in history:
        console.print(f"  {e.at:%Y-%m-%d %H:%M:%S}  {e.event:<16} {e.actor:<12} {e.reason}")


@models_app.command("approve")
def approve(
    ref: str,
    actor: Actor = None,
    reason: Reason = "",
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Approve a version (checked against the group's policy)."""
    with open_workspace(workspace) as ws:
        v = ws.registry.approve(ref, actor=actor, reason=reason)
    if json:
        emit_json(_plain(v))
    else:
        console.print(f"{v.ref}: {v.status} (approvals: {', '.join(v.approvals)})")


@models_app.command("reject")
def reject(
    ref: str,
    actor: Actor = None,
    reason: Reason = "",
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Reject a version; aliases pointing at it are removed."""
    with open_workspace(workspace) as ws:
        v = ws.registry.reject(ref, actor=actor, reason=reason)
    if json:
        emit_json(_plain(v))
    else:
        console.print(f"{v.ref}: {v.status}")


@models_app.command("alias")
def alias(
    group: str,
    name: str,
    version: int,
    actor: Actor = None,
    reason: Reason = "",
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Point GROUP@NAME at an approved VERSION."""
    with open_workspace(workspace) as ws:
        v = ws.registry.set_alias(group, name, version, actor=actor, reason=reason)
    if json:
        emit_json(_plain(v))
    else:
        console.print(f"{group}@{name} -> {v.ref}")


@models_app.command("compare")
def compare(
    refs: Annotated[list[str], typer.Argument(help="Two or more GROUP/N refs.")],
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Metrics of several versions side by side."""
    from tideml.registry import compare_versions

    with open_workspace(workspace) as ws:
        table_data = compare_versions([ws.registry.get_version(r) for r in refs])
    if json:
        emit_json(table_data)
        return
    table = Table("metric", *table_data["versions"])
    for row in table_data["metrics"]:
        cells = []
        for value, delta in zip(row["values"], row["delta_to_first"], strict=True):
            text = "—" if value is None else f"{value:.4g}"
            if delta:
                text += f" ({delta:+.4g})"
            cells.append(text)
        table.add_row(row["metric"], *cells)
    console.print(table)


@models_app.command("card")
def card(
    ref: str,
    format: Annotated[Literal["md", "html"], typer.Option("--format")] = "md",
    out: Annotated[Path | None, typer.Option("--out", help="File to write (default: stdout).")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """The model card of a version, built from its evidence (Markdown or HTML)."""
    from tideml.registry import model_card_html, model_card_markdown

    with open_workspace(workspace) as ws:
        v = ws.registry.get_version(ref)
        group = ws.registry.get_group(v.group)
        history = ws.registry.history(v.group, v.version)
    render = model_card_markdown if format == "md" else model_card_html
    text = render(group, v, history)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")


app.add_typer(models_app, name="models")
