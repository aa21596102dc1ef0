"""Per-step policies: retries with exponential backoff, and caching with expiry."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_serializer, model_validator

from tideml.errors import ValidationError

__all__ = ["CachePolicy", "RetryPolicy", "validated"]


class RetryPolicy(BaseModel):
    """Retry a failed step: `max_attempts` in all, waiting `backoff_seconds * backoff_rate**(n-1)`.

    `retry_on` names exception classes (their name or module-qualified name, bases included) that are
    worth retrying; empty means any error except a validation error or a Fail step. A worker process that
    died (killed, out of memory) is always retryable.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=1, ge=1, le=100)
    backoff_seconds: float = Field(default=1.0, ge=0)
    backoff_rate: float = Field(default=2.0, ge=1.0)
    max_backoff_seconds: float = Field(default=300.0, ge=0)
    retry_on: tuple[str, ...] = ()

    def delay(self, failures: int) -> float:
        """Seconds to wait before the attempt that follows the `failures`-th failure."""
        wait = self.backoff_seconds * self.backoff_rate ** max(failures - 1, 0)
        return float(min(wait, self.max_backoff_seconds))

    def should_retry(self, failures: int, error_types: list[str], *, fatal: bool) -> bool:
        """Whether another attempt is due after `failures` failures with an error of these types."""
        if fatal or failures >= self.max_attempts:
            return False
        names = set(error_types) | {t.rsplit(".", 1)[-1] for t in error_types}
        if "WorkerLost" in names:
            return True
        if not self.retry_on:
            return "ValidationError" not in names
        return any(t in names for t in self.retry_on)


class CachePolicy(BaseModel):
    """Whether a step's results are reused, and for how long (`expire_after`, an ISO-8601 duration)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    expire_after: dt.timedelta | None = None

    @model_validator(mode="after")
    def _positive(self) -> CachePolicy:
        if self.expire_after is not None and self.expire_after.total_seconds() <= 0:
            raise ValueError("expire_after must be a positive duration")
        return self

    @field_serializer("expire_after")
    def _iso(self, value: dt.timedelta | None) -> str | None:
        if value is None:
            return None
        return f"PT{value.total_seconds():g}S"


def validated(model: type[RetryPolicy] | type[CachePolicy], value: Any, *, step: str, field: str) -> Any:
    """Build a policy from a model, a dict or (for caching) a bool / ISO duration, with a clear error."""
    if isinstance(value, model):
        return value
    if model is CachePolicy and isinstance(value, bool):
        value = {"enabled": value}
    elif model is CachePolicy and isinstance(value, str | dt.timedelta):
        value = {"expire_after": value}
    elif model is RetryPolicy and isinstance(value, int) and not isinstance(value, bool):
        value = {"max_attempts": value}
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ValidationError(
            err["msg"].lower(),
            obj=f"step {step}",
            field=f"{field}.{where}" if where else field,
            fix="see RetryPolicy / CachePolicy; durations are ISO-8601 like 'P7D' or 'PT30M'",
        ) from exc
