"""The completed OpenAPI document: examples of every body, error examples, required
headers a route checks itself, CSV request bodies."""

from typing import Annotated

from fastapi import Header, Request
from pydantic import BaseModel, Field

from flowchat_platform.http import PageCursor, PageLimit, build_app
from flowchat_platform.openapi import REQUIRED, csv_request_body
from flowchat_platform.pagination import Page


class Thing(BaseModel):
    name: str = Field(examples=["cement"])
    count: int


class ThingPage(Page[Thing]):
    """Things."""


def _doc():
    app = build_app("demo")

    @app.post("/things", tags=["things"])
    async def create(
        thing: Thing, key: Annotated[str | None, Header(alias="Key", json_schema_extra=REQUIRED)]
    ) -> Thing:
        return thing

    @app.get("/things", tags=["things"])
    async def listing(limit: PageLimit = 50, cursor: PageCursor = None) -> ThingPage:
        return ThingPage(items=[], next_cursor=None)

    @app.post("/things/import", tags=["things"], openapi_extra=csv_request_body("name\nx\n", "CSV"))
    async def load(request: Request) -> Thing:
        return Thing(name=(await request.body()).decode(), count=1)

    return app.openapi()


def test_every_body_has_an_example_built_from_its_schema():
    paths = _doc()["paths"]
    create = paths["/things"]["post"]
    body = create["requestBody"]["content"]["application/json"]
    assert body["example"] == {"name": "cement", "count": 1}
    assert create["responses"]["200"]["content"]["application/json"]["example"]["name"] == "cement"
    page = paths["/things"]["get"]["responses"]["200"]["content"]["application/json"]["example"]
    assert set(page) == {"items", "next_cursor"}
    assert page["next_cursor"]


def test_errors_have_the_error_body_and_an_example():
    get = _doc()["paths"]["/things"]["get"]
    bad_cursor = get["responses"]["400"]["content"]["application/json"]
    assert bad_cursor["schema"] == {"$ref": "#/components/schemas/Error"}
    assert bad_cursor["example"]["error"]["code"] == "invalid_cursor"
    invalid = get["responses"]["422"]["content"]["application/json"]
    assert invalid["example"]["error"]["code"] == "invalid_request"


def test_a_header_the_route_checks_itself_is_documented_as_required():
    params = _doc()["paths"]["/things"]["post"]["parameters"]
    assert [(p["name"], p["required"]) for p in params] == [("Key", True)]
    assert "x-flowchat-required" not in params[0]["schema"]


def test_a_csv_import_declares_its_body():
    body = _doc()["paths"]["/things/import"]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"]["text/csv"]["example"] == "name\nx\n"
