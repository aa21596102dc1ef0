"""Where a request's features come from: the online feature groups, or a fitted flow over a raw claim.

Two small protocols keep the request path testable and the backends swappable:

* `FeatureLookup.lookup(keys)` reads several `(group, record id)` records in ONE round trip per store
  (`OnlineStoreLookup` over any `tideml.features` online store: SQLite, Redis, memory);
* `RecordTransformer.transform_record(raw)` turns a raw record into features (`FlowTransformer` over a
  `tideml.wrangle.FittedFlow`).

`plan_features` maps each model feature to the online group that holds it, once per model version, so
a request only builds the list of keys to read.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import orjson

from tideml.errors import ValidationError

__all__ = [
    "FeatureLookup",
    "FeaturePlan",
    "FeatureSource",
    "FlowTransformer",
    "GroupInfo",
    "OnlineStoreLookup",
    "RecordTransformer",
    "plan_features",
]


@runtime_checkable
class FeatureLookup(Protocol):
    """Reads the latest records of several (group, id) keys in one round trip."""

    def lookup(self, keys: Sequence[tuple[str, str]]) -> list[dict[str, Any] | None]:
        """The feature values of each key, in order; None when absent, deleted or expired.

        Raises `StoreUnavailable` when the store cannot be reached.
        """
        ...

    def ping(self) -> None:
        """Raise `StoreUnavailable` if the store cannot be reached."""
        ...


@runtime_checkable
class RecordTransformer(Protocol):
    """Turns one raw record into model features (a fitted flow's `transform_record`)."""

    @property
    def columns(self) -> Sequence[str]:
        """The names of the features it produces."""
        ...

    def transform_record(self, record: Mapping[str, Any]) -> dict[str, Any] | None:
        """The features of one raw record, or None if the flow drops it."""
        ...


class _StoreBackend(Protocol):
    def read_many(self, keys: Sequence[tuple[str, str]]) -> Sequence[Any]: ...

    def ping(self) -> None: ...


class OnlineStoreLookup:
    """`FeatureLookup` over a `tideml.features` online store backend (`read_many`: one round trip)."""

    def __init__(self, store: _StoreBackend) -> None:
        self.store = store

    def lookup(self, keys: Sequence[tuple[str, str]]) -> list[dict[str, Any] | None]:
        now_us = time.time_ns() // 1000
        out: list[dict[str, Any] | None] = []
        for stored in self.store.read_many(keys):
            if stored is None or stored.payload is None or not stored.visible(now_us):
                out.append(None)
            else:
                out.append(orjson.loads(stored.payload))
        return out

    def ping(self) -> None:
        self.store.ping()


class FlowTransformer:
    """`RecordTransformer` over a fitted flow (`tideml.wrangle.FittedFlow`)."""

    def __init__(self, fitted: Any, *, output: str | None = None) -> None:
        self.fitted = fitted
        self.output = output
        self._columns = tuple(fitted.output_schema(output))
        self.name = str(getattr(fitted, "name", "flow"))

    @property
    def columns(self) -> Sequence[str]:
        return self._columns

    def transform_record(self, record: Mapping[str, Any]) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.fitted.transform_record(record, output=self.output)
        return result


@dataclass(frozen=True)
class GroupInfo:
    """What planning needs to know about an online feature group."""

    name: str
    record_identifier: str
    integral_id: bool
    features: frozenset[str]
    event_time: str = ""


@dataclass(frozen=True)
class FeatureSource:
    """The model features one group supplies: (index in the model's order, name in the group)."""

    group: str
    integral_id: bool
    columns: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class FeaturePlan:
    """How to assemble a model's feature row from the online store."""

    entity: str | None
    sources: tuple[FeatureSource, ...]
    uncovered: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "groups": {s.group: [name for _, name in s.columns] for s in self.sources},
            "uncovered": list(self.uncovered),
        }


def plan_features(
    features: Sequence[str],
    *,
    entity: str | None,
    groups: Sequence[GroupInfo],
    label: str | None = None,
    obj: str = "model",
) -> FeaturePlan:
    """Map every model feature to the one group keyed by `entity` that holds it.

    A `group__feature` name (a dataset built with full feature names) names its group. A feature held
    by two groups is ambiguous: restrict the endpoint's `feature_groups`. The label is never read.
    """
    if entity is None:
        return FeaturePlan(None, (), tuple(features))
    usable = {g.name: g for g in groups if g.record_identifier == entity}
    by_group: dict[str, list[tuple[int, str]]] = {}
    uncovered: list[str] = []
    for i, name in enumerate(features):
        if name == label:
            continue
        prefix, sep, rest = name.partition("__")
        if sep and prefix in usable and rest in usable[prefix].features:
            by_group.setdefault(prefix, []).append((i, rest))
            continue
        holders = [
            g.name
            for g in usable.values()
            if name in g.features and name not in (g.record_identifier, g.event_time)
        ]
        if len(holders) > 1:
            raise ValidationError(
                f"feature {name!r} is in several online groups ({', '.join(sorted(holders))})",
                obj=obj,
                field="feature_groups",
                fix="deploy with feature_groups=[...] naming the groups to read (one per feature)",
            )
        if holders:
            by_group.setdefault(holders[0], []).append((i, name))
        else:
            uncovered.append(name)
    sources = tuple(
        FeatureSource(g, usable[g].integral_id, tuple(cols)) for g, cols in sorted(by_group.items())
    )
    return FeaturePlan(entity, sources, tuple(uncovered))
