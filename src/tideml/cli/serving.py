"""`tide endpoints`, `tide serve`, `tide batch-transform` and `tide keys`: serving from the shell."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from tideml.cli._app import JsonOption, WorkspaceOption, app, console, emit_json, open_workspace
from tideml.errors import ValidationError

__all__ = ["endpoints_app", "keys_app"]

endpoints_app = typer.Typer(help="Real-time endpoints: deploy, list, describe, delete.", no_args_is_help=True)
keys_app = typer.Typer(
    help="API keys of the endpoints (stored hashed), with rate limits.", no_args_is_help=True
)


def _variant(text: str) -> dict[str, Any]:
    """`NAME=MODEL[:WEIGHT]`, e.g. `a=autoclaims-fraud/3:0.9`."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise ValidationError(
            f"{text!r} is not NAME=MODEL[:WEIGHT]",
            obj="--variant",
            field="variant",
            fix="e.g. --variant a=fraud/3:0.9",
        )
    model, _, weight = rest.partition(":")
    try:
        return {"name": name, "model": model, "weight": float(weight) if weight else 1.0}
    except ValueError:
        raise ValidationError(
            f"weight {weight!r} is not a number", obj="--variant", field="weight", fix="e.g. a=fraud/3:0.9"
        ) from None


@endpoints_app.command("deploy")
def deploy(
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="GROUP@ALIAS, GROUP/N or GROUP.")] = None,
    variant: Annotated[
        list[str] | None, typer.Option("--variant", help="NAME=MODEL[:WEIGHT], repeat for an A/B split.")
    ] = None,
    shadow: Annotated[
        str | None, typer.Option(help="Shadow model: scored and captured, never returned.")
    ] = None,
    shadow_percent: Annotated[float, typer.Option(help="Share of requests copied to the shadow.")] = 100.0,
    capture_percent: Annotated[float, typer.Option(help="Share of requests captured (0 disables).")] = 100.0,
    capture_format: Annotated[str, typer.Option(help="jsonl or parquet.")] = "jsonl",
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body.")] = 1 << 20,
    max_batch: Annotated[int, typer.Option(help="Most records per request.")] = 1000,
    require_api_key: Annotated[bool, typer.Option(help="Refuse requests without a valid API key.")] = False,
    claim_flow: Annotated[str | None, typer.Option(help="sha256 of the fitted claims flow.")] = None,
    feature_group: Annotated[
        list[str] | None, typer.Option("--feature-group", help="Online group to read (repeat; default all).")
    ] = None,
    override_approval: Annotated[
        bool, typer.Option(help="Deploy a version that is not Approved (recorded in lineage).")
    ] = False,
    update: Annotated[bool, typer.Option(help="Redeploy an existing endpoint.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in lineage).")] = "",
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Deploy an endpoint serving approved registry versions."""

    with open_workspace(workspace) as ws:
        info = ws.endpoints.deploy(
            name,
            model,
            variants=[_variant(v) for v in variant] if variant else None,
            shadow=shadow,
            shadow_percent=shadow_percent,
            capture={
                "enabled": capture_percent > 0,
                "sampling_percent": capture_percent,
                "format": capture_format,
            },
            limits={"max_body_bytes": max_body_bytes, "max_batch": max_batch},
            require_api_key=require_api_key,
            claim_flow=claim_flow,
            feature_groups=feature_group,
            override_approval=override_approval,
            update=update,
            reason=reason,
        )
    if json:
        emit_json(info.to_dict())
        return
    served = ", ".join(f"{v['name']}={v['model']} (v{v['deployed_version']})" for v in info.variants)
    console.print(f"deployed endpoint [bold]{info.name}[/]: {served}")
    console.print(f"run it with: tide serve {info.name} --port 8080")


@endpoints_app.command("list")
def list_(workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """List deployed endpoints."""

    with open_workspace(workspace) as ws:
        infos = ws.endpoints.list()
    if json:
        emit_json([i.to_dict() for i in infos])
        return
    table = Table("endpoint", "variants", "api key", "capture", "updated")
    for i in infos:
        variants = ", ".join(
            f"{v['name']}={v['model']}" + (" (shadow)" if v["shadow"] else f" w={v['weight']:g}")
            for v in i.variants
        )
        cap = i.config.get("capture", {})
        table.add_row(
            i.name,
            variants,
            "required" if i.config.get("require_api_key") else "optional",
            f"{cap.get('sampling_percent', 0):g}%" if cap.get("enabled", True) else "off",
            f"{i.updated_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@endpoints_app.command("describe")
def describe(
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Show an endpoint: configuration, what each variant serves now, where its features come from."""

    with open_workspace(workspace) as ws:
        data = ws.endpoints.describe(name)
    if json:
        emit_json(data)
        return
    console.print(
        f"[bold]{data['name']}[/] {data['status']} (by {data['created_by']}, updated {data['updated_at']})"
    )
    for v in data["resolved"]:
        role = "shadow" if any(x["name"] == v["name"] and x["shadow"] for x in data["variants"]) else "live"
        console.print(
            f"  {v['name']:<12} {role:<6} {v['model']} -> {v['serves']} ({v['status']}), "
            f"threshold {v['threshold']:.4f}, {v['features']} features"
        )
        for group, feats in v["plan"]["groups"].items():
            console.print(f"      online group {group}: {len(feats)} features")
        if v["plan"]["uncovered"]:
            console.print(
                f"      [yellow]not in any online group[/]: {', '.join(v['plan']['uncovered'][:8])}"
            )
    console.print(f"  capture: {data['capture_folder']}")
    console.print(orjson.dumps(data["config"]["limits"]).decode())


