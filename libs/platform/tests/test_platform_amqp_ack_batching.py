"""``Amqp.consume(ack_linger_s=…)``: batched acks never ack early, lose nothing, flush at stop."""

import asyncio
import random

import aio_pika
import pytest
from pydantic import TypeAdapter

from flowchat_contracts import InboundMessage, topology
from flowchat_platform.amqp import Amqp
from flowchat_platform.testing import eventually

pytestmark = pytest.mark.integration

DECODER: TypeAdapter[InboundMessage] = TypeAdapter(InboundMessage)


def inbound(n: int) -> InboundMessage:
    return InboundMessage(
        tenant_id="t1",
        account_id="a1",
        provider="meta",
        provider_message_id=f"wamid.{n}",
        phone_number_id="100",
        customer_wa_id="15551234567",
        type="text",
        text=f"hi {n}",
        timestamp="2026-01-01T00:00:00Z",
    )


async def queue_state(url: str, queue: str) -> tuple[int, int]:
    """(ready messages, consumers) of ``queue``."""
    conn = await aio_pika.connect(url)
    try:
        q = await (await conn.channel()).declare_queue(queue, passive=True)
        result = q.declaration_result
        return int(result.message_count or 0), int(result.consumer_count or 0)
    finally:
        await conn.close()


async def test_out_of_order_finishes_are_all_acked_once_and_in_flight_ones_are_not(
    amqp_url: str,
) -> None:
    client = Amqp(amqp_url, service="test", publish_timeout_s=5)
    await client.connect()
    queue = topology.QUEUE_CONVERSATION_INBOUND
    n = 60
    for i in range(n):
        await client.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", inbound(i))
    seen: list[str] = []
    hold = asyncio.Event()

    async def handler(msg: InboundMessage, _: aio_pika.abc.AbstractIncomingMessage) -> None:
        if msg.provider_message_id == "wamid.0":
            await hold.wait()  # the first delivery stays in progress
        else:
            await asyncio.sleep(random.uniform(0, 0.02))  # finish out of order
        seen.append(msg.provider_message_id)

    await client.consume(queue, handler, decoder=DECODER, prefetch=100, ack_linger_s=0.01)
    await eventually(lambda: len(seen) == n - 1, timeout_s=10)
    await asyncio.sleep(0.1)  # a few lingers: the finished ones behind wamid.0 get acked
    # Closing the connection now would return only unacked messages to the queue: the
    # one still in progress must be among them, the finished ones must not.
    conn = client._sub_conn  # a crash: drop the consume connection
    assert conn is not None
    await conn.close()

    async def returned() -> bool:
        return (await queue_state(amqp_url, queue))[0] >= 1

    await eventually(returned, timeout_s=5)
    await asyncio.sleep(0.2)
    ready, _ = await queue_state(amqp_url, queue)
    assert ready == 1  # only wamid.0 came back: nothing acked early, nothing lost
    hold.set()
    await client.close(grace_s=2)


async def test_pending_acks_are_flushed_when_consuming_stops(amqp_url: str) -> None:
    client = Amqp(amqp_url, service="test", publish_timeout_s=5)
    await client.connect()
    queue = topology.QUEUE_CONVERSATION_INBOUND
    for i in range(20):
        await client.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", inbound(i))
    done: list[str] = []

    async def handler(msg: InboundMessage, _: aio_pika.abc.AbstractIncomingMessage) -> None:
        done.append(msg.provider_message_id)

    # a linger far longer than the test: only the stop-time flush can ack them
    await client.consume(queue, handler, decoder=DECODER, prefetch=50, ack_linger_s=30)
    await eventually(lambda: len(done) == 20, timeout_s=10)
    await client.close(grace_s=2)
    assert await queue_state(amqp_url, queue) == (0, 0)
    assert sorted(done) == sorted(f"wamid.{i}" for i in range(20))
