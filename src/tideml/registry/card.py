"""Side-by-side comparison of versions and the model card (Markdown and self-contained HTML)."""

from __future__ import annotations

import html
from typing import Any

from tideml.registry.policy import check_policy
from tideml.registry.service import AuditEvent, ModelGroup, ModelVersion

__all__ = ["compare_versions", "model_card_html", "model_card_markdown"]


def compare_versions(versions: list[ModelVersion]) -> dict[str, Any]:
    """Metrics of several versions side by side, with the difference of each to the first."""
    names = sorted({m for v in versions for m in v.metrics})
    rows = []
    for metric in names:
        values = [v.metrics.get(metric) for v in versions]
        base = values[0]
        deltas = [None if (x is None or base is None) else x - base for x in values]
        rows.append({"metric": metric, "values": values, "delta_to_first": deltas})
    return {
        "versions": [v.ref for v in versions],
        "status": [v.status for v in versions],
        "aliases": [v.aliases for v in versions],
        "metrics": rows,
    }


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


def model_card_markdown(group: ModelGroup, version: ModelVersion, history: list[AuditEvent]) -> str:
    """A model card built only from recorded evidence: metrics, policy checks, evidence hashes, audit."""
    lines = [
        f"# Model card: {version.ref}",
        "",
        f"- **Status:** {version.status}"
        + (f" (approved by {', '.join(version.approvals)})" if version.approvals else ""),
        f"- **Aliases:** {', '.join('@' + a for a in version.aliases) or 'none'}",
        f"- **Model artifact:** `sha256:{version.model_sha256}`",
        f"- **Registered:** {version.created_at:%Y-%m-%d %H:%M:%S %Z} by {version.created_by}",
    ]
    if version.description:
        lines += ["", version.description]
    if version.tags:
        lines += ["", "## Tags", "", *[f"- {k}: {v}" for k, v in sorted(version.tags.items())]]
    lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(version.metrics.items())]
    if group.policy:
        lines += ["", "## Approval policy", "", "| rule | observed | result |", "|---|---|---|"]
        for r in check_policy(group.policy, version.metrics):
            lines.append(f"| `{r.rule.text}` | {_fmt(r.observed)} | {'pass' if r.passed else 'FAIL'} |")
    if version.evidence:
        lines += ["", "## Evidence", "", "| kind | artifact |", "|---|---|"]
        lines += [f"| {k} | `sha256:{v}` |" for k, v in sorted(version.evidence.items())]
    lines += ["", "## Audit trail", "", "| when | event | who | why |", "|---|---|---|---|"]
    for e in history:
        lines.append(f"| {e.at:%Y-%m-%d %H:%M:%S} | {e.event} | {e.actor} | {e.reason or ''} |")
    return "\n".join(lines) + "\n"


def model_card_html(group: ModelGroup, version: ModelVersion, history: list[AuditEvent]) -> str:
    """The same card as a self-contained HTML page (no network needed to open it)."""
    esc = html.escape

    def table(head: list[str], rows: list[list[str]]) -> str:
        th = "".join(f"<th>{esc(h)}</th>" for h in head)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"

    parts = [
        f"<h1>Model card: {esc(version.ref)}</h1>",
        table(
            ["field", "value"],
            [
                ["status", version.status],
                ["approved by", ", ".join(version.approvals) or "—"],
                ["aliases", ", ".join("@" + a for a in version.aliases) or "none"],
                ["model artifact", f"sha256:{version.model_sha256}"],
                ["registered", f"{version.created_at:%Y-%m-%d %H:%M:%S} by {version.created_by}"],
                ["description", version.description or "—"],
            ],
        ),
        "<h2>Metrics</h2>",
        table(["metric", "value"], [[k, _fmt(v)] for k, v in sorted(version.metrics.items())]),
    ]
    if group.policy:
        checks = check_policy(group.policy, version.metrics)
        parts += [
            "<h2>Approval policy</h2>",
            table(
                ["rule", "observed", "result"],
                [[r.rule.text, _fmt(r.observed), "pass" if r.passed else "FAIL"] for r in checks],
            ),
        ]
    if version.evidence:
        parts += [
            "<h2>Evidence</h2>",
            table(["kind", "artifact"], [[k, f"sha256:{v}"] for k, v in sorted(version.evidence.items())]),
        ]
    parts += [
        "<h2>Audit trail</h2>",
        table(
            ["when", "event", "who", "why"],
            [[f"{e.at:%Y-%m-%d %H:%M:%S}", e.event, e.actor, e.reason] for e in history],
        ),
    ]
    style = (
        "body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em}"
        "th{background:#f3f3f3;text-align:left}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(version.ref)}</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>"
    )
