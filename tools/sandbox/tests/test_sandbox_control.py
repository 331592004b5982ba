"""The control API: numbers, customers writing (signed Meta webhooks), ledger, transcript."""

from __future__ import annotations

import re

import pytest

from flowchat_platform.testing import eventually
from flowchat_sandbox.spec import load_spec

WA = "2348010000001"


@pytest.fixture(scope="module")
def spec_webhooks() -> dict[str, dict]:  # type: ignore[type-arg]
    """Meta's own inbound webhook examples, from the spec."""
    path = load_spec()["paths"]["/whatsapp/webhooks"]["post"]
    examples = path["requestBody"]["content"]["application/json"]["examples"]
    return {name: example["value"] for name, example in examples.items()}


#: Keys Meta's current payloads carry that the v23.0 spec's examples predate (BSUIDs:
#: ``contacts[].user_id``, ``messages[].from_user_id``); see the README's differences.
NEWER_THAN_SPEC = frozenset({"user_id", "from_user_id"})


def same_shape(ours, theirs, where="payload"):
    """Same keys at every level (values differ: ids, names, times), BSUIDs aside."""
    assert type(ours) is type(theirs), where
    if isinstance(theirs, dict):
        mine = set(ours) - (NEWER_THAN_SPEC - set(theirs))
        assert mine == set(theirs), f"{where}: {sorted(ours)} != {sorted(theirs)}"
        for key in theirs:
            same_shape(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            same_shape(a, b, f"{where}[{i}]")


async def test_register_number_never_echoes_secrets(client, number):
    r = await client.get("/sandbox/numbers")
    listed = {n["phone_number_id"]: n for n in r.json()}
    shown = listed[number.phone_number_id]
    assert shown["waba_id"] == number.waba_id
    assert shown["throughput_mps"] == 80
    assert shown["quality_rating"] == "GREEN"
    assert "access_token" not in shown
    assert "app_secret" not in shown
    assert number.access_token not in r.text


async def test_register_number_rejects_bad_input(client):
    r = await client.post("/sandbox/numbers", json={"phone_number_id": "1"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"


async def test_customer_text_posts_signed_meta_webhook(client, number, receiver, h, spec_webhooks):
    r = await client.post(
        f"/sandbox/customers/{WA}/messages",
        json={"phone_number_id": number.phone_number_id, "text": "Hi there", "name": "Ada"},
    )
    assert r.status_code == 200
    wamid = r.json()["id"]
    assert wamid.startswith("wamid.")
    # the first delivery attempt is made before the control call answers
    assert len(receiver.requests) == 1
    received = receiver.requests[0]
    assert received.path == "/webhooks/meta"
    assert h.signature_ok(received, number.app_secret)
    assert not h.signature_ok(received, "another-secret")
    payload = received.json()
    same_shape(payload, spec_webhooks["Text Message"])
    assert payload["object"] == "whatsapp_business_account"
    entry = payload["entry"][0]
    assert entry["id"] == number.waba_id
    change = entry["changes"][0]
    assert change["field"] == "messages"
    value = change["value"]
    assert value["messaging_product"] == "whatsapp"
    assert value["metadata"] == {
        "display_phone_number": number.display_phone_number,
        "phone_number_id": number.phone_number_id,
    }
    (contact,) = value["contacts"]
    assert contact == {"profile": {"name": "Ada"}, "wa_id": WA, "user_id": contact["user_id"]}
    assert re.fullmatch(r"NG\.\d{20}", contact["user_id"])  # a BSUID: CC. + digits
    message = value["messages"][0]
    assert message["from"] == WA
    assert message["from_user_id"] == contact["user_id"]
    assert message["id"] == wamid
    assert message["type"] == "text"
    assert message["text"] == {"body": "Hi there"}
    assert message["timestamp"].isdigit()


async def test_customer_button_and_list_replies(client, number, receiver, spec_webhooks):
    await client.post(
        f"/sandbox/customers/{WA}/messages",
        json={
            "phone_number_id": number.phone_number_id,
            "button_reply": {"id": "yes", "title": "Yes"},
            "context": {"message_id": "wamid.earlier"},
        },
    )
    await client.post(
        f"/sandbox/customers/{WA}/messages",
        json={
            "phone_number_id": number.phone_number_id,
            "list_reply": {"id": "sku-1", "title": "Hammer", "description": "Steel"},
        },
    )
    same_shape(receiver.requests[0].json(), spec_webhooks["Interactive Button Reply Message"])
    button, listed = receiver.messages()
    assert button["type"] == "interactive"
    assert button["context"] == {"from": number.display_phone_number, "id": "wamid.earlier"}
    assert button["interactive"] == {
        "type": "button_reply",
        "button_reply": {"id": "yes", "title": "Yes"},
    }
    assert listed["interactive"] == {
        "type": "list_reply",
        "list_reply": {"id": "sku-1", "title": "Hammer", "description": "Steel"},
    }


async def test_customer_message_needs_one_kind_and_a_known_number(client, number):
    r = await client.post(
        f"/sandbox/customers/{WA}/messages",
        json={"phone_number_id": number.phone_number_id, "text": "a", "button_reply": None},
    )
    assert r.status_code == 200
    r = await client.post(
        f"/sandbox/customers/{WA}/messages", json={"phone_number_id": number.phone_number_id}
    )
    assert r.status_code == 422
    r = await client.post(
        f"/sandbox/customers/{WA}/messages", json={"phone_number_id": "nope", "text": "a"}
    )
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


async def test_ledger_and_transcript_in_order(client, number, receiver, h):
    await h.open_window(client, number, WA)
    first = await client.post(
        number.messages_path,
        headers=number.auth,
        json=h.text(WA, "one", biz_opaque_callback_data="cmd-1"),
    )
    assert first.status_code == 200, first.text
    second = await client.post(number.messages_path, headers=number.auth, json=h.text(WA, "two"))
    wamid = first.json()["messages"][0]["id"]
    await h.wait_statuses(receiver, wamid, 3)

    ledger = (await client.get("/sandbox/messages", params={"to": WA})).json()
    assert [e["wamid"] for e in ledger] == [wamid, second.json()["messages"][0]["id"]]
    entry = ledger[0]
    assert entry["body"] == h.text(WA, "one", biz_opaque_callback_data="cmd-1")
    assert entry["biz_opaque_callback_data"] == "cmd-1"
    assert entry["phone_number_id"] == number.phone_number_id
    assert entry["time"]
    assert [s["status"] for s in entry["statuses"]] == ["sent", "delivered", "read"]
    assert entry["errors"] == []
    assert (await client.get("/sandbox/messages", params={"to": "999999"})).json() == []
    assert (
        await client.get("/sandbox/messages", params={"phone_number_id": number.phone_number_id})
    ).json()[0]["wamid"] == wamid

    transcript = (await client.get(f"/sandbox/conversations/{WA}")).json()
    assert [(t["direction"], t["text"]) for t in transcript] == [
        ("inbound", "hello"),
        ("outbound", "one"),
        ("outbound", "two"),
    ]
    assert transcript[1]["status"] == "read"
    assert transcript[1]["message"]["type"] == "text"


async def test_reset_clears_everything(client, number, h):
    await h.open_window(client, number, WA)
    r = await client.delete("/sandbox/state")
    assert r.status_code == 204
    assert (await client.get("/sandbox/numbers")).json() == []
    assert (await client.get(f"/sandbox/conversations/{WA}")).json() == []
    r = await client.post(number.messages_path, headers=number.auth, json=h.text(WA))
    assert r.status_code == 401


async def test_inbound_webhook_retried_until_200(client, number, receiver):
    receiver.answers.extend([500, 503])
    r = await client.post(
        f"/sandbox/customers/{WA}/messages",
        json={"phone_number_id": number.phone_number_id, "text": "retry me"},
    )
    assert r.status_code == 200
    await eventually(lambda: len(receiver.requests) == 3, timeout_s=5)
    bodies = {req.body for req in receiver.requests}
    assert len(bodies) == 1  # the same payload redelivered
    deliveries = (await client.get("/sandbox/webhooks")).json()
    assert deliveries[0]["state"] == "delivered"
    assert [a["status"] for a in deliveries[0]["attempts"]] == [500, 503, 200]


async def test_webhook_retries_are_bounded(client, number, receiver):
    receiver.answers.extend([500] * 10)
    await client.post(
        f"/sandbox/customers/{WA}/messages",
        json={"phone_number_id": number.phone_number_id, "text": "lost"},
    )

    async def failed():
        deliveries = (await client.get("/sandbox/webhooks")).json()
        return deliveries and deliveries[0]["state"] == "failed"

    await eventually(failed, timeout_s=5)
    assert len(receiver.requests) == 3  # webhook_max_attempts in the test settings
