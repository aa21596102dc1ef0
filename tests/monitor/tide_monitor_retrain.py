"""A small retraining pipeline the monitor tests trigger: train on fresh (drifted) data, register the
model as a new version pending approval."""

from __future__ import annotations

from typing import Any

import xgboost as xgb
from tests_monitor_support import MODEL_FEATURES

from tideml.datasets.drift import AutoclaimsDrift, drifted_autoclaims_frames
from tideml.pipelines import pipeline, step


def train_and_register(workspace: str, group: str, rows: int, seed: int) -> dict[str, Any]:
    """Train on a drifted population and register the model (PendingManualApproval)."""
    from tideml.monitor.quality import auc_score
    from tideml.workspace import Workspace

    drift = AutoclaimsDrift(
        extra_insurers=0.6, new_state="UT", new_state_share=0.2, fraud_pattern=1.0, seed=5
    )
    customers, claims = drifted_autoclaims_frames(policies=rows, seed=seed, drift=drift)
    frame = customers.join(claims, on="policy_id")
    x = frame.select(MODEL_FEATURES).to_numpy()
    y = frame["fraud"].to_numpy()
    half = rows // 2
    dm = xgb.DMatrix(x[:half], label=y[:half], feature_names=MODEL_FEATURES)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "eta": 0.2, "nthread": 1}, dm, 30)
    auc = auc_score(y[half:], booster.inplace_predict(x[half:])) or 0.0
    with Workspace.open(workspace) as ws:
        ref = ws.put_artifact(bytes(booster.save_raw("ubj")), "application/ubjson")
        version = ws.registry.register(group, ref.sha256, metrics={"test_auc": auc})
    return {"ref": version.ref, "status": version.status, "model_sha256": ref.sha256, "test_auc": auc}


@step
def retrain_model(workspace: str, group: str, rows: int, seed: int) -> dict[str, Any]:
    """The pipeline's one step."""
    return train_and_register(workspace, group, rows, seed)


@pipeline
def retrain(workspace: str = "", group: str = "fraud", rows: int = 4000, seed: int = 7) -> None:
    """Retrain the fraud model on recent data and register it for approval."""
    retrain_model(workspace=workspace, group=group, rows=rows, seed=seed)
