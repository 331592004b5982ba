"""Customers as identities: BSUIDs, usernames, hidden phones, sends by ``recipient``, and
the webhooks that carry them (Meta's current payloads, README "Customers")."""

from __future__ import annotations

import re
from typing import Any

from flowchat_platform.testing import eventually

WA = "2348010000777"


async def hidden_customer(client, number) -> dict[str, Any]:
    r = await client.put(
        f"/sandbox/customers/{WA}",
        json={"username": "ada.o", "phone_hidden": True, "parent": True, "name": "Ada"},
    )
    assert r.status_code == 200, r.text
    customer: dict[str, Any] = r.json()
    assert re.fullmatch(r"NG\.\d{20}", customer["user_id"])
    assert re.fullmatch(r"NG\.ENT\.\d{20}", customer["parent_user_id"])
    r = await client.post(
        f"/sandbox/customers/{customer['user_id']}/messages",
        json={"phone_number_id": number.phone_number_id, "text": "hi"},
    )
    assert r.status_code == 200, r.text
    return customer


async def test_a_hidden_phone_never_reaches_a_webhook(client, number, receiver):
    customer = await hidden_customer(client, number)
    (value,) = receiver.values()
    assert value["contacts"] == [
        {
            "profile": {"name": "Ada", "username": "ada.o"},
            "user_id": customer["user_id"],
            "parent_user_id": customer["parent_user_id"],
        }
    ]
    (message,) = value["messages"]
    assert "from" not in message
    assert message["from_user_id"] == customer["user_id"]
    assert message["from_parent_user_id"] == customer["parent_user_id"]
    assert WA not in receiver.requests[0].body.decode()  # not even inside the wamid


async def test_only_a_user_with_a_username_hides_the_phone(client):
    r = await client.put("/sandbox/customers/2348010000778", json={"phone_hidden": True})
    assert r.status_code == 422


async def test_to_wins_over_recipient_and_one_of_them_is_required(client, number, h):
    customer = await hidden_customer(client, number)
    both = {**h.text(WA), "recipient": customer["user_id"]}
    r = await client.post(number.messages_path, headers=number.auth, json=both)
    assert r.status_code == 200, r.text
    assert r.json()["contacts"] == [{"input": WA, "wa_id": WA}]
    by_parent = {**h.text(WA), "recipient": customer["parent_user_id"]}
    del by_parent["to"]
    r = await client.post(number.messages_path, headers=number.auth, json=by_parent)
    assert r.status_code == 200, r.text
    assert r.json()["contacts"] == [
        {"input": customer["parent_user_id"], "user_id": customer["user_id"]}
    ]
    neither = h.text(WA)
    del neither["to"]
    r = await client.post(number.messages_path, headers=number.auth, json=neither)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == 131008
    unknown = {**neither, "recipient": "US.13491208655302741918"}
    r = await client.post(number.messages_path, headers=number.auth, json=unknown)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == 100


async def test_failed_statuses_name_only_the_id_the_send_used(client, number, receiver, h):
    customer = await hidden_customer(client, number)
    await client.put(f"/sandbox/customers/{WA}", json={"undeliverable": True})
    by_phone = await client.post(number.messages_path, headers=number.auth, json=h.text(WA))
    send = h.text(WA)
    del send["to"]
    send["recipient"] = customer["user_id"]
    by_bsuid = await client.post(number.messages_path, headers=number.auth, json=send)
    phone_id = by_phone.json()["messages"][0]["id"]
    bsuid_id = by_bsuid.json()["messages"][0]["id"]
    await eventually(lambda: len(receiver.statuses()) >= 2, timeout_s=5)
    (to_phone,) = receiver.statuses(phone_id)
    assert to_phone["recipient_id"] == WA
    assert "recipient_user_id" not in to_phone
    (to_bsuid,) = receiver.statuses(bsuid_id)
    assert "recipient_id" not in to_bsuid
    assert to_bsuid["recipient_user_id"] == customer["user_id"]
    assert to_bsuid["recipient_parent_user_id"] == customer["parent_user_id"]
    for value in receiver.values():
        if "statuses" in value:
            assert "contacts" not in value  # Meta omits contacts on failed


async def test_user_id_change_keeps_the_person(client, number, receiver, h):
    before = await hidden_customer(client, number)
    r = await client.post(
        f"/sandbox/customers/{before['user_id']}/user-id-change",
        json={"phone_number_id": number.phone_number_id},
    )
    assert r.status_code == 200, r.text
    after = r.json()["customer"]
    assert after["user_id"] != before["user_id"]
    message = receiver.messages()[-1]
    assert "from" not in message  # the phone is hidden
    assert message["type"] == "system"
    assert message["system"] == {
        "body": "User Ada changed their user ID",
        "type": "user_changed_user_id",
        "user_id": after["user_id"],
        "parent_user_id": after["parent_user_id"],
        "previous_user_id": before["user_id"],
        "previous_parent_user_id": before["parent_user_id"],
    }
    assert "contacts" not in list(receiver.values())[-1]
    # the new BSUID names the same person: the window the customer opened still holds
    send = h.text(WA)
    del send["to"]
    send["recipient"] = after["user_id"]
    r = await client.post(number.messages_path, headers=number.auth, json=send)
    assert r.status_code == 200, r.text


async def test_preferences_webhook_and_its_older_name(client, number, receiver):
    customer = await hidden_customer(client, number)
    r = await client.post(
        f"/sandbox/customers/{WA}/preferences",
        json={"phone_number_id": number.phone_number_id, "value": "stop"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["customer"]["opted_out_marketing"] is True
    change = receiver.requests[-1].json()["entry"][0]["changes"][0]
    assert change["field"] == "user_preferences"
    (item,) = change["value"]["user_preferences"]
    assert item["user_id"] == customer["user_id"]
    assert "wa_id" not in item
    assert (item["category"], item["value"]) == ("marketing_messages", "stop")
    assert item["detail"] == "User requested to stop marketing messages"
    assert isinstance(item["timestamp"], int)
    assert change["value"]["contacts"][0]["user_id"] == customer["user_id"]
    r = await client.post(
        f"/sandbox/customers/{WA}/preferences",
        json={
            "phone_number_id": number.phone_number_id,
            "value": "resume",
            "field": "user_marketing_preferences",
        },
    )
    assert r.json()["customer"]["opted_out_marketing"] is False
    assert receiver.requests[-1].json()["entry"][0]["changes"][0]["field"] == (
        "user_marketing_preferences"
    )


async def test_template_summary_true_counts(client, number):
    await client.post(
        "/sandbox/templates",
        json={"waba_id": number.waba_id, "name": "hello", "language": "en", "components": []},
    )
    r = await client.get(
        f"/v23.0/{number.waba_id}/message_templates",
        params={"summary": "true"},
        headers=number.auth,
    )
    assert r.json()["summary"] == {"total_count": 1}
    r = await client.get(f"/v23.0/{number.waba_id}/message_templates", headers=number.auth)
    assert "summary" not in r.json()
