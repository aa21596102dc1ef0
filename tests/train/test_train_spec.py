"""Specs are validated up front, and a bad value is one ValidationError naming the field and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tideml.errors import ValidationError
from tideml.train import Hyperparameters, TrainSpec, TuneSpec, load_spec_file
from tideml.train.tune import FloatParam


@pytest.mark.parametrize(
    ("data", "field", "fix"),
    [
        ({"eta": 0}, "eta", "learning rate"),
        ({"max_depth": 0}, "max_depth", "tree depth"),
        ({"num_round": -3}, "num_round", "boosting rounds"),
        ({"subsample": 1.5}, "subsample", "row-sampling"),
        ({"scale_pos_weight": "sometimes"}, "scale_pos_weight", "balanced"),
        ({"tree_method": "gpu_magic"}, "tree_method", None),
    ],
)
def test_bad_hyperparameters_name_field_and_fix(data: dict[str, Any], field: str, fix: str | None) -> None:
    with pytest.raises(ValidationError) as info:
        Hyperparameters.parse(data)
    assert info.value.field is not None and info.value.field.startswith(field)
    assert info.value.obj == "Hyperparameters"
    assert info.value.fix
    if fix:
        assert fix in info.value.fix


def test_negative_scale_pos_weight_is_refused() -> None:
    with pytest.raises(ValidationError, match="positive"):
        Hyperparameters.parse({"scale_pos_weight": -1.0})
    assert Hyperparameters.parse({"scale_pos_weight": "balanced"}).scale_pos_weight == "balanced"


def test_nested_field_path_and_unknown_field() -> None:
    with pytest.raises(ValidationError) as info:
        TrainSpec.parse({"hyperparameters": {"max_depth": 99}})
    assert info.value.field == "hyperparameters.max_depth"
    with pytest.raises(ValidationError) as info:
        TrainSpec.parse({"labell": "fraud"})
    assert info.value.field == "labell"
    assert info.value.fix is not None and "label" in info.value.fix


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"features": ["a", "fraud"]}, "label or entity"),
        ({"features": ["a", "a"]}, "twice"),
        ({"label": "x", "entity": "x"}, "different"),
        ({"threshold": {"strategy": "fixed"}}, "needs a value"),
        ({"threshold": {"strategy": "max_f1", "value": 0.3}}, "only used"),
        ({"split": {"test_fraction": 0.5, "validation_fraction": 0.45}}, "at least 10%"),
    ],
)
def test_inconsistent_train_specs(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrainSpec.parse(data)


def test_spec_file_yaml_and_errors_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "spec.yaml"
    good.write_text("label: fraud\nhyperparameters:\n  max_depth: 2\n  eta: 0.1\ncv:\n  folds: 3\n")
    spec = load_spec_file(good, TrainSpec)
    assert (spec.hyperparameters.max_depth, spec.cv is not None and spec.cv.folds) == (2, 3)
    bad = tmp_path / "bad.json"
    bad.write_text('{"hyperparameters": {"eta": 7}}')
    with pytest.raises(ValidationError) as info:
        load_spec_file(bad, TrainSpec)
    assert str(bad) in str(info.value) and info.value.field == "hyperparameters.eta"
    broken = tmp_path / "broken.yaml"
    broken.write_text("label: [unclosed\n")
    with pytest.raises(ValidationError, match="cannot parse"):
        load_spec_file(broken, TrainSpec)
    with pytest.raises(ValidationError, match="no such file"):
        load_spec_file(tmp_path / "missing.yaml", TrainSpec)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"depth": {"type": "int", "low": 1, "high": 3}}, "not a hyperparameter"),
        ({"eta": {"type": "float", "low": 0.0, "high": 0.3, "log": True}}, "log scale needs low > 0"),
        ({"max_depth": {"type": "int", "low": 5, "high": 2}}, "low must not exceed high"),
        ({"max_depth": {"type": "int", "low": 0, "high": 3}}, "not a valid value"),
        ({"tree_method": {"type": "categorical", "choices": ["hist", "nope"]}}, "not a valid value"),
        ({"eta": {"type": "uniform", "low": 0.1, "high": 0.2}}, "does not match"),
    ],
)
def test_bad_search_spaces(space: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TuneSpec.parse({"space": space})


def test_tune_needs_a_budget_and_grid_needs_steps() -> None:
    with pytest.raises(ValidationError, match="ends"):
        TuneSpec.parse({"n_trials": None})
    spec = TuneSpec.parse({"sampler": "grid", "space": {"eta": {"type": "float", "low": 0.1, "high": 0.2}}})
    with pytest.raises(ValidationError, match="step"):
        spec.grid()
    stepped = FloatParam(low=0.1, high=0.3, step=0.1)
    assert stepped.grid() == [0.1, 0.2, 0.3]
