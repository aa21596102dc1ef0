"""Upstream and downstream walks over the lineage graph, as one recursive SQL query each."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from tideml.meta.models import LineageAction, LineageArtifact, LineageEdge

__all__ = ["Direction", "LineageEdgeView", "LineageGraph", "LineageNode", "walk"]

Direction = Literal["upstream", "downstream"]


@dataclass(frozen=True)
class LineageNode:
    """An artifact or an action reached by a walk, with its distance (in edges) from the start."""

    kind: Literal["artifact", "action"]
    id: int
    type: str
    depth: int
    uri: str | None = None
    sha256: str | None = None
    name: str | None = None
    status: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None  # artifacts: first recorded; actions: ended (or started, if running)

    @property
    def key(self) -> tuple[str, int]:
        return (self.kind, self.id)


@dataclass(frozen=True)
class LineageEdgeView:
    src: tuple[str, int]
    dst: tuple[str, int]
    type: str


@dataclass(frozen=True)
class LineageGraph:
    """The nodes reached from `root` and the edges between them, in data-flow direction."""

    root: tuple[str, int]
    nodes: list[LineageNode]
    edges: list[LineageEdgeView]

    def node(self, key: tuple[str, int]) -> LineageNode:
        return next(n for n in self.nodes if n.key == key)

    def artifacts(self, type: str | None = None) -> list[LineageNode]:
        return [n for n in self.nodes if n.kind == "artifact" and (type is None or n.type == type)]

    def to_json(self) -> dict[str, Any]:
        return {
            "root": {"kind": self.root[0], "id": self.root[1]},
            "nodes": [
                {
                    "kind": n.kind,
                    "id": n.id,
                    "type": n.type,
                    "depth": n.depth,
                    "uri": n.uri,
                    "sha256": n.sha256,
                    "name": n.name,
                    "status": n.status,
                    "properties": n.properties,
                    "at": n.at.isoformat() if n.at else None,
                }
                for n in self.nodes
            ],
            "edges": [{"src": list(e.src), "dst": list(e.dst), "type": e.type} for e in self.edges],
        }


def walk(
    session: Session,
    start: tuple[str, int],
    direction: Direction,
    *,
    max_depth: int = 50,
    types: set[str] | None = None,
) -> LineageGraph:
    """Every node reachable from `start` against (upstream) or along (downstream) the data flow.

    One recursive CTE; `max_depth` counts edges (artifact → action → artifact is 2). `types` keeps only
    artifacts of those types in the result (actions are always kept so the paths stay readable).
    """
    e = LineageEdge.__table__
    if direction == "upstream":
        near_kind, near_id, far_kind, far_id = e.c.dst_kind, e.c.dst_id, e.c.src_kind, e.c.src_id
    else:
        near_kind, near_id, far_kind, far_id = e.c.src_kind, e.c.src_id, e.c.dst_kind, e.c.dst_id
    seed = sa.select(
        sa.literal(start[0]).label("kind"), sa.literal(start[1]).label("id"), sa.literal(0).label("depth")
    ).cte("reach", recursive=True)
    step = (
        sa.select(far_kind, far_id, (seed.c.depth + 1).label("depth"))
        .select_from(e.join(seed, sa.and_(near_kind == seed.c.kind, near_id == seed.c.id)))
        .where(seed.c.depth < max_depth, e.c.type != "AssociatedWith")
    )
    reach = seed.union(step)
    reached = (
        sa.select(reach.c.kind, reach.c.id, sa.func.min(reach.c.depth).label("depth"))
        .group_by(reach.c.kind, reach.c.id)
        .cte("reached")
    )
    depth_of = {(k, i): d for k, i, d in session.execute(sa.select(reached))}

    # Rows and edges come from joins against the same CTE: one round trip each, no IN lists.
    nodes: list[LineageNode] = []
    artifacts = sa.select(LineageArtifact).join(
        reached, sa.and_(reached.c.kind == "artifact", reached.c.id == LineageArtifact.id)
    )
    for a in session.scalars(artifacts):
        if types is None or a.type in types or ("artifact", a.id) == start:
            nodes.append(
                LineageNode(
                    "artifact",
                    a.id,
                    a.type,
                    depth_of[("artifact", a.id)],
                    a.uri,
                    a.sha256,
                    a.name,
                    None,
                    dict(a.properties),
                    a.created_at,
                )
            )
    actions = sa.select(LineageAction).join(
        reached, sa.and_(reached.c.kind == "action", reached.c.id == LineageAction.id)
    )
    for x in session.scalars(actions):
        nodes.append(
            LineageNode(
                "action",
                x.id,
                x.type,
                depth_of[("action", x.id)],
                None,
                None,
                None,
                x.status,
                dict(x.parameters),
                x.ended_at or x.started_at,
            )
        )
    nodes.sort(key=lambda n: (n.depth, n.kind, n.id))
    keep = {n.key for n in nodes}
    src, dst = reached.alias("src"), reached.alias("dst")
    edge_rows = session.execute(
        sa.select(e.c.src_kind, e.c.src_id, e.c.dst_kind, e.c.dst_id, e.c.type)
        .join(src, sa.and_(src.c.kind == e.c.src_kind, src.c.id == e.c.src_id))
        .join(dst, sa.and_(dst.c.kind == e.c.dst_kind, dst.c.id == e.c.dst_id))
        .where(e.c.type != "AssociatedWith")
    )
    edges = [
        LineageEdgeView((sk, si), (dk, di), t)
        for sk, si, dk, di, t in edge_rows
        if (sk, si) in keep and (dk, di) in keep
    ]
    edges.sort(key=lambda x: (x.src, x.dst, x.type))
    return LineageGraph(start, nodes, edges)
