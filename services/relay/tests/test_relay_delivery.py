"""Events delivered to real receivers on loopback, verified as receivers verify them:
the ``standardwebhooks`` package for the ``flowchat`` format, pywa's own check for
``meta``."""

from __future__ import annotations

import pytest
from pywa.utils import webhook_updates_validator
from relay_testkit import (
    ENCRYPTION_KEY,
    PHONE_NUMBER_ID,
    Harness,
    Receiver,
    StartRelay,
    wait_for,
)
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from flowchat_platform.crypto import SecretBox


async def test_message_status_delivered_and_verified_with_standardwebhooks(harness: Harness):
    receiver = Receiver()
    async with receiver.running():
        endpoint = await harness.create_endpoint(receiver.url, ["message.status"])
        assert endpoint["secret"].startswith("whsec_")
        sent = await harness.publish_status(status="failed", error=(131026, "Undeliverable"))
        await wait_for(lambda: receiver.accepted)

    got = receiver.accepted[0]
    event = Webhook(endpoint["secret"]).verify(got.body, got.headers)
    assert event["type"] == "message.status"
    assert event["id"] == f"evt_{sent['event_id']}" == got.headers["webhook-id"]
    assert event["tenant_id"] == "tnt_a"
    assert event["account_id"] == "acc_1"
    assert event["sequence"] == 1
    assert event["data"]["message_id"] == sent["message_id"]
    assert event["data"]["status"] == "failed"
    assert event["data"]["error"] == {"code": 131026, "title": "Undeliverable"}
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 44).verify(got.body, got.headers)


async def test_message_received_delivered_with_the_customer_and_sequence(harness: Harness):
    receiver = Receiver()
    async with receiver.running():
        endpoint = await harness.create_endpoint(receiver.url, ["message.received"])
        first = await harness.publish_inbound(text="one")
        await wait_for(lambda: len(receiver.accepted) == 1)
        await harness.publish_inbound(text="two")
        await harness.publish_inbound(text="other customer", wa_id="15559990000")
        await wait_for(lambda: len(receiver.accepted) == 3)

    webhook = Webhook(endpoint["secret"])
    events = [webhook.verify(r.body, r.headers) for r in receiver.accepted]
    assert events[0]["type"] == "message.received"
    assert events[0]["id"] == f"evt_{first.event_id}"
    data = events[0]["data"]
    assert data["customer"]["wa_id"] == "15551230001"
    assert data["customer"]["user_id"] == "US.15551230001"
    assert data["text"] == "one"
    assert data["phone_number_id"] == PHONE_NUMBER_ID
    by_text = {e["data"]["text"]: e["sequence"] for e in events}
    assert by_text == {"one": 1, "two": 2, "other customer": 1}


async def test_a_customers_messages_and_statuses_share_one_sequence(harness: Harness):
    """The customer writes (identified by phone and BSUID), the reply's status follows:
    one conversation, one sequence (1, 2, 3), whichever kind of event."""
    receiver = Receiver()
    wa_id = "15551230077"
    async with receiver.running():
        endpoint = await harness.create_endpoint(
            receiver.url, ["message.received", "message.status"]
        )
        await harness.publish_inbound(text="hello", wa_id=wa_id)
        await wait_for(lambda: len(receiver.accepted) == 1)
        await harness.publish_status(status="sent", recipient=wa_id)
        await wait_for(lambda: len(receiver.accepted) == 2)
        await harness.publish_inbound(text="again", wa_id=wa_id)
        await wait_for(lambda: len(receiver.accepted) == 3)

    webhook = Webhook(endpoint["secret"])
    events = [webhook.verify(r.body, r.headers) for r in receiver.accepted]
    assert [(e["type"], e["sequence"]) for e in events] == [
        ("message.received", 1),
        ("message.status", 2),
        ("message.received", 3),
    ]


async def test_meta_format_verified_with_pywa(harness: Harness):
    receiver = Receiver()
    async with receiver.running():
        endpoint = await harness.create_endpoint(receiver.url, format="meta")
        status = await harness.publish_status(status="read")
        inbound = await harness.publish_inbound(text="hi there")
        await wait_for(lambda: len(receiver.accepted) == 2)

    for got in receiver.accepted:
        assert webhook_updates_validator(
            endpoint["secret"], got.body, got.headers["x-hub-signature-256"]
        )
        assert not webhook_updates_validator("wrong", got.body, got.headers["x-hub-signature-256"])
    values = [r.json()["entry"][0]["changes"][0]["value"] for r in receiver.accepted]
    statuses = next(v["statuses"] for v in values if "statuses" in v)
    messages = next(v["messages"] for v in values if "messages" in v)
    assert statuses[0]["id"] == status["provider_message_id"]
    assert statuses[0]["status"] == "read"
    assert messages[0]["id"] == inbound.provider_message_id
    assert messages[0]["text"] == {"body": "hi there"}
    assert all(v["metadata"]["phone_number_id"] == PHONE_NUMBER_ID for v in values)
    assert receiver.accepted[0].json()["object"] == "whatsapp_business_account"


async def test_meta_bodies_parse_with_pywa(harness: Harness):
    """pywa's own update handling reads the bodies: a status and a text message."""
    from pywa.client import WhatsApp
    from pywa.types.message_status import MessageStatus

    receiver = Receiver()
    async with receiver.running():
        await harness.create_endpoint(receiver.url, ["message.status"], format="meta")
        sent = await harness.publish_status(status="delivered")
        await wait_for(lambda: receiver.accepted)

    wa = WhatsApp(phone_id=PHONE_NUMBER_ID, token="x", server=None, verify_token=None)
    status = MessageStatus.from_update(client=wa, update=receiver.accepted[0].json())
    assert status.id == sent["provider_message_id"]
    assert status.status.value == "delivered"


