"""Feature group specs: typed feature definitions, a record identifier, an event time and store configs.

The rules follow SageMaker's `CreateFeatureGroup` (names of 1-64 characters, at most 2,500 features, the
record identifier and event time must be defined features, reserved system column names) with two
additions: a per-feature `nullable` flag and an Integral event time (epoch seconds).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Literal

import polars as pl
import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tideml.errors import TideError, ValidationError

__all__ = [
    "MAX_FEATURES",
    "RESERVED_NAMES",
    "FeatureDefinition",
    "FeatureGroupSpec",
    "FeatureType",
    "OfflineStoreConfig",
    "OnlineStoreConfig",
    "TtlDuration",
    "infer_feature_definitions",
    "validate_group_name",
]

MAX_FEATURES = 2500
RESERVED_NAMES = frozenset({"is_deleted", "write_time", "api_invocation_time"})
_GROUP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_FEATURE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_TTL_TEXT = re.compile(r"\s*(\d+)\s*([smhdw])\s*")
_UNIT_SECONDS = {"Seconds": 1, "Minutes": 60, "Hours": 3600, "Days": 86400, "Weeks": 604800}
_UNIT_LETTER = {"s": "Seconds", "m": "Minutes", "h": "Hours", "d": "Days", "w": "Weeks"}


class FeatureType(StrEnum):
    """The three scalar types of SageMaker Feature Store."""

    INTEGRAL = "Integral"
    FRACTIONAL = "Fractional"
    STRING = "String"

    @property
    def polars_dtype(self) -> pl.DataType:
        """The Polars dtype values of this type are stored as."""
        return {"Integral": pl.Int64(), "Fractional": pl.Float64(), "String": pl.String()}[self.value]


def _pydantic_to_tide(exc: pydantic.ValidationError, obj: str) -> TideError:
    """The first pydantic error as a tideml ValidationError naming the field path and the fix."""
    err = exc.errors()[0]
    original = (err.get("ctx") or {}).get("error")
    path = ".".join(str(p) for p in err["loc"]) or None
    if isinstance(original, TideError):
        if path:  # raised inside a nested model: prefix where it sits in the outer one
            field = f"{path}.{original.field}" if original.field else path
            return type(original)(original.message, obj=original.obj, field=field, fix=original.fix)
        return original
    kind = err["type"]
    if kind == "missing":
        fix = "add the field"
    elif kind == "extra_forbidden":
        fix = "remove it (check the spelling against the documented fields)"
    elif kind.startswith("enum") or kind == "literal_error":
        fix = f"use {err.get('ctx', {}).get('expected', 'an allowed value')}"
    else:
        fix = "correct the value"
    return ValidationError(str(err["msg"]).lower(), obj=obj, field=path, fix=fix)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except pydantic.ValidationError as exc:
            raise _pydantic_to_tide(exc, self._obj_name(data)) from None

    @classmethod
    def _obj_name(cls, data: dict[str, Any]) -> str:
        return cls.__name__


def validate_group_name(name: str) -> str:
    """Check a feature group name (1-64 characters, letters, digits, `_` and `-`, a letter first)."""
    if not isinstance(name, str) or not _GROUP_NAME.fullmatch(name):
        raise ValidationError(
            f"{name!r} is not a valid feature group name",
            obj="feature group",
            field="name",
            fix="use 1-64 letters, digits, '_' or '-', starting with a letter",
        )
    if name.lower().endswith("_latest"):
        raise ValidationError(
            f"{name!r} ends with '_latest', which is the suffix of every group's latest-record view",
            obj="feature group",
            field="name",
            fix="choose a name without the '_latest' suffix",
        )
    return name


class FeatureDefinition(_Model):
    """One feature: a name, a type, nullability and optional catalog metadata."""

    name: str
    type: FeatureType
    nullable: bool = True
    description: str = Field(default="", max_length=255)
    parameters: dict[str, str] = Field(default_factory=dict, max_length=25)

    @classmethod
    def _obj_name(cls, data: dict[str, Any]) -> str:
        return f"feature {data.get('name', '?')}"

    @model_validator(mode="after")
    def _check(self) -> FeatureDefinition:
        if not _FEATURE_NAME.fullmatch(self.name):
            raise ValidationError(
                f"{self.name!r} is not a valid feature name",
                obj=f"feature {self.name!r}",
                field="name",
                fix="use 1-64 letters, digits, '_' or '-', not starting with a digit (rename the column)",
            )
        if self.name.lower() in RESERVED_NAMES:
            raise ValidationError(
                f"{self.name!r} is a reserved system column",
                obj=f"feature {self.name}",
                field="name",
                fix=f"rename it; reserved names are {', '.join(sorted(RESERVED_NAMES))}",
            )
        for key, value in self.parameters.items():
            if len(key) > 255 or len(value) > 255:
                raise ValidationError(
                    "parameter keys and values are limited to 255 characters",
                    obj=f"feature {self.name}",
                    field=f"parameters.{key[:40]}",
                    fix="shorten the key or value",
                )
        return self


class TtlDuration(_Model):
    """How long an online record lives after its event time (SageMaker's `TtlDuration`)."""

    unit: Literal["Seconds", "Minutes", "Hours", "Days", "Weeks"]
    value: int = Field(ge=1)

    @property
    def seconds(self) -> int:
        return self.value * _UNIT_SECONDS[self.unit]

    @classmethod
    def parse(cls, text: str) -> TtlDuration:
        """Parse `30s`, `15m`, `12h`, `7d` or `2w`."""
        m = _TTL_TEXT.fullmatch(text)
        if not m or int(m.group(1)) < 1:
            raise ValidationError(
                f"{text!r} is not a duration",
                obj="online store",
                field="ttl",
                fix="write a positive number and a unit s, m, h, d or w, e.g. 7d",
            )
        return cls(unit=_UNIT_LETTER[m.group(2)], value=int(m.group(1)))

    def __str__(self) -> str:
        return f"{self.value}{self.unit[0].lower()}"


class OnlineStoreConfig(_Model):
    """Whether the group is served online, and the TTL of its online records."""

    enabled: bool = True
    ttl: TtlDuration | None = None


class OfflineStoreConfig(_Model):
    """Whether the group keeps its append-only history in the offline Parquet store."""

    enabled: bool = True


class FeatureGroupSpec(_Model):
    """A feature group: the schema and configuration stored in the metadata DB."""

    name: str
    record_identifier: str
    event_time: str
    features: tuple[FeatureDefinition, ...]
    description: str = Field(default="", max_length=128)
    tags: dict[str, str] = Field(default_factory=dict, max_length=50)
    online: OnlineStoreConfig = OnlineStoreConfig()
    offline: OfflineStoreConfig = OfflineStoreConfig()

    @classmethod
    def _obj_name(cls, data: dict[str, Any]) -> str:
        return f"feature group {data.get('name', '?')}"

    @model_validator(mode="after")
    def _check(self) -> FeatureGroupSpec:
        obj = f"feature group {self.name}"
        validate_group_name(self.name)
        if not 1 <= len(self.features) <= MAX_FEATURES:
            raise ValidationError(
                f"a group has 1 to {MAX_FEATURES} features, got {len(self.features)}",
                obj=obj,
                field="features",
                fix="define at least the record identifier and the event time",
            )
        seen: dict[str, str] = {}
        for f in self.features:
            key = f.name.lower()
            if key in seen:
                raise ValidationError(
                    f"feature {f.name!r} is defined twice (names are case-insensitive)",
                    obj=obj,
                    field=f"features.{f.name}",
                    fix="give every feature a distinct name",
                )
            seen[key] = f.name
        by_name = {f.name: f for f in self.features}
        rid = by_name.get(self.record_identifier)
        if rid is None:
            raise ValidationError(
                f"record identifier {self.record_identifier!r} is not one of the features",
                obj=obj,
                field="record_identifier",
                fix="add it to the feature definitions or name an existing feature",
            )
        if rid.type is FeatureType.FRACTIONAL:
            raise ValidationError(
                "the record identifier must be Integral or String",
                obj=obj,
                field="record_identifier",
                fix="use an integer or string id column",
            )
        et = by_name.get(self.event_time)
        if et is None:
            raise ValidationError(
                f"event time feature {self.event_time!r} is not one of the features",
                obj=obj,
                field="event_time",
                fix="add it (Fractional/Integral epoch seconds or ISO-8601 String) or name an existing one",
            )
        if self.event_time == self.record_identifier:
            raise ValidationError(
                "the event time and the record identifier must be different features",
                obj=obj,
                field="event_time",
                fix="name a timestamp column",
            )
        if rid.nullable or et.nullable:
            raise ValidationError(
                "the record identifier and the event time cannot be nullable",
                obj=obj,
                field="features",
                fix=f"set nullable = false on {self.record_identifier!r} and {self.event_time!r}",
            )
        if not (self.online.enabled or self.offline.enabled):
            raise ValidationError(
                "at least one of the online and offline stores must be enabled",
                obj=obj,
                field="online.enabled",
                fix="enable the online store, the offline store or both",
            )
        return self

    # -- accessors ---------------------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> FeatureDefinition:
        """The definition of one feature; NotFound-like ValidationError naming the group otherwise."""
        for f in self.features:
            if f.name == name:
                return f
        raise ValidationError(
            f"no feature {name!r}",
            obj=f"feature group {self.name}",
            field="feature_names",
            fix=f"use one of {', '.join(self.feature_names[:20])}{' …' if len(self.features) > 20 else ''}",
        )

    @property
    def id_type(self) -> FeatureType:
        return self.feature(self.record_identifier).type

    @property
    def event_time_type(self) -> FeatureType:
        return self.feature(self.event_time).type

    @property
    def value_features(self) -> list[FeatureDefinition]:
        """Every feature except the record identifier and the event time, in definition order."""
        return [f for f in self.features if f.name not in (self.record_identifier, self.event_time)]

    @property
    def ttl_seconds(self) -> int | None:
        return self.online.ttl.seconds if self.online.ttl else None

    def with_changes(
        self,
        *,
        add_features: list[FeatureDefinition] | None = None,
        ttl: TtlDuration | Literal["keep"] | None = "keep",
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> FeatureGroupSpec:
        """A new spec with features added (never removed or retyped), a new TTL or new catalog text."""
        data = self.model_dump()
        if add_features:
            if len(add_features) > 100:
                raise ValidationError(
                    "at most 100 features can be added per update",
                    obj=f"feature group {self.name}",
                    field="add_features",
                    fix="split the update into several calls",
                )
            existing = {n.lower(): n for n in self.feature_names}
            for f in add_features:
                if f.name.lower() in existing:
                    raise ValidationError(
                        f"the group already has a feature {existing[f.name.lower()]!r} (names are "
                        "case-insensitive)",
                        obj=f"feature group {self.name}",
                        field=f"features.{f.name}",
                        fix="features are never retyped or redefined: add one under a new name",
                    )
                if not f.nullable:
                    raise ValidationError(
                        "an added feature must be nullable: rows written before it have no value",
                        obj=f"feature group {self.name}",
                        field=f"features.{f.name}",
                        fix="add it with nullable = true",
                    )
            data["features"] = [*data["features"], *(f.model_dump() for f in add_features)]
        if ttl != "keep":
            data["online"] = {**data["online"], "ttl": ttl.model_dump() if ttl else None}
        if description is not None:
            data["description"] = description
        if tags is not None:
            data["tags"] = tags
        return FeatureGroupSpec(**data)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the form stored in the metadata DB)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureGroupSpec:
        """Parse a spec from a dict (YAML/JSON file contents); errors name the field path."""
        if not isinstance(data, dict):
            raise ValidationError(
                "a feature group spec must be a mapping", obj="feature group", fix="write a YAML/JSON object"
            )
        return cls(**data)


def _feature_type_of(dtype: pl.DataType, column: str) -> FeatureType:
    if dtype.is_integer() or dtype == pl.Boolean:
        return FeatureType.INTEGRAL
    if dtype.is_float() or dtype.is_decimal():
        return FeatureType.FRACTIONAL
    if dtype in (pl.String, pl.Categorical, pl.Enum) or isinstance(dtype, pl.Categorical | pl.Enum):
        return FeatureType.STRING
    if isinstance(dtype, pl.Datetime | pl.Date):
        return FeatureType.STRING  # only valid as the event time: stored as a timestamp, shown as ISO
    if dtype == pl.Null:
        return FeatureType.STRING
    raise ValidationError(
        f"column type {dtype} has no feature type",
        obj=f"column {column}",
        field="dtype",
        fix="cast it to an integer, float or string column before ingesting",
    )


def infer_feature_definitions(
    frame: pl.DataFrame, *, record_identifier: str, event_time: str
) -> list[FeatureDefinition]:
    """Feature definitions from a frame's schema: int -> Integral, float -> Fractional, text -> String.

    The record identifier and event time are non-nullable; datetimes are valid only as the event time.
    """
    out: list[FeatureDefinition] = []
    for name, dtype in frame.schema.items():
        ftype = _feature_type_of(dtype, name)
        if isinstance(dtype, pl.Datetime | pl.Date) and name != event_time:
            raise ValidationError(
                "a datetime column can only be the event time",
                obj=f"column {name}",
                field="dtype",
                fix="convert it to epoch seconds (Fractional) or an ISO-8601 string",
            )
        key = name in (record_identifier, event_time)
        out.append(FeatureDefinition(name=name, type=ftype, nullable=not key))
    return out
