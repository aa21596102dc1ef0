"""One exception tree for everything tideml raises on purpose.

Every error names the object it is about, the field (when there is one) and the fix, so that the CLI
can print it as one line and a caller can act on it without reading a traceback.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "Conflict",
    "IntegrityError",
    "NotFound",
    "PolicyViolation",
    "StoreUnavailable",
    "TideError",
    "UnsafePath",
    "ValidationError",
]


class TideError(Exception):
    """Base of every error tideml raises for a condition the user can act on."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        obj: str | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.obj = obj
        self.field = field
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.obj, self.field) if part)
        text = f"{where}: {self.message}" if where else self.message
        if self.fix:
            text = f"{text} (fix: {self.fix})"
        return text


class ValidationError(TideError, ValueError):
    """Input that does not satisfy a spec: a bad value, a missing field, a wrong type."""

    exit_code = 2


class ConfigError(ValidationError):
    """A bad workspace setting in `tide.toml` or a `TIDE_*` environment variable."""


class UnsafePath(ValidationError):
    """A key or path that could escape the root it must stay inside."""


class NotFound(TideError, LookupError):
    """A named object (workspace, artifact, feature group, model version…) does not exist."""

    exit_code = 3


class Conflict(TideError):
    """The object exists already, or changed under us since it was read (optimistic concurrency)."""

    exit_code = 4


class PolicyViolation(TideError):
    """A state change refused by a rule: an approval policy, an unapproved deployment."""

    exit_code = 7


class IntegrityError(TideError):
    """Stored bytes do not match their recorded hash, or a persisted file is corrupt."""

    exit_code = 5


class StoreUnavailable(TideError):
    """A backing store (database, Redis, folder) cannot be reached or opened."""

    exit_code = 6
