"""The HTTP face every service shares: ``/healthz``, ``/readyz``, ``/metrics``,
correlation ids, request metrics, and machine-readable errors.

Errors always look like ``{"error": {"code": "...", "message": "...", "details": [...]}}``,
and the OpenAPI document says so: every operation lists the error answers the shared
layer can give (400 unreadable body, 401/403/503 where a bearer token is checked, 404
where the path names something, 413 over the JSON body limit, 422 invalid input), each
with that shape, and an example of every body (:func:`flowchat_platform.openapi.complete`).

A service's own exceptions become such answers in one place: one handler per app
(:func:`handle_errors`) maps each to its status, code and details; routes raise
:class:`ApiError` only for what is HTTP's own (a missing header, a wrong media type).

JSON bodies are bounded (``max_json_bytes``, 1 MiB unless a service says otherwise):
larger ones are answered 413 before any of it is parsed, and a NUL character anywhere in
a request 422 (:class:`GuardJsonBody`).
"""

from __future__ import annotations

import functools
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, TypeVar, cast

import structlog
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute, APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowchat_platform import metrics
from flowchat_platform.openapi import complete as complete_openapi
from flowchat_platform.pagination import DEFAULT_LIMIT, MAX_LIMIT, InvalidCursor
from flowchat_platform.transient import DEPENDENCY_DOWN

CORRELATION_HEADER = "X-Correlation-ID"
_CORRELATION_HEADER_RAW = CORRELATION_HEADER.lower().encode()
ReadinessCheck = Callable[[], bool | Awaitable[bool]]

#: The two query parameters of every list endpoint (:mod:`flowchat_platform.pagination`).
PageLimit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_LIMIT,
        description=f"Items per page, at most {MAX_LIMIT} (default {DEFAULT_LIMIT})",
    ),
]
PageCursor = Annotated[
    str | None,
    Query(max_length=500, description="The previous page's `next_cursor`; none for the first"),
]


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
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers
        #: The whole answer body, for an edge that speaks another API's error shape
        #: (the gateway's Cloud-API-compatible routes); None: FlowChat's error body.
        self.body = body