@endpoints_app.command("delete")
def delete(
    name: Annotated[str, typer.Argument(help="Endpoint name.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in lineage).")] = "",
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Delete an endpoint's configuration."""

    with open_workspace(workspace) as ws:
        ws.endpoints.delete(name, reason=reason)
    if json:
        emit_json({"deleted": name})
    else:
        console.print(f"deleted endpoint {name}")


@app.command("serve")
def serve(
    name: Annotated[str, typer.Argument(help="Endpoint name (deployed with `tide endpoints deploy`).")],
    workers: Annotated[int, typer.Option("--workers", "-n", min=1, help="Server processes.")] = 1,
    port: Annotated[int, typer.Option("--port", "-p", min=1, max=65535, help="TCP port.")] = 8080,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    online_store: Annotated[
        str | None, typer.Option(help="Online store URL (default: the workspace's).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    workspace: WorkspaceOption = None,
) -> None:
    """Run an endpoint: POST /invocations, GET /ping, /health, /ready, /metrics, /docs."""
    from tideml.serving.server import check_endpoint
    from tideml.serving.server import serve as run

    with open_workspace(workspace) as ws:
        served = check_endpoint(ws, name)
        console.print(
            f"serving [bold]{name}[/] ({', '.join(served)}) on http://{host}:{port} with {workers} worker(s)"
        )
        code = run(
            ws,
            name,
            host=host,
            port=port,
            workers=workers,
            online_url=online_store,
            log_level=log_level,
            check=False,
        )
    if code:
        raise typer.Exit(code)


@app.command("batch-transform")
def batch_transform(
    model: Annotated[str, typer.Argument(help="GROUP@ALIAS, GROUP/N or GROUP.")],
    input: Annotated[Path, typer.Option("--input", "-i", help="Parquet file with the model's features.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Parquet file to write.")],
    batch_rows: Annotated[int, typer.Option(min=1, help="Rows per streamed batch.")] = 65_536,
    keep: Annotated[
        list[str] | None, typer.Option("--keep", help="Input column to copy (default: non-features).")
    ] = None,
    override_approval: Annotated[bool, typer.Option(help="Allow a version that is not Approved.")] = False,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Score a Parquet file with a registered model, streaming, into a Parquet file."""
    from tideml.serving.batch import batch_transform as run

    with open_workspace(workspace) as ws:
        report = run(
            ws,
            model,
            input,
            output,
            batch_rows=batch_rows,
            keep=keep,
            override_approval=override_approval,
            progress=not json,
        )
    if json:
        emit_json(report.to_dict())
    else:
        console.print(
            f"scored {report.rows} rows with {report.model_version} in {report.seconds:.2f} s "
            f"({report.positives} flagged) -> {report.output}"
        )


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="Who or what the key is for.")] = "",
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="Only this endpoint (default: all).")
    ] = None,
    rate: Annotated[float, typer.Option("--rate", help="Requests per second.")] = 100.0,
    burst: Annotated[int | None, typer.Option("--burst", help="Bucket size (default: 2x rate).")] = None,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Create an API key; it is printed once and stored only as a sha256 hash."""

    with open_workspace(workspace) as ws:
        key, info = ws.endpoints.create_key(name=name, endpoint=endpoint, rate_per_second=rate, burst=burst)
    if json:
        emit_json({"key": key, **info.to_dict()})
    else:
        console.print(f"API key {info.key_id} ({info.rate_per_second:g}/s, burst {info.burst}):")
        console.print(key, soft_wrap=True, highlight=False)
        console.print("[yellow]store it now: it cannot be shown again[/]")


@keys_app.command("list")
def keys_list(
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="Keys valid for this endpoint.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """List API keys (ids and limits; never the keys)."""

    with open_workspace(workspace) as ws:
        keys = ws.endpoints.list_keys(endpoint=endpoint, include_revoked=all_)
    if json:
        emit_json([k.to_dict() for k in keys])
        return
    table = Table("key id", "name", "endpoint", "rate/s", "burst", "created", "revoked")
    for k in keys:
        table.add_row(
            k.key_id,
            k.name,
            k.endpoint or "(all)",
            f"{k.rate_per_second:g}",
            str(k.burst),
            f"{k.created_at:%Y-%m-%d %H:%M}",
            f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (8 hex digits) from `tide keys list`.")],
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Revoke an API key (servers stop accepting it within their poll interval)."""

    with open_workspace(workspace) as ws:
        info = ws.endpoints.revoke_key(key_id)
    if json:
        emit_json(info.to_dict())
    else:
        console.print(f"revoked API key {info.key_id}")


app.add_typer(endpoints_app, name="endpoints")
app.add_typer(keys_app, name="keys")
