"""What an internal service in another language sees: it publishes with plain AMQP (aio-pika
only, no FlowChat code), leaves ``message_id`` and ``correlation_id`` out as the docs
allow, and matches every event of its command on ``flowchat.events`` by its own
``idempotency_key``; an invalid command comes back as a ``command_rejected`` event."""

from __future__ import annotations

import json
import secrets
from typing import Any

import aio_pika
import httpx
import jsonschema
import pytest

from flowchat_contracts import render_schemas
from flowchat_platform.testing import eventually
from test_e2e_campaign import seed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SCHEMAS = {name: json.loads(text) for name, text in render_schemas().items()}


async def test_a_plain_amqp_publisher_matches_every_event_by_its_idempotency_key(
    platform_stack: Any,
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        seeded = await seed(platform_stack, http)
    tenant, account = seeded["tenant_id"], seeded["account_id"]
    key = f"order-{secrets.token_hex(4)}-receipt"
    bad_key = f"order-{secrets.token_hex(4)}-broken"
    command = {  # what a Go or Node.js service would write: no message_id, no correlation_id
        "tenant_id": tenant,
        "account_id": account,
        "idempotency_key": key,
        "to": "+2348012345678",
        "category": "marketing",
        "content": {
            "type": "template",
            "name": "new_year_sale",
            "language": "en",
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Ada"},
                        {"type": "text", "text": "Lagos"},
                    ],
                }
            ],
        },
    }
    invalid = {"tenant_id": tenant, "account_id": account, "idempotency_key": bad_key, "to": "x"}
    connection = await aio_pika.connect(platform_stack.env["AMQP_URL"])
    try:
        channel = await connection.channel(publisher_confirms=True)
        events = await channel.declare_queue(exclusive=True)
        await events.bind("flowchat.events", f"{tenant}.#")
        outbound = await channel.get_exchange("flowchat.outbound")
        for body, key_words in ((command, ".bulk"), (invalid, "")):
            await outbound.publish(
                aio_pika.Message(
                    json.dumps(body).encode(),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                f"{tenant}.{account}{key_words}",
                mandatory=True,
            )
        received: list[tuple[str, dict[str, Any]]] = []

        async def all_arrived() -> bool:
            while (message := await events.get(no_ack=True, fail=False)) is not None:
                received.append((message.routing_key or "", json.loads(message.body)))
            statuses = {b.get("status") for _, b in received if b.get("idempotency_key") == key}
            rejected = [b for _, b in received if b.get("kind") == "command_rejected"]
            return {"accepted", "sent", "delivered", "read"} <= statuses and bool(rejected)

        await eventually(all_arrived, timeout_s=90, interval_s=0.2)
    finally:
        await connection.close()

    mine = [(k, b) for k, b in received if b.get("idempotency_key") == key]
    statuses = [b["status"] for _, b in mine]
    assert sorted(statuses) == sorted({"accepted", "sent", "delivered", "read"}), statuses
    # one message, one correlation id (FlowChat's own, as the publisher gave none)
    assert len({b["message_id"] for _, b in mine}) == 1
    assert len({b["correlation_id"] for _, b in mine}) == 1
    # every status event of this tenant is that message's: none lacks the key
    status_events = [b for _, b in received if b["kind"] == "message_status_changed"]
    assert all(b["idempotency_key"] == key for b in status_events), status_events
    for routing_key, body in mine:
        assert routing_key == f"{tenant}.{account}.{body['status']}"
        jsonschema.validate(body, SCHEMAS["message_status_changed.v1.json"])

    [(routing_key, rejected)] = [(k, b) for k, b in received if b["kind"] == "command_rejected"]
    assert routing_key == f"{tenant}.{account}.command_rejected"
    assert rejected["idempotency_key"] == bad_key
    assert (rejected["tenant_id"], rejected["account_id"]) == (tenant, account)
    assert rejected["reason"].startswith("invalid")
    assert "content" in rejected["reason"]
    jsonschema.validate(rejected, SCHEMAS["command_rejected.v1.json"])
