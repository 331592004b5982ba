"""The shared HTTP guard (JSON body limit, NUL refusal) and the documented error answers."""

from collections.abc import AsyncIterator

import httpx
from fastapi import Header
from pydantic import BaseModel

from flowchat_platform.http import build_app


class Item(BaseModel):
    name: str


def make_app():
    app = build_app("demo", max_json_bytes=1000, nul_allowed=("/hooks/",))

    @app.post("/items")
    async def create(item: Item) -> Item:
        return item

    @app.post("/hooks/provider")
    async def hook(item: Item) -> Item:
        return item

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str, q: str = "", authorization: str = Header("")) -> dict[str, str]:
        return {"id": thing_id, "q": q}

    return app


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


JSON = {"Content-Type": "application/json"}


async def test_json_body_over_the_limit_is_413_declared_or_chunked():
    body = b'{"name": "' + b"x" * 990 + b'"}'
    assert len(body) > 1000

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 100):
            yield body[i : i + 100]

    async with client(make_app()) as c:
        declared = await c.post("/items", content=body, headers=JSON)
        chunked = await c.post("/items", content=chunks(), headers=JSON)
        fits = await c.post("/items", json={"name": "x" * 900})
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"
    assert chunked.status_code == 413
    assert fits.status_code == 200
    assert fits.json() == {"name": "x" * 900}


async def test_nul_is_refused_in_bodies_paths_and_queries_but_not_in_webhooks():
    async with client(make_app()) as c:
        in_body = await c.post("/items", json={"name": "a\x00b"})
        in_query = await c.get("/things/1", params={"q": "a\x00b"})
        in_path = await c.get("/things/a%00b")
        escaped = await c.post("/items", json={"name": "a\\u0000b"})  # text, not a NUL
        hook = await c.post("/hooks/provider", json={"name": "a\x00b"})
    for r in (in_body, in_query, in_path):
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "nul_character"
    assert escaped.status_code == 200
    assert escaped.json() == {"name": "a\\u0000b"}
    assert hook.status_code == 200
    assert hook.json() == {"name": "a\x00b"}


async def test_openapi_documents_the_shared_error_answers_in_the_error_shape():
    async with client(make_app()) as c:
        doc = (await c.get("/openapi.json")).json()
    assert "Error" in doc["components"]["schemas"]
    create = doc["paths"]["/items"]["post"]["responses"]
    assert {"400", "413", "422"} <= set(create)
    assert "401" not in create  # no token is checked there
    thing = doc["paths"]["/things/{thing_id}"]["get"]["responses"]
    assert {"400", "401", "403", "404", "422", "503"} <= set(thing)
    for response in (create["422"], thing["404"]):
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}
