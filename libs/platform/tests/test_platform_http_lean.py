"""Lean routes served by the lean lane answer as if the router had served them: path
parameters, the app's error handlers, request metrics and correlation ids, the OpenAPI
document; other routes are untouched."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from flowchat_platform import metrics
from flowchat_platform.errors import FlowchatError
from flowchat_platform.http import (
    CORRELATION_HEADER,
    ApiError,
    LeanRoute,
    build_app,
    handle_errors,
    include_lean,
    read_bounded,
)


class HookRefused(FlowchatError):
    pass


def lean_router() -> APIRouter:
    router = APIRouter(route_class=LeanRoute)

    @router.post("/hooks/{account_id}", summary="a provider's webhook")
    async def hook(request: Request) -> Response:
        account_id = request.path_params["account_id"]
        if account_id == "refused":
            raise HookRefused("not this one")
        if account_id == "api-error":
            raise ApiError(415, "unsupported_media_type", "wrong type")
        if account_id == "crash":
            raise RuntimeError("a bug")
        route = request.scope["route"].path
        body = await request.body()
        return JSONResponse(
            {"account_id": account_id, "route": route, "bytes": len(body)},
            headers={"X-Seen": request.state.correlation_id},
        )

    return router


async def test_lean_routes_answer_as_the_router_would() -> None:
    app = build_app("lean-demo")
    handle_errors(app, HookRefused, lambda _, exc: ApiError(401, "refused", str(exc)))
    include_lean(app, lean_router())

    @app.post("/other")
    async def other() -> dict[str, str]:
        return {"served": "by the router"}

    before = metrics.HTTP_REQUESTS.labels("lean-demo", "POST", "/hooks/{account_id}", 200)._value
    count = before.get()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        ok = await client.post(
            "/hooks/acc-1", content=b'{"a": "\\u0000"}', headers={CORRELATION_HEADER: "c-1"}
        )
        refused = await client.post("/hooks/refused", content=b"{}")
        api_error = await client.post("/hooks/api-error", content=b"{}")
        crash = await client.post("/hooks/crash", content=b"{}")
        wrong_method = await client.get("/hooks/acc-1")
        routed = await client.post("/other")
        schema = (await client.get("/openapi.json")).json()
    assert ok.status_code == 200
    assert ok.json() == {"account_id": "acc-1", "route": "/hooks/{account_id}", "bytes": 15}
    assert ok.headers["x-seen"] == "c-1"
    assert ok.headers[CORRELATION_HEADER] == "c-1"
    assert (
        metrics.HTTP_REQUESTS.labels("lean-demo", "POST", "/hooks/{account_id}", 200)._value.get()
        == count + 1
    )
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "refused"
    assert api_error.status_code == 415
    assert api_error.json()["error"]["code"] == "unsupported_media_type"
    assert crash.status_code == 500
    assert wrong_method.status_code == 405
    assert routed.json() == {"served": "by the router"}
    assert schema["paths"]["/hooks/{account_id}"]["post"]["summary"] == "a provider's webhook"


def test_include_lean_takes_lean_routes_only() -> None:
    app = build_app("lean-demo")
    router = APIRouter()

    @router.post("/plain")
    async def plain() -> None:
        return None

    with pytest.raises(TypeError):
        include_lean(app, router)


async def test_read_bounded_refuses_a_declared_or_streamed_body_over_the_limit() -> None:
    app = build_app("lean-demo")
    router = APIRouter(route_class=LeanRoute)
    refusals: list[int] = []

    def too_large() -> ApiError:
        refusals.append(1)
        return ApiError(413, "payload_too_large", "the body exceeds 8 bytes")

    @router.post("/bounded")
    async def bounded(request: Request) -> Response:
        body = await read_bounded(request, 8, too_large)
        again = await request.body()  # read once, given again
        return JSONResponse({"body": body.decode(), "again": again.decode()})

    include_lean(app, router)

    async def streamed(parts: list[bytes]) -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        at_limit = await client.post("/bounded", content=b"12345678")
        chunked_ok = await client.post("/bounded", content=streamed([b"1234", b"5678"]))
        declared = await client.post("/bounded", content=b"123456789")
        assert len(refusals) == 1
        chunked = await client.post("/bounded", content=streamed([b"12345", b"6789"]))
    assert at_limit.json() == {"body": "12345678", "again": "12345678"}
    assert chunked_ok.json() == {"body": "12345678", "again": "12345678"}
    for refused in (declared, chunked):
        assert refused.status_code == 413
        assert refused.json()["error"] == {
            "code": "payload_too_large",
            "message": "the body exceeds 8 bytes",
            "details": [],
        }
    assert len(refusals) == 2
