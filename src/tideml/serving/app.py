"""The HTTP layer: a FastAPI app answering `/invocations` and `/ping` as SageMaker containers do.

Routes: `POST /invocations`, `GET /ping`, `/health` (liveness), `/ready` (models loaded and online store
reachable), `/metrics` (Prometheus), `/model` (what is served and its features), and the OpenAPI schema
at `/openapi.json` (with `/docs`). The invocation body is read and validated by hand (orjson and the
engine's checks) rather than by a pydantic model: it is the hot path, and the engine's errors name the
exact field. Its shape is still published in the OpenAPI schema, built from the served model's feature
list. Every refusal is a JSON error with a 4xx status (503 when a store is down); an unexpected
exception becomes a 500 that is logged and counted, and the test suite's schemathesis run checks that
none happens.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tideml.errors import TideError
from tideml.serving.errors import RequestError, error_body, status_for

if TYPE_CHECKING:
    from tideml.serving.runtime import EndpointRuntime

__all__ = ["InvocationsHandler", "ServingApp", "create_app"]

log = logging.getLogger("tideml.serving")
_JSON = "application/json"
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


def _error(exc: TideError) -> tuple[int, bytes, str, dict[str, str]]:
    status, code = status_for(exc)
    body = error_body(status, code, exc.message, object=exc.obj, field=exc.field, fix=exc.fix)
    headers = dict(exc.headers) if isinstance(exc, RequestError) else {}
    if status == 503:
        headers.setdefault("Retry-After", "1")
    return status, body, _JSON, headers


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _too_large(message: str) -> RequestError:
    return RequestError(
        413, message, code="body_too_large", field="body", fix="send fewer records per request"
    )


class InvocationsHandler:
    """`POST /invocations` as a plain ASGI handler: no per-request dependency injection on the hot path.

    FastAPI's parameter machinery costs more than the whole model call for one row, so the query
    (`explain`, `top_k`), the headers and the body are read here directly, with the same rules the
    published schema states.
    """

    def __init__(self, runtime: EndpointRuntime) -> None:
        self.runtime = runtime
        self.engine = runtime.engine
        self.gate = runtime.gate
        self.metrics = runtime.metrics
        self.limit = runtime.config.limits.max_body_bytes
        self.max_top_k = runtime.config.limits.max_top_k

    def _query(self, raw: bytes) -> tuple[bool, int | None]:
        explain, top_k = False, None
        if not raw:
            return explain, top_k
        for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
            if key == "explain":
                low = value.lower()
                if low not in _TRUE and low not in _FALSE:
                    raise RequestError(
                        422,
                        f"{value!r} is not a boolean",
                        code="validation_error",
                        field="explain",
                        fix="true or false",
                    )
                explain = low in _TRUE
            elif key == "top_k":
                try:
                    top_k = int(value)
                except ValueError:
                    raise RequestError(
                        422,
                        f"{value!r} is not an integer",
                        code="validation_error",
                        field="top_k",
                        fix="e.g. 3",
                    ) from None
                if not 1 <= top_k <= self.max_top_k:
                    raise RequestError(
                        422,
                        f"must be between 1 and {self.max_top_k}",
                        code="validation_error",
                        field="top_k",
                        fix="ask for fewer reasons",
                    )
        return explain, top_k

    async def _body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                raise RequestError(
                    400,
                    "Content-Length is not a number",
                    code="bad_request",
                    field="Content-Length",
                    fix="send a valid header",
                )
            if int(declared) > self.limit:
                raise _too_large(f"the body is {int(declared)} bytes; the limit is {self.limit}")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise _too_large(f"the body is over the limit of {self.limit} bytes")
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if not size:
            raise RequestError(
                400,
                "the body is empty",
                code="empty_body",
                field="body",
                fix="send a JSON record or CSV rows",
            )
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def handle(self, scope: Scope, receive: Receive) -> tuple[int, bytes, str, dict[str, str]]:
        """(status, body, media type, headers) of one invocation."""
        t0 = time.perf_counter()
        metrics = self.metrics
        headers: dict[bytes, bytes] = dict(scope["headers"])
        try:
            auth, key = headers.get(b"authorization"), headers.get(b"x-api-key")
            self.gate.check(auth.decode("latin-1") if auth else None, key.decode("latin-1") if key else None)
            explain, top_k = self._query(scope.get("query_string", b""))
            body = await self._body(headers, receive)
            raw_id = headers.get(b"x-tide-inference-id") or headers.get(b"x-amzn-sagemaker-inference-id")
            iid = raw_id.decode("latin-1") if raw_id is not None else None
            if iid is not None and (len(iid) > 64 or not iid or not set(iid) <= _ID_CHARS):
                raise RequestError(
                    422,
                    "must be 1-64 letters, digits or -_.:",
                    code="validation_error",
                    field="X-Tide-Inference-Id",
                    fix="send a short id",
                )
            ctype, accept = headers.get(b"content-type"), headers.get(b"accept")
            target = headers.get(b"x-tide-target-variant") or headers.get(b"x-amzn-sagemaker-target-variant")
            inv = self.engine.invoke(
                body,
                ctype.decode("latin-1") if ctype is not None else None,
                accept=accept.decode("latin-1") if accept is not None else None,
                explain=explain,
                top_k=top_k,
                target_variant=target.decode("latin-1") if target else None,
                inference_id=iid,
            )
        except TideError as exc:
            status, code = status_for(exc)
            metrics.inc("tide_errors_total", (("code", code),))
            metrics.inc("tide_requests_total", (("variant", "-"), ("status", str(status))))
            if status == 429:
                metrics.inc("tide_rate_limited_total")
            return _error(exc)
        except Exception:
            log.exception("unexpected error in endpoint %s", self.runtime.name)
            metrics.inc("tide_errors_total", (("code", "internal_error"),))
            metrics.inc("tide_requests_total", (("variant", "-"), ("status", "500")))
            return 500, error_body(500, "internal_error", "internal error; see the server log"), _JSON, {}
        metrics.inc("tide_requests_total", (("variant", inv.variant), ("status", "200")))
        metrics.observe("tide_request_duration_seconds", (), time.perf_counter() - t0)
        return 200, inv.body, inv.media_type, inv.headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, body, media_type, headers = await self.handle(scope, receive)
        raw = [(b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


class ServingApp:
    """The endpoint's ASGI app: `POST /invocations` straight to its handler, everything else to FastAPI."""

    def __init__(self, fastapi: FastAPI, handler: InvocationsHandler) -> None:
        self.fastapi = fastapi
        self.handler = handler
        self.state = fastapi.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/invocations":
            await self.handler(scope, receive, send)
        else:
            await self.fastapi(scope, receive, send)


