"""Closing the loop on the flagship: serve → capture → drifted traffic → violation → retraining run →
a new version registered pending approval, linked to the violation in lineage."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient

from tideml import Workspace
from tideml.pipelines import run_pipeline
from tideml.serving.app import create_app
from tideml.serving.runtime import EndpointRuntime

sys.path.insert(0, str(Path(__file__).parent))
from test_autoclaims_pipeline import REPO, load_example


@pytest.mark.slow
def test_drifted_traffic_starts_a_retraining_run(workspace: Workspace, article_data: Path) -> None:
    example = load_example()
    params = {
        "claims": str(article_data / "claims.csv"),
        "customers": str(article_data / "customers.csv"),
        "trials": 3,
        "cv_max_rows": 1000,  # tune as at scale: one fit per trial, scored on the validation split
    }
    first = run_pipeline(workspace, example.autoclaims, params, executor="inline", progress=False)
    assert first.status == "Succeeded"
    assert first.output(workspace, "tune")["objective"] == "validation_auc"
    data = pl.read_parquet(workspace.artifacts.local_path(first.output(workspace, "dataset")["sha256"]))
    features = [c for c in data.columns if c not in ("policy_id", "fraud")]
    _, baseline = workspace.monitor.suggest_baseline(data.select(features))

    # Traffic in which every customer has had three more insurers than anyone in training.
    drifted = data.sample(300, seed=0).with_columns(pl.col("num_insurers_past_5_years") + 3)
    runtime = EndpointRuntime(workspace, "autoclaims", warm_explainer_after=None)
    with TestClient(create_app(runtime)) as client:
        for row in drifted.select(features).to_dicts():
            assert client.post("/invocations", json={"features": row}).status_code == 200
    # Leaving the client stopped the capture writer: its files are complete.

    retrain = {**params, "seed": 1, "auto_approve": False}
    workspace.monitor.create(
        "fraud-drift",
        baseline=baseline,
        endpoint="autoclaims",
        trigger={"pipeline": f"{REPO / 'examples/autoclaims/pipeline.py'}:autoclaims", "parameters": retrain},
    )
    outcome = workspace.monitor.run("fraud-drift", progress=False)
    assert outcome.result is not None
    flagged = {v.feature_name for v in outcome.result.violations}
    assert "num_insurers_past_5_years" in flagged
    assert outcome.launched is not None, outcome.trigger_error

    retrained = workspace.registry.get_version("autoclaims-fraud/2")
    assert retrained.status == "PendingManualApproval"
    assert workspace.registry.get_version("autoclaims-fraud@production").version == 1
    trigger = workspace.lineage.actions("monitor.trigger")
    assert trigger and trigger[-1].status == "Completed"
    steps = workspace.pipelines.show(outcome.launched.run_id).steps
    assert {s.step: s.status for s in steps}["register"] == "Succeeded"