async def test_nothing_stored_when_no_endpoint_subscribes(harness: Harness):
    receiver = Receiver()
    async with receiver.running():
        await harness.create_endpoint(receiver.url, ["message.received"])
        await harness.create_endpoint(receiver.url, ["message.status"], key="fc_key_tenant_b_admin")
        await harness.publish_status(status="sent")  # tnt_a: no status subscriber
        marker = await harness.publish_inbound(text="marker")
        await wait_for(lambda: receiver.accepted)
    assert await harness.count("SELECT count(*) FROM events") == 1
    assert receiver.accepted[0].json()["id"] == f"evt_{marker.event_id}"


async def test_rotation_signs_with_both_secrets_during_the_overlap(harness: Harness):
    receiver = Receiver()
    async with receiver.running():
        endpoint = await harness.create_endpoint(receiver.url, ["message.status"])
        r = await harness.http.post(
            f"/v1/endpoints/{endpoint['id']}/rotate-secret",
            json={"overlap_s": 3600},
            headers=harness.auth(),
        )
        assert r.status_code == 200, r.text
        rotated = r.json()
        assert rotated["secret"] != endpoint["secret"]
        assert rotated["previous_secret_expires_at"] is not None
        await harness.publish_status()
        await wait_for(lambda: len(receiver.accepted) == 1)
        r = await harness.http.post(
            f"/v1/endpoints/{endpoint['id']}/rotate-secret",
            json={"overlap_s": 0},
            headers=harness.auth(),
        )
        newest = r.json()["secret"]
        await harness.publish_status()
        await wait_for(lambda: len(receiver.accepted) == 2)

    during, after = receiver.accepted
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    Webhook(endpoint["secret"]).verify(during.body, during.headers)
    Webhook(rotated["secret"]).verify(during.body, during.headers)
    Webhook(newest).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(rotated["secret"]).verify(after.body, after.headers)
    # the secret is shown only at creation and rotation
    shown = await harness.endpoint(endpoint["id"])
    assert "secret" not in shown


async def test_redelivered_source_makes_no_second_event(harness: Harness):
    receiver = Receiver()
    async with receiver.running():
        await harness.create_endpoint(receiver.url, ["message.status"])
        body = await harness.publish_status()
        await harness.publish_status(event_id=body["event_id"], message_id=body["message_id"])
        marker = await harness.publish_status()
        await wait_for(lambda: f"evt_{marker['event_id']}" in receiver.ids())
        await wait_for(lambda: len(receiver.accepted) >= 2)
    assert sorted(receiver.ids()) == sorted(
        [f"evt_{body['event_id']}", f"evt_{marker['event_id']}"]
    )


async def test_delivery_log_and_ping(harness: Harness):
    receiver = Receiver(answer=b"x" * 5000)
    async with receiver.running():
        endpoint = await harness.create_endpoint(receiver.url, ["message.status"])
        sent = await harness.publish_status()
        await wait_for(lambda: receiver.accepted)
        log = await wait_for(lambda: harness.attempts(endpoint["id"]))
        r = await harness.http.post(f"/v1/endpoints/{endpoint['id']}/ping", headers=harness.auth())
    assert log[0]["event_id"] == f"evt_{sent['event_id']}"
    assert log[0]["status_code"] == 200
    assert log[0]["outcome"] == "delivered"
    assert log[0]["attempt"] == 1
    assert len(log[0]["response"]) == 1024  # truncated to the response limit
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True
    ping = receiver.accepted[-1]
    assert Webhook(endpoint["secret"]).verify(ping.body, ping.headers)["type"] == "endpoint.ping"


async def test_secrets_encrypted_at_rest(harness: Harness):
    """Neither the current nor the previous secret is stored in the clear: the plain
    columns are empty and no column's text holds the secret or its key bytes; the
    stored tokens open with the relay's key."""
    endpoint = await harness.create_endpoint("https://hooks.example.com/x", ["message.status"])
    r = await harness.http.post(
        f"/v1/endpoints/{endpoint['id']}/rotate-secret",
        json={"overlap_s": 3600},
        headers=harness.auth(),
    )
    rotated = r.json()["secret"]
    row = await harness.db.fetchrow("SELECT * FROM endpoints WHERE id = $1", endpoint["id"])
    assert row is not None
    assert row["secret"] is None
    assert row["previous_secret"] is None
    stored = " ".join(str(v) for v in dict(row).values())
    for secret in (endpoint["secret"], rotated):
        assert secret.removeprefix("whsec_") not in stored
    box = SecretBox.from_keys(ENCRYPTION_KEY)
    assert box.decrypt(row["secret_enc"]) == rotated
    assert box.decrypt(row["previous_secret_enc"]) == endpoint["secret"]


async def test_secrets_stored_in_the_clear_are_encrypted_at_start(start_relay: StartRelay):
    """A row from before migration 0002 (plain ``secret``) is encrypted when the relay
    starts, and its deliveries are signed with that same secret."""
    receiver = Receiver()
    async with receiver.running():
        async with start_relay() as h:
            endpoint = await h.create_endpoint(receiver.url, ["message.status"])
            # as 0001 stored it: the secret in the clear, no token
            await h.db.execute(
                "UPDATE endpoints SET secret = $2, secret_enc = NULL WHERE id = $1",
                endpoint["id"],
                endpoint["secret"],
            )
        async with start_relay() as h:
            row = await h.db.fetchrow("SELECT * FROM endpoints WHERE id = $1", endpoint["id"])
            assert row is not None
            assert row["secret"] is None
            assert row["secret_enc"] is not None
            await h.publish_status()
            got = await wait_for(lambda: receiver.accepted)
    Webhook(endpoint["secret"]).verify(got[0].body, got[0].headers)
