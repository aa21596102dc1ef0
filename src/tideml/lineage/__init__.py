"""Automatic provenance: every service records what it read and wrote through `Lineage.action`."""

from tideml.lineage.graph import LineageEdgeView, LineageGraph, LineageNode
from tideml.lineage.recorder import (
    ARTIFACT_TYPES,
    ActionRecorder,
    ArtifactSpec,
    Lineage,
)

__all__ = [
    "ARTIFACT_TYPES",
    "ActionRecorder",
    "ArtifactSpec",
    "Lineage",
    "LineageEdgeView",
    "LineageGraph",
    "LineageNode",
]
