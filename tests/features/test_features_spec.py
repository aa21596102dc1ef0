"""Feature group specs: the SageMaker rules, clear errors, schema inference, evolution."""

from __future__ import annotations

from typing import Any

import pandas as pd
import polars as pl
import pytest

from tideml.errors import ValidationError
from tideml.features.spec import (
    FeatureDefinition,
    FeatureGroupSpec,
    FeatureType,
    TtlDuration,
    infer_feature_definitions,
)


def spec_dict(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "claims",
        "record_identifier": "policy_id",
        "event_time": "event_time",
        "features": [
            {"name": "policy_id", "type": "Integral", "nullable": False},
            {"name": "event_time", "type": "Fractional", "nullable": False},
            {"name": "amount", "type": "Fractional"},
        ],
    }
    base.update(over)
    return base


def test_valid_spec_round_trips_through_json() -> None:
    spec = FeatureGroupSpec.from_dict(spec_dict(online={"ttl": {"unit": "Days", "value": 2}}))
    assert spec.ttl_seconds == 172800
    assert [f.name for f in spec.value_features] == ["amount"]
    assert FeatureGroupSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("over", "field", "text"),
    [
        ({"record_identifier": "nope"}, "record_identifier", "not one of the features"),
        ({"event_time": "amount2"}, "event_time", "not one of the features"),
        ({"name": "bad name"}, "name", "not a valid feature group name"),
        ({"name": "claims_latest"}, "name", "_latest"),
        ({"online": {"enabled": False}, "offline": {"enabled": False}}, "online.enabled", "at least one"),
        ({"features": []}, "features", "1 to 2500"),
        ({"colour": "red"}, "colour", "extra"),
    ],
)
def test_invalid_specs_name_the_field(over: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(ValidationError) as err:
        FeatureGroupSpec.from_dict(spec_dict(**over))
    assert err.value.field == field
    assert text in str(err.value)
    assert err.value.fix


def test_reserved_duplicate_and_bad_types_are_refused() -> None:
    with pytest.raises(ValidationError, match="reserved system column"):
        FeatureDefinition(name="write_time", type=FeatureType.INTEGRAL)
    feats = spec_dict()["features"] + [{"name": "AMOUNT", "type": "Integral"}]
    with pytest.raises(ValidationError, match="defined twice"):
        FeatureGroupSpec.from_dict(spec_dict(features=feats))
    feats = [{**spec_dict()["features"][0], "nullable": True}, *spec_dict()["features"][1:]]
    with pytest.raises(ValidationError, match="cannot be nullable"):
        FeatureGroupSpec.from_dict(spec_dict(features=feats))
    feats = [{"name": "policy_id", "type": "Whole", "nullable": False}, *spec_dict()["features"][1:]]
    with pytest.raises(ValidationError) as err:
        FeatureGroupSpec.from_dict(spec_dict(features=feats))
    assert err.value.field == "features.0.type" and "Integral" in str(err.value)


def test_features_can_be_added_never_retyped_and_ttl_changed() -> None:
    spec = FeatureGroupSpec.from_dict(spec_dict())
    new = spec.with_changes(
        add_features=[FeatureDefinition(name="region", type=FeatureType.STRING)], ttl=TtlDuration.parse("12h")
    )
    assert new.feature_names[-1] == "region" and new.ttl_seconds == 43200
    with pytest.raises(ValidationError, match="already has a feature 'amount'"):
        spec.with_changes(add_features=[FeatureDefinition(name="amount", type=FeatureType.STRING)])
    with pytest.raises(ValidationError, match="must be nullable"):
        spec.with_changes(add_features=[FeatureDefinition(name="x", type=FeatureType.STRING, nullable=False)])
    assert new.with_changes(ttl=None).ttl_seconds is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("15m", 900), ("2h", 7200), ("7d", 604800), ("1w", 604800)]
)
def test_ttl_parse(text: str, seconds: int) -> None:
    assert TtlDuration.parse(text).seconds == seconds


def test_ttl_parse_refuses_nonsense() -> None:
    for bad in ("0d", "7 days", "-1h", ""):
        with pytest.raises(ValidationError, match="not a duration"):
            TtlDuration.parse(bad)


def test_inference_from_polars_and_pandas() -> None:
    frame = pl.DataFrame(
        {"id": [1, 2], "t": [1.5, 2.5], "n": [3, None], "s": ["a", "b"], "b": [True, False], "x": [0.1, 0.2]}
    )
    defs = infer_feature_definitions(frame, record_identifier="id", event_time="t")
    assert [(d.name, d.type.value, d.nullable) for d in defs] == [
        ("id", "Integral", False),
        ("t", "Fractional", False),
        ("n", "Integral", True),
        ("s", "String", True),
        ("b", "Integral", True),
        ("x", "Fractional", True),
    ]
    pdf = pd.DataFrame({"id": ["a"], "ts": pd.to_datetime(["2024-01-01"]), "v": [1]})
    defs = infer_feature_definitions(pl.from_pandas(pdf), record_identifier="id", event_time="ts")
    assert [d.type for d in defs] == [FeatureType.STRING, FeatureType.STRING, FeatureType.INTEGRAL]
    with pytest.raises(ValidationError, match="only be the event time"):
        infer_feature_definitions(pl.from_pandas(pdf), record_identifier="id", event_time="v")
