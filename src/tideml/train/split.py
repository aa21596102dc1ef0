"""Entity-grouped, label-stratified splits and folds: no entity ever appears on two sides.

All rows of one entity (e.g. one `policy_id`) go to the same split or fold. An entity counts as positive
if any of its rows is positive; positives and negatives are shuffled separately with a seeded generator
and dealt out in the requested proportions, so every split keeps the base rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tideml.errors import ValidationError
from tideml.train.spec import SplitSpec

__all__ = ["Split", "assert_disjoint_entities", "entity_folds", "entity_split"]

IntArray = npt.NDArray[np.int64]

_TRAIN, _VALIDATION, _TEST = 0, 1, 2


def _entity_codes(entities: npt.NDArray[Any], y: npt.NDArray[Any]) -> tuple[IntArray, IntArray]:
    """Per row: the entity's code (0..E-1, in sorted key order); per entity: 1 if any row is positive."""
    _, codes = np.unique(entities, return_inverse=True)
    codes = codes.astype(np.int64).reshape(-1)
    labels = np.zeros(int(codes.max()) + 1 if codes.size else 0, dtype=np.int64)
    np.maximum.at(labels, codes, np.asarray(y, dtype=np.int64))
    return codes, labels


@dataclass(frozen=True)
class Split:
    """Row indices (sorted) of the train, validation and test splits."""

    train: IntArray
    validation: IntArray
    test: IntArray

    @property
    def development(self) -> IntArray:
        """Train and validation rows together (everything but test)."""
        return np.sort(np.concatenate([self.train, self.validation]))

    def summary(self, y: npt.NDArray[Any], entities: npt.NDArray[Any]) -> dict[str, dict[str, int | float]]:
        """Rows, entities, positives and positive rate of each split."""
        out: dict[str, dict[str, int | float]] = {}
        for name, rows in (("train", self.train), ("validation", self.validation), ("test", self.test)):
            positives = int(np.asarray(y)[rows].sum())
            out[name] = {
                "rows": int(rows.size),
                "entities": int(np.unique(entities[rows]).size),
                "positives": positives,
                "positive_rate": positives / rows.size if rows.size else 0.0,
            }
        return out


def entity_split(entities: npt.NDArray[Any], y: npt.NDArray[Any], spec: SplitSpec, *, seed: int) -> Split:
    """Split rows into train / validation / test by entity, stratified on the label, seeded."""
    codes, labels = _entity_codes(entities, y)
    role = np.full(labels.size, _TRAIN, dtype=np.int64)
    rng = np.random.default_rng(seed)
    strata = (
        [np.flatnonzero(labels == value) for value in (0, 1)] if spec.stratify else [np.arange(labels.size)]
    )
    for members in strata:
        shuffled = rng.permutation(members)
        n = shuffled.size
        n_test = round(n * spec.test_fraction)
        n_val = round(n * spec.validation_fraction)
        if n >= 3:  # a rare class still reaches every split
            n_test, n_val = max(1, n_test), max(1, n_val)
        role[shuffled[:n_test]] = _TEST
        role[shuffled[n_test : n_test + n_val]] = _VALIDATION
    row_role = role[codes]
    split = Split(
        train=np.flatnonzero(row_role == _TRAIN).astype(np.int64),
        validation=np.flatnonzero(row_role == _VALIDATION).astype(np.int64),
        test=np.flatnonzero(row_role == _TEST).astype(np.int64),
    )
    yy = np.asarray(y)
    for name, rows in (("train", split.train), ("validation", split.validation), ("test", split.test)):
        if rows.size == 0 or np.unique(yy[rows]).size < 2:
            raise ValidationError(
                f"the {name} split has {int(yy[rows].sum())} positive and {int((yy[rows] == 0).sum())} "
                "negative rows; every split needs both",
                obj="split",
                field=name,
                fix="pass more entities (at least 3 positive ones) or change the split fractions",
            )
    assert_disjoint_entities(entities, split.train, split.validation, split.test)
    return split


def entity_folds(entities: npt.NDArray[Any], y: npt.NDArray[Any], folds: int, *, seed: int) -> IntArray:
    """The fold (0..folds-1) of every row: entity-grouped, stratified on the label, seeded."""
    codes, labels = _entity_codes(entities, y)
    if int(labels.sum()) < folds:
        raise ValidationError(
            f"{int(labels.sum())} positive entities cannot fill {folds} folds",
            obj="cross-validation",
            field="folds",
            fix="use fewer folds or more data",
        )
    fold_of = np.empty(labels.size, dtype=np.int64)
    rng = np.random.default_rng(seed)
    offset = 0
    for value in (0, 1):
        members = rng.permutation(np.flatnonzero(labels == value))
        # continue the round-robin where the previous stratum stopped, so fold sizes differ by <= 1
        fold_of[members] = (np.arange(members.size) + offset) % folds
        offset = (offset + members.size) % folds
    return fold_of[codes]


def assert_disjoint_entities(entities: npt.NDArray[Any], *row_sets: npt.NDArray[np.int64]) -> None:
    """Raise if any entity has rows in two of the given row sets (the article's test leak)."""
    seen: set[Any] = set()
    for rows in row_sets:
        keys = set(np.unique(entities[rows]).tolist())
        shared = seen & keys
        if shared:
            example = sorted(shared, key=str)[0]
            raise ValidationError(
                f"{len(shared)} entities appear in two splits (e.g. {example!r})",
                obj="split",
                fix="split by entity with tideml.train.split.entity_split",
            )
        seen |= keys
