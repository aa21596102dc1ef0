"""The flagship lifecycle end to end on the article's files: flows → feature store → dataset → tuning →
mitigation → gate → registry, with lineage down to the raw files and a fully cached re-run."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tideml import Workspace
from tideml.pipelines import run_pipeline

REPO = Path(__file__).resolve().parents[2]


def load_example() -> ModuleType:
    path = REPO / "examples" / "autoclaims" / "pipeline.py"
    spec = importlib.util.spec_from_file_location("autoclaims_pipeline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_autoclaims_pipeline_registers_an_approved_model_with_full_lineage(
    workspace: Workspace, article_data: Path
) -> None:
    example = load_example()
    params = {
        "claims": str(article_data / "claims.csv"),
        "customers": str(article_data / "customers.csv"),
        "trials": 3,
    }
    first = run_pipeline(workspace, example.autoclaims, params, executor="inline", progress=False)
    assert first.status == "Succeeded", first
    dataset = first.output(workspace, "dataset")
    assert dataset["rows"] == 5000  # one row per policy: the article's join gave 4x
    assert "fraud" in dataset["columns"]
    assert first.output(workspace, "tune")["objective"] == "cv_auc"  # 5,000 rows: below cv_max_rows

    version = workspace.registry.get_version("autoclaims-fraud/1")
    assert version.status == "Approved"
    assert version.metrics["test_auc"] >= 0.75 and abs(version.metrics["dppl"]) <= 0.1
    assert set(version.evidence) == {"dataset", "evaluation_report", "bias_report"}
    # The label never lives in an online group that serving reads.
    assert workspace.features.describe_group("claim_labels")["online"]["enabled"] is False

    node = workspace.lineage.resolve("model:autoclaims-fraud/1")
    upstream = workspace.lineage.graph(node, "upstream")
    raw = {
        hashlib.sha256((article_data / f).read_bytes()).hexdigest() for f in ("claims.csv", "customers.csv")
    }
    assert raw <= {n.sha256 for n in upstream.artifacts("File")}
    assert {n.name for n in upstream.artifacts("FittedFlow")} >= {"claims", "customers"}
    assert {n.name for n in upstream.artifacts("Flow")} >= {"claims", "customers"}
    assert {n.name for n in upstream.artifacts("FeatureGroup")} == {"claims", "claim_labels", "customers"}
    assert dataset["sha256"] in {n.sha256 for n in upstream.artifacts("Dataset")}

    # Approved by policy, so the pipeline moved @production and deployed the endpoint serving it.
    assert workspace.registry.get_version("autoclaims-fraud@production").version == 1
    (endpoint,) = workspace.endpoints.list()
    assert endpoint.name == "autoclaims" and endpoint.status == "Deployed"

    again = run_pipeline(workspace, example.autoclaims, params, executor="inline", progress=False)
    assert again.status == "Succeeded"
    assert again.executed == []
