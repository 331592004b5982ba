"""The Cloud API send over HTTP: auth, Meta's shapes, statuses, mark-as-read."""

from __future__ import annotations

import asyncio
import re

WA = "2348010000002"


def assert_meta_error(r, status: int, code: int) -> dict:  # type: ignore[type-arg]
    assert r.status_code == status, r.text
    error = dict(r.json()["error"])
    assert error["code"] == code
    assert error["message"].startswith(f"(#{code}) ")
    assert error["type"] == "OAuthException"
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert error["error_data"]["details"]
    assert error["fbtrace_id"]
    return error


async def test_send_answers_exactly_like_meta(client, number, h):
    await h.open_window(client, number, WA)
    r = await client.post(number.messages_path, headers=number.auth, json=h.text("+" + WA))
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"messaging_product", "contacts", "messages"}
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "+" + WA, "wa_id": WA}]
    wamid = body["messages"][0]["id"]
    assert re.fullmatch(r"wamid\.[A-Za-z0-9+/=]{20,}", wamid)
    again = await client.post(number.messages_path, headers=number.auth, json=h.text(WA))
    assert again.json()["messages"][0]["id"] != wamid


async def test_bad_or_missing_token_is_190(client, number, receiver, h):
    other = await h.register(client, receiver)
    for i, headers in enumerate(({}, {"Authorization": "Bearer nope"}, other.auth)):
        r = await client.post(number.messages_path, headers=headers, json=h.text(WA))
        if i == 2:
            # a real token without access to this number: the object "does not exist"
            error = assert_meta_error(r, 400, 100)
            assert error["error_subcode"] == 33
        else:
            assert_meta_error(r, 401, 190)
    r = await client.post("/v23.0/000/messages", headers=number.auth, json=h.text(WA))
    assert_meta_error(r, 400, 100)


async def test_malformed_requests_get_meta_errors_never_500(client, number, h):
    await h.open_window(client, number, WA)
    cases = [
        (b"{not json", 100),
        (b"", 100),
        (b"[]", 100),
        (b'"text"', 100),
        (b'{"messaging_product": "whatsapp", "to": "1", "type": "text"}', 131008),
        (b'{"to": "2348010000002", "type": "text", "text": {"body": "x"}}', 131008),
        (b'{"messaging_product": "sms", "to": "1", "type": "text", "text": {"body": "x"}}', 100),
        (b'{"messaging_product": "whatsapp", "to": 5, "type": "text", "text": {"body": "x"}}', 100),
        (b'{"messaging_product": "whatsapp", "to": "1", "type": "fax"}', 131051),
    ]
    for raw, code in cases:
        r = await client.post(
            number.messages_path,
            headers={**number.auth, "Content-Type": "application/json"},
            content=raw,
        )
        assert_meta_error(r, 400, code)


async def test_limits_with_meta_codes(client, number, h):
    await h.open_window(client, number, WA)
    too_long = h.text(WA, "x" * 4097)
    assert_meta_error(
        await client.post(number.messages_path, headers=number.auth, json=too_long), 400, 131009
    )
    ok = h.text(WA, "x" * 4096)
    assert (await client.post(number.messages_path, headers=number.auth, json=ok)).is_success
    both = {
        "messaging_product": "whatsapp",
        "to": WA,
        "type": "image",
        "image": {"id": "1", "link": "https://example.com/a.jpg"},
    }
    assert_meta_error(
        await client.post(number.messages_path, headers=number.auth, json=both), 400, 100
    )
    four_buttons = {
        "messaging_product": "whatsapp",
        "to": WA,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "Pick"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": str(i), "title": f"B{i}"}} for i in range(4)
                ]
            },
        },
    }
    assert_meta_error(
        await client.post(number.messages_path, headers=number.auth, json=four_buttons),
        400,
        131009,
    )


