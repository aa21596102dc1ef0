"""Tuning: samplers, budgets, pruning, warm start, parallel trials, baseline and refit."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from tideml.train import TrialRecord, TuneSpec, tune

SMALL_SPACE: dict[str, Any] = {
    "max_depth": {"type": "int", "low": 1, "high": 3},
    "eta": {"type": "float", "low": 0.02, "high": 0.3, "log": True},
    "num_round": {"type": "int", "low": 20, "high": 120, "step": 20},
}
TRAIN: dict[str, Any] = {"n_jobs": 1, "bootstrap_resamples": 100}


def _spec(**kw: Any) -> dict[str, Any]:
    return {"space": SMALL_SPACE, "cv_folds": 3, "n_trials": 6, **kw}


def test_tpe_study_is_seeded_and_beats_the_articles_parameters(article_frame: pl.DataFrame) -> None:
    seen: list[TrialRecord] = []
    a = tune(article_frame, _spec(n_trials=8), TRAIN, on_trial=seen.append, progress=False)
    b = tune(article_frame, _spec(n_trials=8), TRAIN, progress=False)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.value for t in a.trials] == [t.value for t in b.trials]
    assert sorted(t.number for t in seen) == list(range(8))
    complete = [t for t in a.trials if t.state == "COMPLETE"]
    assert a.best.value == max(t.value for t in complete if t.value is not None)
    assert a.baseline_value is not None and a.best.value is not None
    assert a.best.value > a.baseline_value  # max_depth 3, eta 0.2, 100 rounds, same folds
    for t in complete:
        assert len(t.metrics["fold_auc"]) == 3 and t.duration_seconds > 0
    # the best parameters were refit on the train split and tested; the article's refit beside it
    assert a.refit.model.spec.params["max_depth"] == a.best.params["max_depth"]
    assert a.refit.model.spec.num_trees == a.best.params["num_round"]  # searched rounds are kept
    assert a.baseline_refit is not None and a.baseline_refit.model.spec.num_trees == 100
    summary = a.summary()
    assert summary["beats_baseline"] is True and summary["trials"] == 8
    assert summary["tuned"]["test_auc"] == a.refit.evaluation.test.roc_auc


def test_grid_search_covers_the_grid(article_frame: pl.DataFrame) -> None:
    space = {
        "max_depth": {"type": "int", "low": 1, "high": 2},
        "eta": {"type": "categorical", "choices": [0.1, 0.3]},
    }
    result = tune(
        article_frame,
        {
            "space": space,
            "sampler": "grid",
            "n_trials": 50,
            "cv_folds": 3,
            "pruning": False,
            "baseline": None,
        },
        {**TRAIN, "hyperparameters": {"num_round": 30}},
        progress=False,
    )
    assert len(result.trials) == 4  # the budget is capped at the grid's size
    assert sorted((t.params["max_depth"], t.params["eta"]) for t in result.trials) == [
        (1, 0.1),
        (1, 0.3),
        (2, 0.1),
        (2, 0.3),
    ]
    assert result.baseline_value is None and result.baseline_refit is None


def test_random_sampler_validation_objective_and_time_budget(article_frame: pl.DataFrame) -> None:
    result = tune(
        article_frame,
        _spec(
            sampler="random", objective="validation_auc", n_trials=None, timeout_seconds=1.5, pruning=False
        ),
        TRAIN,
        progress=False,
    )
    assert 1 <= len(result.trials) < 200
    assert all("validation_auc" in t.metrics for t in result.trials if t.state == "COMPLETE")
    assert result.best.value == pytest.approx(max(t.value or 0 for t in result.trials))


def test_pruning_stops_weak_trials(article_frame: pl.DataFrame) -> None:
    space = {
        "eta": {"type": "float", "low": 0.0005, "high": 0.3, "log": True},
        "max_depth": {"type": "int", "low": 1, "high": 6},
    }
    result = tune(
        article_frame,
        {"space": space, "sampler": "random", "n_trials": 16, "cv_folds": 4, "baseline": None},
        {**TRAIN, "hyperparameters": {"num_round": 30, "early_stopping_rounds": None}},
        progress=False,
    )
    states = [t.state for t in result.trials]
    assert "PRUNED" in states and "COMPLETE" in states
    for t in result.trials:
        if t.state == "PRUNED":
            assert t.value is None and len(t.metrics) == 0


def test_validation_pruning_reports_the_auc_of_the_model_so_far() -> None:
    """The pruning callback reads XGBoost's prediction cache; it must see what the model predicts."""
    import numpy as np
    import optuna
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score

    from tideml.train.spec import Hyperparameters
    from tideml.train.trainer import fit_booster
    from tideml.train.tune import _PruneOnValidation

    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 5)).astype(np.float32)
    y = (X[:, 0] + rng.normal(size=3000) > 1).astype(np.float32)
    Xv = rng.normal(size=(1000, 5)).astype(np.float32)
    yv = (Xv[:, 0] + rng.normal(size=1000) > 1).astype(np.float32)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    dval = xgb.DMatrix(Xv, label=yv)
    hp = Hyperparameters(num_round=30, early_stopping_rounds=None, eta=0.3)
    booster, _ = fit_booster(
        X,
        y,
        hp,
        X_validation=dval,
        y_validation=yv,
        nthread=1,
        callbacks=[_PruneOnValidation(trial, dval, yv)],
    )
    reported = study._storage.get_trial(trial._trial_id).intermediate_values
    assert sorted(reported) == [10, 20, 30]
    for rounds, value in reported.items():
        assert value == pytest.approx(roc_auc_score(yv, booster[:rounds].inplace_predict(Xv)), abs=1e-9)


def test_warm_start_and_parallel_trials(article_frame: pl.DataFrame) -> None:
    first = tune(article_frame, _spec(n_trials=4, baseline=None), TRAIN, progress=False)
    second = tune(
        article_frame,
        _spec(n_trials=4, n_jobs=2, baseline=None),
        TRAIN,
        warm_start=first.trials,
        progress=False,
    )
    complete_before = [t for t in first.trials if t.state == "COMPLETE"]
    assert len(second.warm_started) == len(complete_before)
    assert all(t.warm_start for t in second.warm_started)
    assert len(second.trials) == 4  # the budget counts new trials only
    assert {t.number for t in second.trials} == set(range(len(complete_before), len(complete_before) + 4))
    assert second.best.value is not None and first.best.value is not None
    assert second.best.value >= first.best.value  # the earlier best is still in the study
    # trials from a different space are skipped, not forced in
    other = TrialRecord(number=0, state="COMPLETE", params={"gamma": 1.0}, value=0.99, duration_seconds=1.0)
    third = tune(article_frame, _spec(n_trials=2, baseline=None), TRAIN, warm_start=[other], progress=False)
    assert third.warm_started == [] and third.best.value != 0.99


def test_default_space_is_valid() -> None:
    spec = TuneSpec.parse({})
    assert spec.n_trials == 30 and spec.sampler == "tpe" and "max_depth" in spec.space
