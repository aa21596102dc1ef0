"""`TrainService` on a real workspace: artifacts, study tables and lineage, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa

from tideml.errors import Conflict, IntegrityError, NotFound, ValidationError
from tideml.lineage import ArtifactSpec
from tideml.meta.train_tables import TuningStudy, TuningTrial
from tideml.train import TrainService
from tideml.workspace import Workspace

TRAIN: dict[str, Any] = {"n_jobs": 1, "bootstrap_resamples": 100, "hyperparameters": {"num_round": 80}}
SPACE: dict[str, Any] = {
    "max_depth": {"type": "int", "low": 1, "high": 3},
    "eta": {"type": "float", "low": 0.03, "high": 0.3, "log": True},
}


def test_train_stores_model_and_reports_and_records_lineage(
    any_ws: Workspace, article_frame: pl.DataFrame
) -> None:
    service = TrainService(any_ws)
    run = service.train(article_frame, TRAIN, name="fraud", progress=False)
    # the frame became a Parquet dataset artifact, the input of the action
    assert any_ws.artifacts.exists(run.dataset.sha256)
    assert pl.read_parquet(any_ws.artifacts.local_path(run.dataset.sha256)).equals(article_frame)
    assert run.result.model.spec.dataset_sha256 == run.dataset.sha256
    loaded = service.load_model(run.model.sha256)
    assert np.array_equal(loaded.predict_proba(article_frame), run.result.model.predict_proba(article_frame))
    assert b"<img" in any_ws.artifacts.get(run.report_html_sha256)
    model_id = any_ws.lineage.find_artifact(sha256=run.model.sha256)
    upstream = any_ws.lineage.graph(model_id, "upstream")
    assert {n.sha256 for n in upstream.artifacts("Dataset")} == {run.dataset.sha256}
    (action,) = [n for n in upstream.nodes if n.kind == "action"]
    assert action.type == "train.fit" and action.status == "Completed"
    assert action.properties["results"]["test_roc_auc"] == run.result.evaluation.test.roc_auc
    downstream = any_ws.lineage.graph(any_ws.lineage.find_artifact(sha256=run.dataset.sha256), "downstream")
    assert {n.sha256 for n in downstream.artifacts("Report")} == {run.report_sha256, run.report_html_sha256}


def test_inputs_by_path_and_by_artifact_hash_are_the_same_dataset(
    ws: Workspace, article_frame: pl.DataFrame, tmp_path: Path
) -> None:
    service = TrainService(ws)
    path = tmp_path / "dataset.parquet"
    article_frame.write_parquet(path)
    by_path = service.train(path, TRAIN, progress=False)
    by_hash = service.train(by_path.dataset.sha256, TRAIN, progress=False)
    assert by_hash.dataset.sha256 == by_path.dataset.sha256
    assert by_hash.model.sha256 == by_path.model.sha256  # same data, params, seed: the same model
    with pytest.raises(NotFound):
        service.train("f" * 64, TRAIN, progress=False)
    report = ws.put_artifact(b"{}", "application/json")
    with pytest.raises(ValidationError, match="not a Parquet table"):
        service.train(report.sha256, TRAIN, progress=False)


def test_fitted_flows_upstream_of_the_dataset_land_in_the_model_spec(
    ws: Workspace, article_frame: pl.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "dataset.parquet"
    article_frame.write_parquet(path)
    dataset = ws.put_artifact(path)
    fitted = ArtifactSpec("FittedFlow", "fitted:claims", sha256="e" * 64, name="claims")
    with ws.lineage.action("features.dataset") as act:  # what the feature store will record
        act.input(fitted)
        act.output(ArtifactSpec("Dataset", f"sha256:{dataset.sha256}", sha256=dataset.sha256))
    run = TrainService(ws).train(dataset.sha256, TRAIN, progress=False)
    assert run.result.model.spec.fitted_flow_ids == ["sha256:" + "e" * 64]


def test_tuning_study_and_trials_are_stored(any_ws: Workspace, article_frame: pl.DataFrame) -> None:
    service = TrainService(any_ws)
    tune_spec = {"space": SPACE, "n_trials": 4, "cv_folds": 3}
    run = service.tune(article_frame, tune_spec, TRAIN, study="first", progress=False)
    with any_ws.metadata.session() as s:
        study = s.scalars(sa.select(TuningStudy).where(TuningStudy.name == "first")).one()
        trials = s.scalars(sa.select(TuningTrial).where(TuningTrial.study_id == study.id)).all()
        assert study.state == "COMPLETE" and study.model_sha256 == run.model.sha256
        assert study.best_value == run.result.best.value and study.baseline_value == run.result.baseline_value
        assert sorted(t.number for t in trials) == [0, 1, 2, 3]
        assert all(t.duration_seconds > 0 and set(t.params) == set(SPACE) for t in trials)
    stored = service.trials("first")
    assert [t.params for t in stored] == [t.params for t in run.result.trials]
    listed = service.studies()
    assert [s["name"] for s in listed] == ["first"] and listed[0]["trials"] == 4
    # warm start from the stored trials; a taken name is a conflict
    second = service.tune(
        article_frame, tune_spec, TRAIN, study="second", warm_start_from="first", progress=False
    )
    assert len(second.result.warm_started) == sum(t.state == "COMPLETE" for t in stored)
    with pytest.raises(Conflict, match="exists"):
        service.tune(article_frame, tune_spec, TRAIN, study="first", progress=False)
    with pytest.raises(NotFound):
        service.tune(article_frame, tune_spec, TRAIN, warm_start_from="nope", progress=False)
    actions = any_ws.lineage.actions("train.tune")
    assert [a.status for a in actions] == ["Completed", "Completed"]
    model_id = any_ws.lineage.find_artifact(sha256=run.model.sha256)
    assert any(n.type == "train.tune" for n in any_ws.lineage.graph(model_id, "upstream").nodes)


def test_a_failed_study_is_marked_failed(ws: Workspace, article_frame: pl.DataFrame) -> None:
    service = TrainService(ws)
    with pytest.raises(ValidationError):
        service.tune(
            article_frame.drop("fraud"),
            {"space": SPACE, "n_trials": 2},
            TRAIN,
            study="broken",
            progress=False,
        )
    (row,) = service.studies()
    assert row["name"] == "broken" and row["state"] == "FAILED"
    assert [a.status for a in ws.lineage.actions("train.tune")] == ["Failed"]


def test_mitigation_stores_one_model_per_method(ws: Workspace, article_frame: pl.DataFrame) -> None:
    run = TrainService(ws).mitigate(
        article_frame, TRAIN, methods=["none", "reweighing", "group_thresholds"], progress=False
    )
    assert set(run.models) == {"none", "reweighing", "group_thresholds"}
    assert run.models["none"].booster_sha256 == run.models["group_thresholds"].booster_sha256
    assert run.models["none"].sha256 != run.models["group_thresholds"].sha256  # the specs differ
    loaded = TrainService(ws).load_model(run.models["group_thresholds"].sha256)
    assert loaded.spec.group_thresholds is not None
    (action,) = ws.lineage.actions("train.mitigate")
    assert set(action.parameters["results"]["methods"]) == set(run.models)


def test_tampered_model_artifact_is_refused(ws: Workspace, article_frame: pl.DataFrame) -> None:
    service = TrainService(ws)
    run = service.train(article_frame, TRAIN, progress=False)
    booster_file = ws.artifacts.local_path(run.model.booster_sha256)
    booster_file.chmod(0o644)
    data = bytearray(booster_file.read_bytes())
    data[100] ^= 0xFF
    booster_file.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        service.load_model(run.model.sha256)
    with pytest.raises(IntegrityError, match="not a model spec"):
        service.load_model(run.report_sha256)
