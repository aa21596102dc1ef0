"""Automatic provenance: every service records what it read and wrote through `Lineage.action`."""

from tideml.lineage.graph import LineageEdgeView, LineageGraph, LineageNode
from tideml.lineage.recorder import (
    ARTIFACT_TYPES,
    ActionRecorder,
    ArtifactSpec,
    Lineage,
    current_user,
)

__all__ = [
    "ARTIFACT_TYPES",
    "ActionRecorder",
    "ArtifactSpec",
    "Lineage",
    "LineageEdgeView",
    "LineageGraph",
    "LineageNode",
    "current_user",
]