async def test_statuses_sent_delivered_read_in_order(client, number, receiver, h):
    await h.open_window(client, number, WA)
    r = await client.post(
        number.messages_path,
        headers=number.auth,
        json=h.text(WA, biz_opaque_callback_data="tenant-7:cmd-42"),
    )
    wamid = r.json()["messages"][0]["id"]
    assert await h.wait_statuses(receiver, wamid, 3) == ["sent", "delivered", "read"]
    statuses = receiver.statuses(wamid)
    customer = (await client.get(f"/sandbox/customers/{WA}")).json()
    for status in statuses:
        assert status["recipient_id"] == WA
        assert status["recipient_user_id"] == customer["user_id"]
        assert status["biz_opaque_callback_data"] == "tenant-7:cmd-42"
        assert status["timestamp"].isdigit()
        assert status["conversation"]["origin"] == {"type": "service"}
        # Meta: the conversation's expiration_timestamp comes with `sent` only
        assert ("expiration_timestamp" in status["conversation"]) == (status["status"] == "sent")
        assert status["pricing"] == {
            "billable": False,
            "pricing_model": "PMP",
            "category": "service",
            "type": "free_customer_service",
        }
    status_posts = [q for q in receiver.requests if b'"statuses"' in q.body]
    assert all(h.signature_ok(q, number.app_secret) for q in status_posts)
    value = status_posts[0].json()["entry"][0]["changes"][0]["value"]
    assert value["metadata"]["phone_number_id"] == number.phone_number_id
    # sent/delivered/read carry the person in `contacts` (as Meta's current payloads do)
    for post in status_posts:
        contacts = post.json()["entry"][0]["changes"][0]["value"]["contacts"]
        assert contacts == [{"wa_id": WA, "user_id": customer["user_id"]}]
    assert "biz_opaque_callback_data" not in str(
        [s for s in receiver.statuses() if s["id"] != wamid]
    )


async def test_customer_that_never_reads(client, number, receiver, h):
    await client.put(f"/sandbox/customers/{WA}", json={"reads": False})
    await h.open_window(client, number, WA)
    r = await client.post(number.messages_path, headers=number.auth, json=h.text(WA))
    wamid = r.json()["messages"][0]["id"]
    assert await h.wait_statuses(receiver, wamid, 2) == ["sent", "delivered"]
    await asyncio.sleep(0.1)
    assert [s["status"] for s in receiver.statuses(wamid)] == ["sent", "delivered"]


async def test_undeliverable_customer_is_accepted_then_fails_131026(client, number, receiver, h):
    r = await client.put(f"/sandbox/customers/{WA}", json={"undeliverable": True})
    assert r.json()["undeliverable"] is True
    await h.open_window(client, number, WA)
    r = await client.post(number.messages_path, headers=number.auth, json=h.text(WA))
    assert r.status_code == 200
    wamid = r.json()["messages"][0]["id"]
    assert await h.wait_statuses(receiver, wamid, 1) == ["failed"]
    error = receiver.statuses(wamid)[0]["errors"][0]
    assert error["code"] == 131026
    assert error["title"]
    ledger = (await client.get("/sandbox/messages", params={"to": WA})).json()
    assert ledger[0]["errors"][0]["code"] == 131026


async def test_mark_as_read(client, number, h):
    inbound = await h.open_window(client, number, WA)
    body = {"messaging_product": "whatsapp", "status": "read", "message_id": inbound}
    r = await client.post(number.messages_path, headers=number.auth, json=body)
    assert r.status_code == 200
    assert r.json() == {"success": True}
    transcript = (await client.get(f"/sandbox/conversations/{WA}")).json()
    assert transcript[0]["read"] is True
    typing = {**body, "typing_indicator": {"type": "text"}}
    assert (await client.post(number.messages_path, headers=number.auth, json=typing)).is_success
    unknown = {**body, "message_id": "wamid.unknown"}
    assert_meta_error(
        await client.post(number.messages_path, headers=number.auth, json=unknown), 400, 100
    )
    missing = {"messaging_product": "whatsapp", "status": "read"}
    assert_meta_error(
        await client.post(number.messages_path, headers=number.auth, json=missing), 400, 131008
    )


async def test_outside_window_is_131047(client, number, h):
    r = await client.post(number.messages_path, headers=number.auth, json=h.text("2348019999999"))
    assert_meta_error(r, 400, 131047)
