"""Inbound messages carry their conversation's partition (tenant + customer key hashed):
the header ``flowchat-partition`` the conversation partitions are bound by; a webhook's
message reaches exactly that partition queue (real broker)."""

from __future__ import annotations

import json

import aio_pika
import pytest
from gateway_testkit import Gateway, messages_change, meta_body, text_message

from flowchat_contracts import CustomerIdentity, InboundMessage, InboundMessageV2, topology
from flowchat_gateway.service import conversation_customer, route_event
from flowchat_platform.amqp import declare_own_queues


def v1(wa_id: str, customer: CustomerIdentity | None = None) -> InboundMessage:
    return InboundMessage(
        tenant_id="t1",
        account_id="a1",
        provider="meta",
        provider_message_id="wamid.P1",
        phone_number_id="100",
        customer_wa_id=wa_id,
        customer=customer,
        type="text",
        text="hi",
        timestamp="2026-01-01T00:00:00Z",
    )


def test_inbound_is_routed_with_its_conversation_partition() -> None:
    out = route_event(v1("+2348012345678"))
    partition = topology.conversation_partition("t1", "2348012345678")
    assert out.headers == {topology.HEADER_CONVERSATION_PARTITION: str(partition)}
    assert out.exchange == topology.EXCHANGE_INBOUND
    assert out.routing_key == "t1.a1.text"
    assert 0 <= partition < topology.CONVERSATION_PARTITIONS


def test_the_partition_follows_the_customer_key_the_conversation_service_uses() -> None:
    bsuid = CustomerIdentity(wa_id="2348012345678", user_id="NG.1349120865530")
    assert conversation_customer(v1("2348012345678", bsuid)) == "NG.1349120865530"
    only_bsuid = InboundMessageV2(
        tenant_id="t1",
        account_id="a1",
        provider="meta",
        provider_message_id="wamid.P2",
        phone_number_id="100",
        customer=CustomerIdentity(user_id="NG.1349120865530"),
        type="text",
        text="hi",
        timestamp="2026-01-01T00:00:00Z",
    )
    assert route_event(only_bsuid).headers == topology.inbound_headers("t1", "NG.1349120865530")
    # another tenant, the same customer: its own conversation, hashed apart
    spread = {topology.conversation_partition(f"t{n}", "2348012345678") for n in range(50)}
    assert len(spread) > 10


@pytest.mark.integration
async def test_a_webhook_message_lands_in_its_partition_queue(
    gateway: Gateway, module_amqp_url: str
) -> None:
    # the conversation service declares its partitions (this module's vhost alone)
    await declare_own_queues(
        module_amqp_url,
        topology.CONVERSATION_PARTITION_SPECS,
        topology.CONVERSATION_PARTITION_BINDINGS,
    )
    body = meta_body(messages_change(text_message("wamid.PART", "Hi there")))
    r = await gateway.post_meta(body)
    assert r.status_code == 200, r.text
    conn = await aio_pika.connect(module_amqp_url)
    try:
        channel = await conn.channel()
        counts = {}
        for name in topology.CONVERSATION_INBOUND_QUEUES:
            queue = await channel.declare_queue(name, passive=True)
            counts[name] = queue.declaration_result.message_count or 0
        ((name, n),) = [(q, c) for q, c in counts.items() if c]
        assert n == 1
        queue = await channel.get_queue(name, ensure=False)
        async with queue.iterator() as messages:  # a single-active-consumer queue: no get
            async for message in messages:
                data = json.loads(message.body)
                await message.ack()
                break
    finally:
        await conn.close()
    assert message.headers[topology.HEADER_CONVERSATION_PARTITION] == name.rsplit(".", 1)[-1]
    expected = topology.conversation_partition(data["tenant_id"], data["customer"]["wa_id"])
    assert name == topology.conversation_partition_queue(expected)
    assert message.routing_key == f"{data['tenant_id']}.{data['account_id']}.text"
