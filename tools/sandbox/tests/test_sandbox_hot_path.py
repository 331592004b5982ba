"""A turn's two routes (the send, a customer's message) are served by the lean lane:
they still answer through the error handlers, are labelled in the request metrics and
documented, and bound and validate their bodies as the full stack did."""

from __future__ import annotations

from flowchat_sandbox.app import create_app
from flowchat_sandbox.routes.graph import SEND_PATH
from flowchat_sandbox.routes.hot import MAX_JSON_BYTES
from flowchat_sandbox.settings import Settings

CUSTOMER_PATH = "/sandbox/customers/{wa_id}/messages"


def test_turn_routes_are_lean_and_documented():
    app = create_app(Settings())
    assert sorted(route.path for route in app.state.lean_routes) == [CUSTOMER_PATH, SEND_PATH]
    paths = app.openapi()["paths"]
    assert "post" in paths[SEND_PATH]
    assert "requestBody" in paths[CUSTOMER_PATH]["post"]  # the FastAPI route documents it


async def test_send_route_errors_and_metrics(client, number, h):
    r = await client.post(number.messages_path, headers=number.auth, content=b"{nope")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == 100
    assert r.headers["x-correlation-id"]
    metrics = (await client.get("/metrics")).text
    assert f'route="{SEND_PATH}",service="sandbox",status="400"' in metrics


async def test_send_route_refuses_an_oversized_json_body(client, number):
    headers = {**number.auth, "content-type": "application/json"}
    r = await client.post(
        number.messages_path, headers=headers, content=b" " * (MAX_JSON_BYTES + 1)
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


async def test_customer_message_errors_as_fastapi_gives_them(client, number):
    path = "/sandbox/customers/2348000000001/messages"
    cases = [
        (b"", "application/json", [{"loc": ["body"], "type": "missing"}]),
        (b"{nope", "application/json", [{"loc": ["body", "1"], "type": "json_invalid"}]),
        (b'{"text": "hi"}', None, [{"loc": ["body"], "type": "model_attributes_type"}]),
        (
            b'{"text": "hi", "x": 1}',
            "application/json",
            [{"loc": ["body", "x"], "type": "extra_forbidden"}],
        ),
        (
            b'{"text": ""}',
            "application/vnd.api+json",
            [{"loc": ["body", "text"], "type": "string_too_short"}],
        ),
    ]
    for content, content_type, details in cases:
        headers = {"content-type": content_type} if content_type else {}
        r = await client.post(path, content=content, headers=headers)
        assert r.status_code == 422, content
        got = [{"loc": d["loc"], "type": d["type"]} for d in r.json()["error"]["details"]]
        assert got == details, content
    r = await client.post(path, json={"phone_number_id": number.phone_number_id})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"
    metrics = (await client.get("/metrics")).text
    assert f'route="{CUSTOMER_PATH}",service="sandbox",status="422"' in metrics
