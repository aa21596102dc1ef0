"""HTTP-facing errors: every refusal is a JSON body naming the field and the fix, with a 4xx/503 status."""

from __future__ import annotations

from typing import Any

import orjson

from tideml.errors import (
    Conflict,
    IntegrityError,
    NotFound,
    PolicyViolation,
    StoreUnavailable,
    TideError,
    ValidationError,
)

__all__ = ["RequestError", "error_body", "status_for"]


class RequestError(TideError):
    """A refusal with an HTTP status: malformed body (400), auth (401), size (413), rate (429)…"""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        field: str | None = None,
        fix: str | None = None,
        obj: str = "request",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, obj=obj, field=field, fix=fix)
        self.status = status
        self.code = code
        self.headers = headers or {}


_CODES: list[tuple[type[TideError], int, str]] = [
    (StoreUnavailable, 503, "store_unavailable"),
    (NotFound, 404, "not_found"),
    (ValidationError, 422, "validation_error"),
    (PolicyViolation, 403, "policy_violation"),
    (Conflict, 409, "conflict"),
    (IntegrityError, 500, "integrity_error"),
]


def status_for(exc: TideError) -> tuple[int, str]:
    """The HTTP status and error code of a tideml error."""
    if isinstance(exc, RequestError):
        return exc.status, exc.code
    for cls, status, code in _CODES:
        if isinstance(exc, cls):
            return status, code
    return 400, "bad_request"


def error_body(status: int, code: str, message: str, **extra: Any) -> bytes:
    """The JSON body of an error response."""
    payload: dict[str, Any] = {"status": status, "code": code, "message": message}
    payload.update({k: v for k, v in extra.items() if v is not None})
    return orjson.dumps({"error": payload})
