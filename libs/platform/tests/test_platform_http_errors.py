"""One handler per app turns a service's own exceptions into the one error body."""

from __future__ import annotations

import httpx
from fastapi import Request

from flowchat_platform.errors import FlowchatError
from flowchat_platform.http import ApiError, build_app, handle_errors


class DemoError(FlowchatError):
    pass


class Missing(DemoError):
    def __init__(self, message: str, *, thing_id: str) -> None:
        super().__init__(message)
        self.thing_id = thing_id


def to_api_error(request: Request, exc: DemoError) -> ApiError:
    if isinstance(exc, Missing):
        return ApiError(404, "not_found", str(exc), details=[{"thing_id": exc.thing_id}])
    return ApiError(503, "unavailable", f"{request.url.path}: {exc}", headers={"Retry-After": "2"})


async def test_domain_errors_become_the_error_body_through_one_handler() -> None:
    app = build_app("demo")
    handle_errors(app, DemoError, to_api_error)

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        if thing_id == "down":
            raise DemoError("the store is down")
        raise Missing("no such thing", thing_id=thing_id)

    @app.get("/api-error")
    async def api_error() -> None:
        raise ApiError(409, "conflict", "raised as before", details=[1])

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        missing = await client.get("/things/t-1")
        down = await client.get("/things/down")
        raised = await client.get("/api-error")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {"code": "not_found", "message": "no such thing", "details": [{"thing_id": "t-1"}]}
    }
    assert down.status_code == 503
    assert down.headers["retry-after"] == "2"
    assert down.json()["error"] == {
        "code": "unavailable",
        "message": "/things/down: the store is down",
        "details": [],
    }
    assert raised.status_code == 409
    assert raised.json() == {
        "error": {"code": "conflict", "message": "raised as before", "details": [1]}
    }


async def test_an_api_error_may_carry_another_apis_whole_body() -> None:
    app = build_app("demo")
    meta = {"error": {"message": "(#100) Invalid parameter", "code": 100}}

    @app.get("/meta")
    async def meta_error() -> None:
        raise ApiError(400, "100", "Invalid parameter", body=meta, headers={"X-A": "1"})

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/meta")
    assert r.status_code == 400
    assert r.json() == meta
    assert r.headers["x-a"] == "1"
