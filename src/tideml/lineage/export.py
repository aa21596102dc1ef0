"""Render a lineage graph: a Rich tree for people, JSON, Graphviz DOT and OpenLineage run events."""

from __future__ import annotations

import uuid
from typing import Any

from rich.tree import Tree

from tideml.lineage.graph import Direction, LineageGraph, LineageNode

__all__ = ["to_dot", "to_openlineage", "to_tree"]

_PRODUCER = "https://github.com/tideml/tideml"
_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent"
_RUN_NAMESPACE = uuid.UUID("6f1d5c1e-2b1a-4c7e-9a57-7469646d6c00")


def _label(n: LineageNode) -> str:
    if n.kind == "action":
        return f"[bold]{n.type}[/] (action {n.id}, {n.status})"
    parts = [f"[cyan]{n.type}[/]"]
    if n.name:
        parts.append(n.name)
    if n.uri and not n.uri.startswith("sha256:") and n.uri != n.name:
        parts.append(n.uri)
    if n.sha256:
        parts.append(f"[dim]sha256:{n.sha256[:16]}[/]")
    return " ".join(parts)


def to_tree(graph: LineageGraph, direction: Direction = "upstream") -> Tree:
    """A tree from the root against (upstream) or along (downstream) the data flow.

    A node reached twice is expanded once and referred to afterwards.
    """
    children: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for e in graph.edges:
        if direction == "upstream":
            children.setdefault(e.dst, []).append(e.src)
        else:
            children.setdefault(e.src, []).append(e.dst)
    depth = {n.key: n.depth for n in graph.nodes}
    root = Tree(_label(graph.node(graph.root)))
    seen = {graph.root}

    def grow(branch: Tree, key: tuple[str, int]) -> None:
        for child in sorted(set(children.get(key, [])), key=lambda k: (depth[k], k)):
            node = graph.node(child)
            if child in seen:
                branch.add(f"[dim]{_label(node)} (shown above)[/]")
                continue
            seen.add(child)
            grow(branch.add(_label(node)), child)

    grow(root, graph.root)
    return root


def to_dot(graph: LineageGraph) -> str:
    """Graphviz DOT: artifacts as boxes, actions as ellipses, edges along the data flow."""

    def ident(key: tuple[str, int]) -> str:
        return f"{key[0]}_{key[1]}"

    def quote(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["digraph lineage {", "  rankdir=LR;", "  node [fontname=Helvetica];"]
    for n in graph.nodes:
        if n.kind == "artifact":
            label = f"{n.type}\\n{n.name or n.uri}" + (f"\\nsha256:{n.sha256[:12]}" if n.sha256 else "")
            lines.append(f"  {ident(n.key)} [shape=box, label={quote(label)}];")
        else:
            lines.append(f"  {ident(n.key)} [shape=ellipse, label={quote(n.type)}];")
    for e in graph.edges:
        lines.append(f"  {ident(e.src)} -> {ident(e.dst)} [label={quote(e.type)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dataset(n: LineageNode) -> dict[str, Any]:
    facets: dict[str, Any] = {
        "tideml": {
            "_producer": _PRODUCER,
            "_schemaURL": _SCHEMA,
            "type": n.type,
            "properties": n.properties,
        }
    }
    if n.sha256:
        facets["tideml"]["sha256"] = n.sha256
    return {"namespace": "tideml", "name": n.uri or f"artifact/{n.id}", "facets": facets}


def to_openlineage(graph: LineageGraph) -> list[dict[str, Any]]:
    """One OpenLineage RunEvent per action in the graph (COMPLETE or FAIL), inputs and outputs as datasets."""
    events = []
    for action in (n for n in graph.nodes if n.kind == "action"):
        inputs = [graph.node(e.src) for e in graph.edges if e.dst == action.key and e.src[0] == "artifact"]
        outputs = [graph.node(e.dst) for e in graph.edges if e.src == action.key and e.dst[0] == "artifact"]
        status = {"Completed": "COMPLETE", "Failed": "FAIL"}.get(action.status or "", "RUNNING")
        events.append(
            {
                "eventType": status,
                "eventTime": action.at.isoformat() if action.at else None,
                "producer": _PRODUCER,
                "schemaURL": _SCHEMA,
                "run": {
                    "runId": str(uuid.uuid5(_RUN_NAMESPACE, f"action/{action.id}")),
                    "facets": {
                        "tideml_parameters": {
                            "_producer": _PRODUCER,
                            "_schemaURL": _SCHEMA,
                            "parameters": action.properties,
                        }
                    },
                },
                "job": {"namespace": "tideml", "name": action.type},
                "inputs": [_dataset(n) for n in inputs],
                "outputs": [_dataset(n) for n in outputs],
            }
        )
    return events
