"""The HTTP face every service shares: ``/healthz``, ``/readyz``, ``/metrics``,
correlation ids, request metrics, and machine-readable errors.

Errors always look like ``{"error": {"code": "...", "message": "...", "details": [...]}}``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowchat_platform import metrics

CORRELATION_HEADER = "X-Correlation-ID"
_CORRELATION_HEADER_RAW = CORRELATION_HEADER.lower().encode()
ReadinessCheck = Callable[[], bool | Awaitable[bool]]


class ApiError(Exception):
    """Raise from a route to answer with FlowChat's error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers


def error_body(code: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


class Readiness:
    """Named checks; the service is ready when all pass."""

    def __init__(self) -> None:
        self._checks: dict[str, ReadinessCheck] = {}

    def add(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check

    async def evaluate(self) -> dict[str, bool]:
        out: dict[str, bool] = {}
        for name, check in self._checks.items():
            try:
                result = check()
                out[name] = bool(await result) if isinstance(result, Awaitable) else bool(result)
            except Exception:  # noqa: BLE001 - a failing check is simply "not ready"
                out[name] = False
        return out


class ObserveRequests:
    """Correlation id in and out, request count and latency by route.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` costs more per request
    than a whole small endpoint (measured on the sandbox's send path).
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation_id = ""
        for name, value in scope["headers"]:
            if name == _CORRELATION_HEADER_RAW:
                correlation_id = value.decode("latin-1")
                break
        correlation_id = correlation_id or uuid.uuid4().hex
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        raw_id = correlation_id.encode("latin-1")
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (_CORRELATION_HEADER_RAW, raw_id),
                ]
            await send(message)

        started = time.perf_counter()
        tokens = structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)
            path = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            metrics.HTTP_REQUESTS.labels(self.service, method, path, status).inc()
            metrics.HTTP_SECONDS.labels(self.service, method, path).observe(
                time.perf_counter() - started
            )


def build_app(
    service: str,
    *,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    readiness: Readiness | None = None,
    title: str | None = None,
    version: str = "1.0.0",
) -> FastAPI:
    app = FastAPI(title=title or f"FlowChat {service}", version=version, lifespan=lifespan)
    checks = readiness or Readiness()
    app.state.readiness = checks

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        results = await checks.evaluate()
        ok = all(results.values())
        metrics.READY.labels(service).set(1 if ok else 0)
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "checks": results},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(ObserveRequests, service=service)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details),
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": e.get("msg", ""),
                "type": e.get("type", ""),
            }
            for e in exc.errors()
        ]
        return JSONResponse(
            error_body("invalid_request", "the request is invalid", details), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            404: "not_found",
            405: "method_not_allowed",
            401: "unauthorized",
            403: "forbidden",
        }.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    return app
