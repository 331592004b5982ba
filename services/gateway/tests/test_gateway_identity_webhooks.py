"""Issue 21 end to end: opt-outs from ``user_preferences``, username-only customers,
redelivered webhooks parking once. Real HTTP, RabbitMQ (own vhost), Redis, stub tenant."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from gateway_testkit import (
    PHONE_NUMBER_ID,
    Gateway,
    messages_change,
    meta_body,
    text_message,
)

from flowchat_contracts import InboundMessageV2, inbound_message_in, topology
from flowchat_contracts.shared_state import customer_window_key
from flowchat_gateway.events import BusinessEvent
from flowchat_platform.amqp import HEADER_REASON

pytestmark = pytest.mark.integration

BSUID = "US.13491208655302741918"
METADATA = {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID}


def user_preferences_change(value: str = "stop") -> dict[str, Any]:
    """Meta's ``user_preferences`` webhook, as its reference page shows it."""
    return {
        "field": "user_preferences",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": METADATA,
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
            "user_preferences": [
                {
                    "wa_id": "16505551234",
                    "detail": f"User requested to {value} marketing messages",
                    "category": "marketing_messages",
                    "value": value,
                    "timestamp": 1731705721,
                }
            ],
        },
    }


async def test_user_preferences_webhook_reaches_the_opt_out_consumers(gateway: Gateway) -> None:
    assert gateway.broker is not None
    r = await gateway.post_meta(meta_body(user_preferences_change("stop")))
    assert r.status_code == 200, r.text
    assert r.json()["published"] == 1
    ((message, data),) = await gateway.broker.drain(topology.EXCHANGE_EVENTS)
    # The routing key and body conversation's opt-out handler already binds and reads.
    assert message.routing_key == "tenant-a.acc-meta-1.user_marketing_preferences"
    event = BusinessEvent.model_validate(data)
    assert event.field == "user_marketing_preferences"
    assert data["data"]["user_preferences"][0]["wa_id"] == "16505551234"
    assert data["data"]["user_preferences"][0]["value"] == "stop"
    assert event.marketing_preferences[0].customer.wa_id == "16505551234"


async def test_username_only_customer_is_published_not_parked(gateway: Gateway) -> None:
    assert gateway.broker is not None
    message = {
        "from_user_id": BSUID,
        "id": "wamid.USERNAME1",
        "timestamp": "1750000000",
        "type": "text",
        "text": {"body": "hi"},
    }
    change = {
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": METADATA,
            "contacts": [{"profile": {"name": "Sheena", "username": "sheena.n"}, "user_id": BSUID}],
            "messages": [message],
        },
    }
    r = await gateway.post_meta(meta_body(change))
    assert r.status_code == 200, r.text
    assert (r.json()["published"], r.json()["parked"]) == (1, 0)
    ((published, data),) = await gateway.broker.drain(topology.QUEUE_CONVERSATION_INBOUND)
    assert published.routing_key == "tenant-a.acc-meta-1.text"
    event = inbound_message_in(published.body)
    assert isinstance(event, InboundMessageV2)
    assert event.customer.user_id == BSUID
    assert data["schema_version"] == 2
    assert await gateway.broker.drain(topology.QUEUE_POISON) == []
    client = aioredis.Redis.from_url(gateway.settings.redis_url)
    try:  # the customer-service window, per identity
        assert (
            await client.get(customer_window_key("tenant-a", "acc-meta-1", BSUID)) == b"1750000000"
        )
    finally:
        await client.aclose()


async def test_a_redelivered_webhook_parks_its_bad_piece_once(gateway: Gateway) -> None:
    assert gateway.broker is not None
    broken = text_message("wamid.BROKEN-TWICE")
    broken["from"] = "not a number"
    body = meta_body(messages_change(broken, text_message("wamid.FINE-TWICE")))
    first = await gateway.post_meta(body)
    again = await gateway.post_meta(body)  # Meta redelivers the same webhook
    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.json()["parked"], again.json()["parked"]) == (1, 0)
    assert again.json()["status"] == "duplicate"
    inbound = await gateway.broker.drain(topology.QUEUE_CONVERSATION_INBOUND)
    assert [d["provider_message_id"] for _, d in inbound] == ["wamid.FINE-TWICE"]
    poison = await gateway.broker.drain(topology.QUEUE_POISON)
    assert len(poison) == 1
    (parked, data), *_ = poison
    assert data["id"] == "wamid.BROKEN-TWICE"
    assert "malformed_message" in str(parked.headers[HEADER_REASON])


async def test_an_unparseable_body_sent_twice_is_parked_once(gateway: Gateway) -> None:
    assert gateway.broker is not None
    await gateway.post_meta(meta_body(messages_change(text_message())))  # learns the secret
    await gateway.broker.drain(topology.QUEUE_CONVERSATION_INBOUND)
    for _ in range(2):
        assert (await gateway.post_meta(b'{"entry": [')).status_code == 200
    assert len(await gateway.broker.drain(topology.QUEUE_POISON)) == 1


async def test_a_customer_with_phone_and_bsuid_opens_the_window_under_both(
    gateway: Gateway,
) -> None:
    message = {
        "from": "16505551234",
        "from_user_id": BSUID,
        "id": "wamid.BOTH-IDS",
        "timestamp": "1750000100",
        "type": "text",
        "text": {"body": "hi"},
    }
    change = {
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": METADATA,
            "contacts": [{"profile": {"name": "Sheena"}, "wa_id": "16505551234", "user_id": BSUID}],
            "messages": [message],
        },
    }
    r = await gateway.post_meta(meta_body(change))
    assert (r.status_code, r.json()["published"]) == (200, 1), r.text
    client = aioredis.Redis.from_url(gateway.settings.redis_url)
    try:  # a send to either id of the person finds the window open
        for customer in ("16505551234", BSUID):
            assert (
                await client.get(customer_window_key("tenant-a", "acc-meta-1", customer))
                == b"1750000100"
            )
    finally:
        await client.aclose()
