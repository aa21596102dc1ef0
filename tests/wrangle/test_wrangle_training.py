"""Training-only steps: balance and split resample in training mode and pass rows through otherwise."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tideml.errors import ValidationError
from tideml.wrangle import Flow

DATA = pl.DataFrame(
    {
        "id": list(range(100)),
        "group": [i % 10 for i in range(100)],
        "x": [float(i) for i in range(100)],
        "y": [i * 2 for i in range(100)],
        "label": [1 if i % 10 == 0 else 0 for i in range(100)],
    }
)


def flow(*steps: dict[str, Any], outputs: dict[str, str] | None = None) -> Flow:
    return Flow.from_dict(
        {
            "version": 1,
            "name": "t",
            "sources": {"t": {"kind": "csv"}},
            "steps": list(steps),
            "outputs": outputs or {},
        }
    )


@pytest.mark.parametrize(
    ("method", "ratio", "counts"),
    [
        ("random_oversample", 1.0, (90, 90)),
        ("random_oversample", 0.5, (90, 45)),
        ("random_undersample", 0.5, (20, 10)),
    ],
)
def test_random_resampling_reaches_the_ratio(method: str, ratio: float, counts: tuple[int, int]) -> None:
    f = flow({"op": "balance", "target": "label", "method": method, "ratio": ratio, "seed": 1})
    fitted, outputs = f.fit_transform(DATA)
    out = outputs["t"]
    assert (out.filter(pl.col("label") == 0).height, out.filter(pl.col("label") == 1).height) == counts
    # every output row is an input row (resampling copies rows, it does not invent them)
    assert out.join(DATA, on=list(DATA.columns), how="anti").height == 0
    assert_frame_equal(fitted.transform(DATA), DATA)  # inference mode: unchanged
    again = fitted.transform(DATA, training=True)
    assert_frame_equal(again, out)  # seeded


def test_smote_synthesises_minority_rows_between_neighbours() -> None:
    f = flow(
        {"op": "select_columns", "columns": ["x", "y", "label"]},
        {"op": "balance", "target": "label", "method": "smote", "seed": 42, "k_neighbors": 3},
    )
    _, outputs = f.fit_transform(DATA)
    out = outputs["t"]
    assert out.schema == DATA.select("x", "y", "label").schema
    assert out.filter(pl.col("label") == 1).height == 90
    synthetic = out.slice(100)
    assert synthetic.height == 80 and set(synthetic["label"]) == {1}
    # interpolated between minority points (0, 10, …, 90), integers rounded
    assert synthetic["x"].min() >= 0.0 and synthetic["x"].max() <= 90.0
    assert synthetic["x"].round(6).to_list() != synthetic["x"].round(0).to_list()


def test_smote_refuses_text_columns() -> None:
    f = flow(
        {"op": "cast", "columns": {"group": "string"}},
        {"op": "balance", "target": "label", "method": "smote"},
    )
    with pytest.raises(ValidationError, match=r"steps\[1\] \(balance\): group: wrong type"):
        f.fit(DATA)


def test_balance_needs_a_binary_label() -> None:
    f = flow({"op": "balance", "target": "group", "method": "random_oversample"})
    with pytest.raises(ValidationError, match="binary label; found 10 classes"):
        f.fit_transform(DATA)


def test_random_split_has_exact_proportions_and_is_seeded() -> None:
    f = flow(
        {"op": "split", "frames": {"train": 0.7, "valid": 0.1, "test": 0.2}, "seed": 3},
        outputs={"train": "train", "valid": "valid", "test": "test"},
    )
    fitted, parts = f.fit_transform(DATA)
    assert [parts[n].height for n in ("train", "valid", "test")] == [70, 10, 20]
    ids = [set(parts[n]["id"]) for n in ("train", "valid", "test")]
    assert set().union(*ids) == set(range(100)) and sum(len(i) for i in ids) == 100
    assert parts["train"]["id"].to_list() == sorted(parts["train"]["id"].to_list())  # original order kept
    again = fitted.transform_all(DATA, training=True)
    for name in parts:
        assert_frame_equal(again[name], parts[name])
    other = f.fit(DATA).transform_all(DATA, training=True)
    assert_frame_equal(other["train"], parts["train"])
    inference = fitted.transform_all(DATA)
    for name in parts:
        assert_frame_equal(inference[name], DATA)


def test_stratified_split_keeps_the_label_share() -> None:
    f = flow(
        {
            "op": "split",
            "frames": {"a": 0.5, "b": 0.5},
            "method": "stratified",
            "stratify_by": "label",
            "seed": 9,
        },
        outputs={"a": "a", "b": "b"},
    )
    _, parts = f.fit_transform(DATA)
    assert [parts[n]["label"].sum() for n in ("a", "b")] == [5, 5]


def test_key_split_keeps_each_key_on_one_side() -> None:
    f = flow(
        {"op": "split", "frames": {"train": 0.8, "test": 0.2}, "method": "key", "key": ["group"], "seed": 0},
        outputs={"train": "train", "test": "test"},
    )
    _, parts = f.fit_transform(DATA)
    train, test = set(parts["train"]["group"]), set(parts["test"]["group"])
    assert len(train) == 8 and len(test) == 2 and not train & test
    assert parts["train"].height == 80


def test_steps_after_a_split_are_fitted_on_the_training_part_only() -> None:
    f = flow(
        {"op": "split", "frames": {"train": 0.5, "test": 0.5}, "method": "key", "key": ["id"], "seed": 2},
        {"op": "scale", "frame": "train", "columns": ["x"], "method": "minmax"},
        outputs={"train": "train"},
    )
    fitted, parts = f.fit_transform(DATA)
    train_ids = parts["train"]["id"]
    x = DATA.filter(pl.col("id").is_in(train_ids.implode()))["x"]
    state = fitted.steps[1].state.columns["x"]  # type: ignore[attr-defined]
    assert (state.center, state.scale) == (x.min(), x.max() - x.min())
    assert parts["train"]["x"].min() == 0.0 and parts["train"]["x"].max() == 1.0
