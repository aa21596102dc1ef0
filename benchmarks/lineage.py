"""Lineage and registry query speed on SQLite and PostgreSQL.

Builds a lineage graph of N artifacts (layers of artifacts, each produced by an action that read three
artifacts of the layer before) and a model group with 1,000 versions, then times:
- an upstream walk of depth 10 from an artifact in the last layer (target <= 100 ms at 100k artifacts);
- `Registry.list_versions` of the 1,000-version group (target <= 50 ms; MLflow's registry search is
  reported at ~0.85 s with a few hundred models).

    python benchmarks/lineage.py [--artifacts 100000] [--repeats 7] [--postgres URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from tideml import Workspace
from tideml.meta.models import LineageAction, LineageArtifact, LineageEdge, utcnow
from tideml.meta.registry_tables import ModelGroupRow, ModelVersionRow


def build_graph(ws: Workspace, n_artifacts: int, width: int, seed: int = 0) -> int:
    """Bulk-insert the synthetic graph; returns the id of an artifact in the last layer."""
    rng = random.Random(seed)
    now = utcnow()
    engine = ws.metadata.engine
    layers = n_artifacts // width
    with engine.begin() as conn:
        conn.execute(
            sa.insert(LineageArtifact),
            [
                {
                    "id": i + 1,
                    "type": "Dataset",
                    "uri": f"dataset:{i}",
                    "sha256": f"{i:064x}",
                    "name": None,
                    "properties": {},
                    "created_at": now,
                }
                for i in range(layers * width)
            ],
        )
        actions, edges = [], []
        action_id = 0
        for layer in range(1, layers):
            for j in range(width):
                action_id += 1
                actions.append(
                    {
                        "id": action_id,
                        "type": "wrangle.run",
                        "status": "Completed",
                        "parameters": {},
                        "started_at": now,
                        "ended_at": now,
                        "who": "bench",
                    }
                )
                out = layer * width + j + 1
                edges.append(
                    {
                        "src_kind": "action",
                        "src_id": action_id,
                        "dst_kind": "artifact",
                        "dst_id": out,
                        "type": "Produced",
                        "created_at": now,
                    }
                )
                for src in rng.sample(range(width), 3):
                    edges.append(
                        {
                            "src_kind": "artifact",
                            "src_id": (layer - 1) * width + src + 1,
                            "dst_kind": "action",
                            "dst_id": action_id,
                            "type": "ContributedTo",
                            "created_at": now,
                        }
                    )
        conn.execute(sa.insert(LineageAction), actions)
        for start in range(0, len(edges), 50_000):
            conn.execute(sa.insert(LineageEdge), edges[start : start + 50_000])
        if engine.dialect.name == "postgresql":
            for table in ("lineage_artifacts", "lineage_actions"):
                conn.execute(sa.text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))"))
            conn.execute(sa.text("ANALYZE"))
    return layers * width


def build_registry(ws: Workspace, versions: int) -> None:
    now = utcnow()
    with ws.metadata.session() as s:
        group = ModelGroupRow(name="bench", policy=[], required_approvals=1)
        s.add(group)
        s.flush()
        s.execute(
            sa.insert(ModelVersionRow),
            [
                {
                    "group_id": group.id,
                    "version": v,
                    "model_sha256": f"{v:064x}",
                    "status": "Approved",
                    "metrics": {"test_auc": 0.8},
                    "evidence": {},
                    "tags": {},
                    "description": "",
                    "approvals": ["bench"],
                    "created_at": now,
                    "created_by": "bench",
                    "row_version": 1,
                }
                for v in range(1, versions + 1)
            ],
        )


def timed(fn: object, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def measure(label: str, url: str | None, args: argparse.Namespace) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        import os

        if url:
            os.environ["TIDE_METADATA_URL"] = url
        else:
            os.environ.pop("TIDE_METADATA_URL", None)
        with Workspace.init(Path(tmp) / "ws") as ws:
            t0 = time.perf_counter()
            leaf = build_graph(ws, args.artifacts, args.width)
            build_registry(ws, args.versions)
            setup = time.perf_counter() - t0
            walk = ws.lineage.graph(leaf, "upstream", max_depth=10)
            ms_walk = timed(lambda: ws.lineage.graph(leaf, "upstream", max_depth=10), args.repeats)
            ms_list = timed(lambda: ws.registry.list_versions("bench"), args.repeats)
            assert len(ws.registry.list_versions("bench")) == args.versions
    return [
        label,
        f"{args.artifacts:,}",
        f"{len(walk.nodes):,}",
        f"{ms_walk:.1f}",
        f"{args.versions:,}",
        f"{ms_list:.1f}",
        f"{setup:.1f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=int, default=100_000)
    parser.add_argument("--width", type=int, default=1_000)
    parser.add_argument("--versions", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    rows = [measure("sqlite", None, args)]
    admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    name = f"tide_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = sa.engine.make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
        rows.append(measure("postgresql", url, args))
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    table = Table(title=f"lineage + registry queries (median of {args.repeats})")
    for col in (
        "backend",
        "artifacts",
        "nodes reached",
        "upstream depth 10 (ms)",
        "versions",
        "list versions (ms)",
        "setup (s)",
    ):
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    print("targets: upstream <= 100 ms, list <= 50 ms (MLflow registry search: ~850 ms, reported)")


if __name__ == "__main__":
    main()
