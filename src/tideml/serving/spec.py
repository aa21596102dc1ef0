"""The endpoint configuration: variants, traffic, data capture, limits and authentication.

Stored as JSON in the metadata DB (`serving_endpoints.config`); every field has a safe default, and a bad
value becomes a `ValidationError` naming the field path and the fix.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tideml.errors import ValidationError

__all__ = [
    "CaptureConfig",
    "EndpointConfig",
    "LimitsConfig",
    "VariantConfig",
    "check_endpoint_name",
    "parse_endpoint_config",
]

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_MODEL_REF = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}(/[0-9]+|@[a-z0-9][a-z0-9-]{0,62})?$")


def check_endpoint_name(name: str, what: str = "endpoint") -> str:
    """Refuse names that would not be safe in a URL, a folder name or a metric label."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValidationError(
            f"{name!r} is not a valid name",
            obj=what,
            field="name",
            fix="use lowercase letters, digits and '-', starting with a letter or digit (max 63)",
        )
    return name


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariantConfig(_Model):
    """One model behind the endpoint: a registry reference (`group/3`, `group@alias`) and its share."""

    name: str = Field(description="variant name, e.g. primary, challenger")
    model: str = Field(description="registry reference: group/VERSION, group@ALIAS or group (latest)")
    weight: float = Field(default=1.0, ge=0.0, description="share of live traffic (ignored for a shadow)")
    shadow: bool = Field(default=False, description="scored and captured, never returned")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use lowercase letters, digits and '-' (max 63)")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        v = v.removeprefix("model:")
        if not _MODEL_REF.match(v):
            raise ValueError("write group/VERSION, group@ALIAS or group")
        return v


class CaptureConfig(_Model):
    """Data capture: a sampled share of requests and responses written to rotating files."""

    enabled: bool = True
    sampling_percent: float = Field(default=100.0, ge=0.0, le=100.0)
    format: Literal["jsonl", "parquet"] = "jsonl"
    folder: str | None = Field(default=None, description="default: <workspace>/serving/<endpoint>/capture")
    rotate_mb: float = Field(default=64.0, gt=0.0, description="start a new file past this size")
    rotate_seconds: float = Field(default=3600.0, gt=0.0, description="start a new file after this long")
    flush_seconds: float = Field(default=1.0, gt=0.0, description="write buffered events at least this often")
    queue_size: int = Field(
        default=10_000, ge=1, description="events waiting to be written; more are dropped"
    )


class LimitsConfig(_Model):
    """Request limits (the gateway pattern): body size and records per request."""

    max_body_bytes: int = Field(default=1 << 20, ge=64)
    max_batch: int = Field(default=1000, ge=1)
    max_top_k: int = Field(default=20, ge=1)


class EndpointConfig(_Model):
    """Everything `tide serve` needs to run an endpoint, besides the models themselves."""

    name: str
    variants: tuple[VariantConfig, ...] = Field(min_length=1)
    shadow_percent: float = Field(default=100.0, ge=0.0, le=100.0, description="share copied to shadows")
    capture: CaptureConfig = CaptureConfig()
    limits: LimitsConfig = LimitsConfig()
    require_api_key: bool = False
    default_top_k: int = Field(default=3, ge=1)
    claim_flow: str | None = Field(default=None, description="sha256 of the fitted claims flow")
    feature_groups: tuple[str, ...] | None = Field(
        default=None,
        description="online groups to read features from (default: every group keyed by the entity)",
    )
    poll_seconds: float = Field(default=1.0, gt=0.0, description="how often aliases and keys are re-read")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use lowercase letters, digits and '-' (max 63)")
        return v

    @field_validator("claim_flow")
    @classmethod
    def _flow(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.removeprefix("sha256:")
        if not re.fullmatch(r"[0-9a-f]{64}", v):
            raise ValueError("give the fitted flow's sha256 (64 hex digits)")
        return v

    @model_validator(mode="after")
    def _traffic(self) -> EndpointConfig:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        live = [v for v in self.variants if not v.shadow]
        if not live:
            raise ValueError("at least one variant must take live traffic (shadow=false)")
        if sum(v.weight for v in live) <= 0:
            raise ValueError("the live variants' weights must add up to more than 0")
        return self

    @property
    def live_variants(self) -> tuple[VariantConfig, ...]:
        return tuple(v for v in self.variants if not v.shadow)

    @property
    def shadow_variants(self) -> tuple[VariantConfig, ...]:
        return tuple(v for v in self.variants if v.shadow)

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_endpoint_config(data: dict[str, Any], *, obj: str = "endpoint") -> EndpointConfig:
    """Validate a configuration dict, turning pydantic's error into one naming the field path."""
    try:
        return EndpointConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in err["loc"]) or None
        msg = str(err["msg"]).removeprefix("Value error, ")
        fix = (
            "remove the field"
            if err["type"] == "extra_forbidden"
            else "correct the value; see docs/serving.md"
        )
        raise ValidationError(msg, obj=obj, field=path, fix=fix) from exc