def error_body(code: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


def error_response(error: ApiError) -> JSONResponse:
    """The answer to an :class:`ApiError`: its status and headers, the one error body."""
    return JSONResponse(
        error.body
        if error.body is not None
        else error_body(error.code, error.message, error.details),
        status_code=error.status,
        headers=error.headers,
    )


E = TypeVar("E", bound=Exception)


def handle_errors(
    app: FastAPI, error: type[E], to_api_error: Callable[[Request, E], ApiError]
) -> None:
    """Install an app's one handler of its domain errors (``error`` and its subclasses).

    The services raise their own exceptions, which know nothing of HTTP; ``to_api_error``
    says, in one place, which status, code, message, details and headers each becomes
    (and may count it), and the answer has the one error body, as if the route had
    raised that :class:`ApiError`.
    """

    async def handler(request: Request, exc: Exception) -> Response:
        return error_response(to_api_error(request, cast(E, exc)))

    app.add_exception_handler(error, handler)


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


async def read_bounded(request: Request, limit: int, too_large: Callable[[], Exception]) -> bytes:
    """The request's body, at most ``limit`` bytes: a declared ``Content-Length`` over
    the limit is refused before any of it is read, a longer stream once it has grown
    past it, by raising ``too_large()`` (called once, so it may also count the refusal).
    What :meth:`Request.body` gives from now on, for code that reads it again.

    For a route that reads its own body (a lean route, which :class:`GuardJsonBody`
    does not bound; an upload of another content type) with its own answer to one too
    large."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large()
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body
    return body


class LeanRoute(APIRoute):
    """A route whose endpoint takes the :class:`Request` and returns its
    :class:`Response` itself: no dependency solving, no parameter parsing or response
    model on the hot path (FastAPI's request handler and dependencies were a tenth of a
    webhook's CPU in the gateway's profile). It is documented like any route, from its
    decorator's ``responses`` and ``openapi_extra``; errors raised in it go to the app's
    exception handlers as usual. For routes where every microsecond counts (provider
    webhooks); everything else keeps FastAPI's parameters.

    Included with :func:`include_lean`, its requests are also served by
    :class:`LeanLane`, past the inner half of the ASGI stack."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return cast(Callable[[Request], Coroutine[Any, Any, Response]], self.endpoint)


def include_lean(app: FastAPI, router: APIRouter) -> None:
    """Include ``router`` (of :class:`LeanRoute` s, no prefix) and serve its routes from
    the app's :class:`LeanLane`: documented and routed like any route (a request the
    lane does not take still reaches them through the router)."""
    routes = [route for route in router.routes if isinstance(route, LeanRoute)]
    if len(routes) != len(router.routes):
        raise TypeError("include_lean takes a router of LeanRoutes only")
    app.include_router(router)
    lanes: list[LeanRoute] = app.state.lean_routes
    lanes.extend(routes)


class LeanLane:
    """Requests of the :class:`LeanRoute` s given to :func:`include_lean`, answered
    straight from the middleware stack, inside :class:`ObserveRequests` (correlation
    id, request metrics and logs as for any route) but past what such an endpoint does
    not use: :class:`GuardJsonBody` (a lean route bounds the body it reads itself),
    Starlette's exception middleware, FastAPI's exit stacks and the router's walk over
    every route (together a fifth of a webhook's CPU in the gateway's profile, #26).

    The scope is what the router would have made (``route``, ``endpoint``,
    ``path_params``), and an exception is answered by the app's handler of its type,
    as :class:`~starlette.middleware.exceptions.ExceptionMiddleware` would; one without
    a handler goes on up (a 500 from ``ServerErrorMiddleware``).
    """

    def __init__(self, app: ASGIApp, routes: list[LeanRoute]) -> None:
        self.app = app
        #: Filled by :func:`include_lean` (the list ``build_app`` keeps in its state).
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.routes:
            method, path = scope["method"], scope["path"]
            for route in self.routes:
                if route.methods and method in route.methods:
                    match = route.path_regex.match(path)
                    if match is not None:
                        await self._serve(route, match.groupdict(), scope, receive, send)
                        return
        await self.app(scope, receive, send)

    @staticmethod
    async def _serve(
        route: LeanRoute, params: dict[str, str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        convertors = route.param_convertors
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {k: convertors[k].convert(v) for k, v in params.items()}
        request = Request(scope, receive, send)
        try:
            response: Response = await route.endpoint(request)
        except Exception as exc:
            handler = _handler_of(scope["app"], exc)
            if handler is None:
                raise
            answer = handler(request, exc)
            response = await answer if isinstance(answer, Awaitable) else answer
        await response(scope, receive, send)


def _handler_of(app: Any, exc: Exception) -> Callable[[Request, Exception], Any] | None:
    """The app's handler of ``exc``: by status for an HTTP exception, else by its class
    or the nearest base class with one (Starlette's own lookup). A handler of 500 or
    ``Exception`` is ``ServerErrorMiddleware``'s, as in Starlette: not used here."""
    handlers: dict[Any, Any] = app.exception_handlers
    if isinstance(exc, StarletteHTTPException) and exc.status_code in handlers:
        return cast(Callable[[Request, Exception], Any], handlers[exc.status_code])
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return cast(Callable[[Request, Exception], Any], handlers[cls])
    return None


#: FastAPI's OpenTelemetry hooks, off: the platform's telemetry is Prometheus and
#: structlog, and the hooks looked their providers up on every request (6 % of a
#: bare endpoint's CPU).
NO_TELEMETRY: dict[str, Any] = {"tracing": False, "metrics": False, "logs": False}


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
        correlation_id = correlation_id or secrets.token_hex(16)  # a uuid4's hex, cheaper
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
            _requests(self.service, method, path, status).inc()
            _seconds(self.service, method, path).observe(time.perf_counter() - started)


#: The request metrics' children by their labels (route templates, methods, statuses:
#: bounded), looked up once: ``labels()`` takes a lock and checks every label each time.
_requests = functools.lru_cache(maxsize=1024)(metrics.HTTP_REQUESTS.labels)
_seconds = functools.lru_cache(maxsize=1024)(metrics.HTTP_SECONDS.labels)


DEFAULT_MAX_JSON_BYTES = 1024 * 1024


class _TooLarge(Exception):
    pass


#: An escaped NUL in JSON text (``\u0000`` after an even run of backslashes), or a
#: percent-encoded one in a URL: PostgreSQL can store neither, so no API takes them.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_URL_NUL = re.compile(rb"%00")


class GuardJsonBody:
    """Bad input refused before any of it is parsed, with FlowChat's error shape.

    - 413 for a JSON request body over ``limit`` bytes (a declared ``Content-Length``
      at once, a chunked body once it has grown past the limit);
    - 422 ``nul_character`` for a NUL character in a JSON body, the path or the query
      string (PostgreSQL text cannot hold it; without this it is a database error),
      except under ``nul_allowed`` path prefixes (provider webhooks, which are not
      refused: their receivers deal with the text).

    Other content types (CSV imports, media uploads, provider forms) keep the limits of
    the routes that read them.
    """

    def __init__(self, app: ASGIApp, limit: int, nul_allowed: tuple[str, ...] = ()) -> None:
        self.app = app
        self.limit = limit
        self.nul_allowed = nul_allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        check_nul = not str(scope.get("path", "")).startswith(self.nul_allowed)
        raw_path = scope.get("raw_path") or b""
        if check_nul and (
            _URL_NUL.search(scope.get("query_string", b"")) or _URL_NUL.search(raw_path)
        ):
            await self._refuse(send, 422, "nul_character", "NUL characters are not allowed")
            return
        if not _is_json(scope):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(send)
            return
        try:
            messages = await self._read(receive)
        except _TooLarge:
            await self._too_large(send)
            return
        if check_nul and any(_JSON_NUL.search(m.get("body", b"")) for m in messages):
            await self._refuse(send, 422, "nul_character", "NUL characters are not allowed")
            return
        pending = iter(messages)

        async def replay() -> Message:
            return next(pending, None) or await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> list[Message]:
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if size > self.limit:
                raise _TooLarge
            if not message.get("more_body", False):
                if len(messages) > 1:  # one body, so a NUL escape is never split
                    body = b"".join(m.get("body", b"") for m in messages)
                    return [{"type": "http.request", "body": body, "more_body": False}]
                return messages

    async def _too_large(self, send: Send) -> None:
        message = f"the JSON body exceeds {self.limit} bytes"
        await self._refuse(send, 413, "payload_too_large", message)

    async def _refuse(self, send: Send, status: int, code: str, message: str) -> None:
        response = JSONResponse(error_body(code, message), status_code=status)
        await response({"type": "http"}, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _is_json(scope: Scope) -> bool:
    media = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def build_app(
    service: str,
    *,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    readiness: Readiness | None = None,
    title: str | None = None,
    version: str = "1.0.0",
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
    nul_allowed: tuple[str, ...] = (),
) -> FastAPI:
    app = FastAPI(
        title=title or f"FlowChat {service}",
        version=version,
        lifespan=lifespan,
        telemetry=NO_TELEMETRY,  # type: ignore[arg-type]
    )
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete_openapi(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
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

    lean_routes: list[LeanRoute] = []
    app.state.lean_routes = lean_routes
    app.add_middleware(GuardJsonBody, limit=max_json_bytes, nul_allowed=nul_allowed)
    app.add_middleware(LeanLane, routes=lean_routes)  # inside ObserveRequests, before the guard
    app.add_middleware(ObserveRequests, service=service)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(InvalidCursor)
    async def invalid_cursor(_: Request, exc: InvalidCursor) -> JSONResponse:
        return JSONResponse(error_body("invalid_cursor", str(exc)), status_code=400)

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

    async def dependency_down(_: Request, exc: Exception) -> JSONResponse:
        # PostgreSQL terminated the connection, Redis did not answer: the pool gets a
        # new connection for the next request, so the caller may simply retry.
        structlog.get_logger(__name__).warning(
            "request failed: a dependency is unavailable", error=repr(exc)
        )
        return JSONResponse(
            error_body("dependency_unavailable", "a dependency did not answer; retry shortly"),
            status_code=503,
            headers={"Retry-After": "1"},
        )

    for exc_type in DEPENDENCY_DOWN:
        app.add_exception_handler(exc_type, dependency_down)

    return app
