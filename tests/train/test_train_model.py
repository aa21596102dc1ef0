"""The model artifact: UBJSON + JSON spec, deterministic bytes, refusal of corrupt or mismatched files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import xgboost as xgb

from tideml.errors import IntegrityError, NotFound, ValidationError
from tideml.train import TrainedModel, train
from tideml.train.model import BOOSTER_FILE, SPEC_FILE


@pytest.fixture(scope="module")
def small(article_frame: pl.DataFrame) -> pl.DataFrame:
    return article_frame.head(3000)


def _spec(**hp: Any) -> dict[str, Any]:
    return {
        "n_jobs": 1,
        "bootstrap_resamples": 100,
        "hyperparameters": {"num_round": 80, "subsample": 0.8, "colsample_bytree": 0.7, **hp},
    }


def test_same_data_params_and_seed_give_identical_bytes(small: pl.DataFrame, tmp_path: Path) -> None:
    a = train(small, _spec(), progress=False).model
    b = train(small, _spec(), progress=False).model
    assert a.to_bytes() == b.to_bytes()
    # the thread count does not change the trees (a small model: two threads crawl on a busy machine)
    quick = {**_spec(), "hyperparameters": {"num_round": 6, "subsample": 0.8}}
    one = train(small, quick, progress=False).model
    two = train(small, {**quick, "n_jobs": 2}, progress=False).model
    assert one.booster_bytes() == two.booster_bytes()
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    for name in (SPEC_FILE, BOOSTER_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    other_seed = train(small, {**_spec(), "seed": 1}, progress=False).model
    assert other_seed.booster_bytes() != a.booster_bytes()


def test_round_trip_scores_identically_and_files_are_not_pickles(small: pl.DataFrame, tmp_path: Path) -> None:
    model = train(small, _spec(), progress=False).model
    model.save(tmp_path / "m")
    spec = json.loads((tmp_path / "m" / SPEC_FILE).read_text())
    assert spec["format"] == "tideml.model/1"
    assert [f["name"] for f in spec["features"]] == list(model.spec.feature_names)
    assert {"threshold", "label", "dataset_sha256", "fitted_flow_ids", "params", "metrics"} <= spec.keys()
    raw = xgb.Booster()
    raw.load_model(str(tmp_path / "m" / BOOSTER_FILE))  # plain XGBoost reads it: UBJSON, not pickle
    loaded = TrainedModel.load(tmp_path / "m")
    assert np.array_equal(loaded.predict_proba(small), model.predict_proba(small))
    shuffled = small.select(list(reversed(small.columns)))  # columns are matched by name, not position
    assert np.array_equal(loaded.predict_proba(shuffled), model.predict_proba(small))
    decisions = loaded.predict(small)
    assert np.array_equal(decisions, (model.predict_proba(small) >= model.spec.threshold).astype(np.int64))


def test_corrupt_booster_is_refused(small: pl.DataFrame, tmp_path: Path) -> None:
    model = train(small, _spec(), progress=False).model
    folder = model.save(tmp_path / "m")
    data = bytearray((folder / BOOSTER_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / BOOSTER_FILE).write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="sha256") as info:
        TrainedModel.load(folder)
    assert info.value.field == "booster_sha256" and info.value.fix


def test_mismatched_spec_and_booster_are_refused(small: pl.DataFrame, tmp_path: Path) -> None:
    a = train(small, _spec(), progress=False).model
    b = train(small, _spec(max_depth=2), progress=False).model
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    (tmp_path / "a" / BOOSTER_FILE).write_bytes((tmp_path / "b" / BOOSTER_FILE).read_bytes())
    with pytest.raises(IntegrityError, match="spec expects"):
        TrainedModel.load(tmp_path / "a")


def test_edited_or_broken_spec_is_refused(small: pl.DataFrame, tmp_path: Path) -> None:
    model = train(small, _spec(), progress=False).model
    folder = model.save(tmp_path / "m")
    spec = json.loads((folder / SPEC_FILE).read_text())
    spec["features"] = spec["features"][:-1]  # the booster still has all of them
    (folder / SPEC_FILE).write_text(json.dumps(spec))
    with pytest.raises(IntegrityError, match="features") as info:
        TrainedModel.load(folder)
    assert info.value.field == "features"
    (folder / SPEC_FILE).write_text('{"format": "tideml.model/1", "label": ')
    with pytest.raises(IntegrityError, match="not valid JSON"):
        TrainedModel.load(folder)
    (folder / SPEC_FILE).write_text('{"format": "sklearn-pickle"}')
    with pytest.raises(IntegrityError, match="not a tideml model spec"):
        TrainedModel.load(folder)
    spec["features"] = spec["features"] + [{"name": "x"}]
    (folder / SPEC_FILE).write_text(json.dumps({**spec, "threshold": 3.0}))
    with pytest.raises(IntegrityError, match="invalid"):
        TrainedModel.load(folder)
    with pytest.raises(NotFound):
        TrainedModel.load(tmp_path / "nowhere")


def test_scoring_data_must_carry_every_feature(small: pl.DataFrame) -> None:
    model = train(small, _spec(), progress=False).model
    with pytest.raises(ValidationError, match="missing") as info:
        model.predict_proba(small.drop("num_injuries"))
    assert info.value.field == "num_injuries"
    with pytest.raises(ValidationError, match="not a number"):
        model.predict_proba(small.with_columns(pl.col("num_injuries").cast(pl.String)))
    with pytest.raises(ValidationError, match="columns"):
        model.predict_matrix(np.zeros((2, 3), dtype=np.float32))