def _schemas(runtime: EndpointRuntime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The OpenAPI request body and 200 response of /invocations, from the served model."""
    engine = runtime.engine
    model = engine.live[0].model
    entity = model.entity
    number = {"type": ["number", "null"]}
    features = {
        "type": "object",
        "properties": {
            f: ({"type": ["boolean", "null"]} if f in model.bool_features else number) for f in model.features
        },
        "required": list(model.features),
        "additionalProperties": False,
    }
    forms: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"features": features},
            "required": ["features"],
            "additionalProperties": False,
        }
    ]
    if entity is not None:
        ident = {
            "type": ["integer", "string"],
            "description": f"the {entity} whose features the online store holds",
        }
        forms.insert(
            0,
            {
                "type": "object",
                "properties": {entity: ident},
                "required": [entity],
                "additionalProperties": False,
            },
        )
        forms.insert(
            1,
            {
                "type": "object",
                "properties": {entity: ident, "claim": {"type": "object", "description": "the raw claim"}},
                "required": [entity, "claim"],
                "additionalProperties": False,
            },
        )
    record = {"oneOf": forms}
    body = {
        "required": True,
        "content": {
            _JSON: {
                "schema": {
                    "oneOf": [
                        record,
                        {
                            "type": "array",
                            "items": record,
                            "minItems": 1,
                            "maxItems": runtime.config.limits.max_batch,
                        },
                    ]
                }
            },
            "text/csv": {
                "schema": {"type": "string", "description": "rows of feature values in the model's order"}
            },
        },
    }
    prediction: dict[str, Any] = {
        "type": "object",
        "properties": {
            "probability": {"type": "number"},
            "decision": {"type": "integer", "enum": [0, 1]},
            "threshold": {"type": "number"},
            "reasons": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "feature": {"type": "string"},
                        "value": {"type": ["number", "null"]},
                        "contribution": {"type": "number"},
                    },
                },
            },
        },
        "required": ["probability", "decision", "threshold"],
    }
    ok = {
        "description": "Predictions (JSON), or one probability per line for text/csv requests",
        "content": {
            _JSON: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "predictions": {"type": "array", "items": prediction},
                        **prediction["properties"],
                    },
                }
            },
            "text/csv": {"schema": {"type": "string"}},
        },
    }
    return body, ok


_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "object": {"type": "string"},
                "field": {"type": "string"},
                "fix": {"type": "string"},
            },
            "required": ["status", "code", "message"],
        }
    },
}


def create_app(runtime: EndpointRuntime, *, manage_runtime: bool = True) -> ServingApp:
    """The FastAPI application of one endpoint runtime (started and closed with the app's lifespan)."""
    engine = runtime.engine
    metrics = runtime.metrics
    max_top_k = runtime.config.limits.max_top_k
    base_labels = (("endpoint", runtime.name),)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            runtime.start()
        # Everything loaded so far lives as long as the server: keep it out of the garbage collector's
        # full passes, which would otherwise walk it during requests (a p99 cost).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if manage_runtime:
                runtime.close()

    app = FastAPI(
        title=f"tideml endpoint {runtime.name}",
        version="1",
        description="Fraud probability, decision, model version and SHAP reasons for a claim.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    body_schema, ok_schema = _schemas(runtime)
    err = {"content": {_JSON: {"schema": _ERROR_SCHEMA}}}
    responses: dict[int | str, dict[str, Any]] = {200: ok_schema}
    for status, text in (
        (400, "Malformed body"),
        (401, "Missing or bad API key"),
        (404, "No online features for the id"),
        (413, "Body or batch too large"),
        (415, "Unsupported content type"),
        (422, "Invalid field"),
        (429, "Rate limit exceeded"),
        (503, "A store is unavailable"),
    ):
        responses[status] = {"description": text, **err}

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "header", "body", "path")]
        field = ".".join(loc) or None
        metrics.inc("tide_errors_total", (("code", "validation_error"),))
        return Response(
            error_body(
                422,
                "validation_error",
                str(first.get("msg", "invalid")),
                field=field,
                fix="correct the parameter",
            ),
            status_code=422,
            media_type=_JSON,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return Response(
            error_body(exc.status_code, code, str(exc.detail)),
            status_code=exc.status_code,
            media_type=_JSON,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unexpected error in endpoint %s", runtime.name)
        metrics.inc("tide_errors_total", (("code", "internal_error"),))
        return Response(
            error_body(500, "internal_error", "internal error; see the server log"),
            status_code=500,
            media_type=_JSON,
        )

    handler = InvocationsHandler(runtime)

    @app.post(
        "/invocations",
        summary="Score one claim, a list of claims, or CSV rows",
        responses=responses,
        openapi_extra={"requestBody": body_schema},
        response_class=Response,
    )
    async def invocations(
        request: Request,
        explain: bool = Query(False, description="add the top-k SHAP reasons"),
        top_k: int | None = Query(None, ge=1, le=max_top_k, description="how many reasons"),
    ) -> Response:
        # Requests reach `InvocationsHandler` directly (see `ServingApp`); this route publishes the
        # operation in the OpenAPI schema and serves it if the FastAPI app is mounted on its own.
        status, body, media_type, headers = await handler.handle(request.scope, request.receive)
        return Response(body, status_code=status, media_type=media_type, headers=headers)

    @app.get("/ping", summary="Liveness, as SageMaker containers answer it")
    async def ping() -> Response:
        return Response(b'{"status":"ok"}', media_type=_JSON)

    @app.get("/health", summary="Liveness with details")
    async def health() -> dict[str, Any]:
        cap = runtime.capture
        return {
            "status": "ok",
            "endpoint": runtime.name,
            "models": engine.models(),
            "uptime_seconds": round(time.time() - runtime.started_at, 3),
            "capture": None
            if cap is None
            else {"written": cap.written, "dropped": cap.dropped, "failed": cap.failed},
        }

    @app.get(
        "/ready",
        summary="Readiness: models loaded and the online store reachable",
        responses={503: {"description": "Not ready (a store is unavailable)"}},
    )
    async def ready() -> Response:
        import orjson

        ok, details = runtime.readiness()
        details["status"] = "ready" if ok else "not ready"
        return Response(orjson.dumps(details), status_code=200 if ok else 503, media_type=_JSON)

    @app.get("/metrics", summary="Prometheus metrics of every worker", response_class=Response)
    async def prometheus() -> Response:
        return Response(
            runtime.exporter.render(base_labels), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.get("/model", summary="What each variant serves, and the model's features in order")
    async def model_info() -> dict[str, Any]:
        out: dict[str, Any] = {"endpoint": runtime.name, "variants": []}
        for name, v in engine.variants.items():
            m, plan = v.active
            out["variants"].append(
                {
                    "name": name,
                    "shadow": v.config.shadow,
                    "weight": v.config.weight,
                    "model_version": m.ref,
                    "threshold": m.threshold,
                    "entity": m.entity,
                    "features": list(m.features),
                    "online_groups": plan.to_dict()["groups"],
                }
            )
        return out

    return ServingApp(app, handler)
