"""A turn's routes (the Cloud API send, Twilio's send, a customer's message) are served
by the lean lane: they still answer through the error handlers, are labelled in the
request metrics and documented, and bound and validate their bodies as the full stack
did."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx

from flowchat_platform.testing import serve
from flowchat_sandbox.app import create_app
from flowchat_sandbox.routes.graph import SEND_PATH
from flowchat_sandbox.routes.hot import MAX_JSON_BYTES
from flowchat_sandbox.routes.twilio import MESSAGES_PATH
from flowchat_sandbox.settings import Settings

CUSTOMER_PATH = "/sandbox/customers/{wa_id}/messages"


def test_turn_routes_are_lean_and_documented():
    app = create_app(Settings())
    lean = sorted(route.path for route in app.state.lean_routes)
    assert lean == sorted([CUSTOMER_PATH, SEND_PATH, MESSAGES_PATH])
    paths = app.openapi()["paths"]
    assert "post" in paths[SEND_PATH]
    assert "post" in paths[MESSAGES_PATH]
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


#: What differs between two sends by nature: the message sid, the dates, the
#: correlation id; everything else of the answers must be the same bytes.
_SID = re.compile(rb"SM[0-9a-f]{32}")
_DATE = re.compile(rb"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")


def _answer(r: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    skip = {"date", "x-correlation-id", "server"}
    headers = [(k, v) for k, v in r.headers.multi_items() if k not in skip]
    return r.status_code, headers, _DATE.sub(b"<date>", _SID.sub(b"<sid>", r.content))


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 1 << 20):
        yield body[start : start + 1 << 20]


async def test_twilio_send_answers_in_the_lane_as_through_the_router(settings):
    """The same requests to two sandboxes, one serving Twilio's send by the lean lane,
    one (that route taken off its lane) by the router and FastAPI's dependencies:
    the same status, headers and body bytes, sids and dates aside."""
    lane, router = create_app(settings), create_app(settings)
    routes = router.state.lean_routes
    routes[:] = [route for route in routes if route.path != MESSAGES_PATH]
    sid, token = "AC" + secrets.token_hex(16), secrets.token_hex(16)
    account = {"account_sid": sid, "auth_token": token, "number": "+14155550100"}
    account["webhook_url"] = "http://127.0.0.1:9/webhooks/twilio"
    path = f"/2010-04-01/Accounts/{sid}/Messages.json"
    form = "application/x-www-form-urlencoded"
    good = httpx.BasicAuth(sid, token)
    ok = "To=whatsapp%3A%2B2348010000005&From=whatsapp%3A%2B14155550100"
    cases: list[tuple[str, dict[str, str], bytes | None, httpx.Auth]] = [
        ("text", {"content-type": form}, f"{ok}&Body=hi".encode(), good),
        ("template", {"content-type": form}, f"{ok}&ContentSid=HX1".encode(), good),
        (
            "media",
            {"content-type": form},
            f"{ok}&MediaUrl=https%3A%2F%2Fx%2Fa.jpg&MediaUrl=https%3A%2F%2Fx%2Fb.jpg".encode(),
            good,
        ),
        ("no To", {"content-type": form}, b"From=whatsapp%3A%2B14155550100&Body=x", good),
        ("no From", {"content-type": form}, b"To=whatsapp%3A%2B2348010000005&Body=x", good),
        ("no Body", {"content-type": form}, ok.encode(), good),
        ("empty", {"content-type": form}, b"", good),
        ("no body at all", {}, None, good),
        ("long Body", {"content-type": form}, f"{ok}&Body={'x' * 1601}".encode(), good),
        ("no auth", {"content-type": form}, f"{ok}&Body=hi".encode(), httpx.Auth()),
        (
            "wrong token",
            {"content-type": form},
            f"{ok}&Body=hi".encode(),
            httpx.BasicAuth(sid, "wrong"),
        ),
        (
            "other account",
            {"content-type": form},
            f"{ok}&Body=hi".encode(),
            httpx.BasicAuth("ACother", token),
        ),
        ("json", {"content-type": "application/json"}, b'{"To": "whatsapp:+2348"}', good),
        ("text/plain", {"content-type": "text/plain"}, f"{ok}&Body=hi".encode(), good),
        ("form as json", {"content-type": "application/json"}, ok.encode(), good),
        (
            "bad utf-8",
            {"content-type": form},
            f"{ok}&Body=\xff\xfe".encode("latin-1"),
            good,
        ),
        ("bad escapes", {"content-type": form}, f"{ok}&Body=%zz%&%%=1".encode(), good),
        ("no pairs", {"content-type": form}, b"&&&;==&Body", good),
        ("NUL", {"content-type": form}, f"{ok}&Body=a%00b".encode(), good),
        (
            "bad variables",
            {"content-type": form},
            f"{ok}&ContentSid=HX1&ContentVariables=%7B".encode(),
            good,
        ),
        (
            "json over the limit",
            {"content-type": "application/json"},
            b" " * (MAX_JSON_BYTES + 1),
            good,
        ),
    ]
    async with AsyncExitStack() as stack:
        clients = []
        for app in (lane, router):
            base = await stack.enter_async_context(serve(app))
            client = await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=30))
            r = await client.post("/sandbox/twilio/accounts", json=account)
            assert r.status_code == 201, r.text
            clients.append(client)
        answers: dict[str, list[tuple[int, list[tuple[str, str]], bytes]]] = {}
        for name, headers, content, credentials in cases:
            for client in clients:
                r = await client.post(path, headers=headers, content=content, auth=credentials)
                answers.setdefault(name, []).append(_answer(r))
            if name == "json over the limit":  # chunked: no Content-Length to refuse early
                streamed = []
                for client in clients:
                    r = await client.post(
                        path, headers=headers, content=_chunks(content or b""), auth=credentials
                    )
                    streamed.append(_answer(r))
                answers[name + ", chunked"] = streamed
        metrics = (await clients[0].get("/metrics")).text
    for name, (in_lane, by_router) in answers.items():
        assert in_lane == by_router, name
    statuses = {name: got[0][0] for name, got in answers.items()}
    assert statuses == {
        **dict.fromkeys(["text", "template", "media", "text/plain", "bad utf-8"], 201),
        **dict.fromkeys(["bad escapes", "NUL"], 201),  # parse_qs keeps what it can read
        **dict.fromkeys(["no To", "no From", "no Body", "empty", "no body at all"], 400),
        **dict.fromkeys(["long Body", "json", "form as json", "no pairs", "bad variables"], 400),
        **dict.fromkeys(["no auth", "wrong token", "other account"], 401),
        **dict.fromkeys(["json over the limit", "json over the limit, chunked"], 413),
    }
    assert f'route="{MESSAGES_PATH}",service="sandbox",status="201"' in metrics
