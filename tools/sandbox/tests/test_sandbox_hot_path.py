"""The send route is served by a plain Starlette route in front of every other route:
it still answers through the error handlers and is labelled in the request metrics."""

from __future__ import annotations

from flowchat_sandbox.app import create_app
from flowchat_sandbox.routes.graph import SEND_PATH, HotRoute
from flowchat_sandbox.settings import Settings


def test_send_route_comes_first():
    app = create_app(Settings())
    first = app.router.routes[0]
    assert isinstance(first, HotRoute)
    assert first.path == SEND_PATH
    assert SEND_PATH in app.openapi()["paths"]  # still documented


async def test_send_route_errors_and_metrics(client, number, h):
    r = await client.post(number.messages_path, headers=number.auth, content=b"{nope")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == 100
    assert r.headers["x-correlation-id"]
    metrics = (await client.get("/metrics")).text
    assert f'route="{SEND_PATH}",service="sandbox",status="400"' in metrics
