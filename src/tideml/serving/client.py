"""A small Python client for a tideml endpoint (any `/invocations` server that speaks its JSON).

    from tideml.serving import EndpointClient
    with EndpointClient("http://127.0.0.1:8080", api_key="tide_…") as client:
        answer = client.predict(policy_id=42, explain=True)
        answer["probability"], answer["decision"], answer["reasons"]

A refusal raises `EndpointError` carrying the server's status, field and fix.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from tideml.errors import TideError

__all__ = ["EndpointClient", "EndpointError"]


class EndpointError(TideError):
    """A refusal from the endpoint (4xx/5xx), with the HTTP status and the server's error code."""

    def __init__(
        self, status: int, code: str, message: str, *, field: str | None = None, fix: str | None = None
    ) -> None:
        super().__init__(message, obj=f"endpoint ({status} {code})", field=field, fix=fix)
        self.status = status
        self.code = code


class EndpointClient:
    """Calls `/invocations` over one keep-alive connection pool."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._own = client is None
        self.http = client or httpx.Client(base_url=base_url, timeout=timeout)
        self.http.headers.update(headers)

    def __enter__(self) -> EndpointClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own:
            self.http.close()

    # -- invocations ---------------------------------------------------------------------------------
    def _invoke(
        self,
        content: bytes,
        content_type: str,
        *,
        explain: bool,
        top_k: int | None,
        variant: str | None,
        accept: str = "application/json",
    ) -> httpx.Response:
        params: dict[str, Any] = {}
        if explain:
            params["explain"] = "true"
        if top_k is not None:
            params["top_k"] = top_k
        headers = {"Content-Type": content_type, "Accept": accept}
        if variant:
            headers["X-Tide-Target-Variant"] = variant
        response = self.http.post("/invocations", content=content, params=params, headers=headers)
        if response.status_code >= 400:
            raise _error_of(response)
        return response

    def predict(
        self,
        policy_id: Any = None,
        *,
        claim: Mapping[str, Any] | None = None,
        features: Mapping[str, Any] | None = None,
        entity: str = "policy_id",
        explain: bool = False,
        top_k: int | None = None,
        variant: str | None = None,
    ) -> dict[str, Any]:
        """Score one record: by id (features from the online store), id + raw claim, or features."""
        if features is not None:
            record: dict[str, Any] = {"features": dict(features)}
        else:
            record = {entity: policy_id}
            if claim is not None:
                record["claim"] = dict(claim)
        response = self._invoke(
            orjson.dumps(record), "application/json", explain=explain, top_k=top_k, variant=variant
        )
        result: dict[str, Any] = orjson.loads(response.content)
        return result

    def predict_many(
        self, records: Sequence[Mapping[str, Any]], *, explain: bool = False, top_k: int | None = None
    ) -> dict[str, Any]:
        """Score a list of records in one request."""
        body = orjson.dumps([dict(r) for r in records])
        result: dict[str, Any] = orjson.loads(
            self._invoke(body, "application/json", explain=explain, top_k=top_k, variant=None).content
        )
        return result

    def predict_csv(self, rows: Sequence[Sequence[float | None]]) -> list[float]:
        """Score rows of feature values in the model's order (the article's text/csv); probabilities."""
        text = "\n".join(",".join("" if v is None else repr(float(v)) for v in row) for row in rows)
        response = self._invoke(
            text.encode(), "text/csv", explain=False, top_k=None, variant=None, accept="text/csv"
        )
        return [float(x) for x in response.text.split()]

    # -- health ------------------------------------------------------------------------------------------
    def ping(self) -> bool:
        return self.http.get("/ping").status_code == 200

    def ready(self) -> bool:
        return self.http.get("/ready").status_code == 200

    def wait_ready(self, timeout: float = 30.0, interval: float = 0.05) -> float:
        """Poll /ready until it answers 200; the seconds it took. TideError on timeout."""
        start = time.perf_counter()
        while True:
            try:
                if self.ready():
                    return time.perf_counter() - start
            except httpx.TransportError:
                pass
            if time.perf_counter() - start > timeout:
                raise TideError(
                    f"not ready after {timeout:g} s", obj="endpoint", fix="check the server's log"
                )
            time.sleep(interval)

    def model(self) -> dict[str, Any]:
        """What each variant serves and the model's features in order."""
        result: dict[str, Any] = self.http.get("/model").json()
        return result


def _error_of(response: httpx.Response) -> EndpointError:
    try:
        err = orjson.loads(response.content)["error"]
        return EndpointError(
            response.status_code,
            str(err.get("code")),
            str(err.get("message")),
            field=err.get("field"),
            fix=err.get("fix"),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return EndpointError(response.status_code, "http_error", response.text[:200])
