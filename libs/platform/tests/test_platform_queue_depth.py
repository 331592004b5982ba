"""Queue depth and consumer gauges, read with a passive declare by every consumer."""

import pytest
from prometheus_client import REGISTRY
from pydantic import TypeAdapter

from flowchat_contracts import InboundMessage, topology
from flowchat_platform.amqp import Amqp
from flowchat_platform.errors import DeadLetter
from flowchat_platform.testing import eventually

pytestmark = pytest.mark.integration


def gauge(name: str, service: str, queue: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"service": service, "queue": queue})


def inbound(n: int) -> InboundMessage:
    return InboundMessage(
        tenant_id="t1",
        account_id="a1",
        provider="meta",
        provider_message_id=f"wamid.depth.{n}",
        phone_number_id="100",
        customer_wa_id="15551234567",
        type="text",
        text=f"hi {n}",
        timestamp="2026-01-01T00:00:00Z",
    )


async def test_consumed_and_parking_queues_report_depth_and_consumers(amqp_url):
    service = "depth-test"
    publisher = Amqp(amqp_url, service="depth-publisher")
    consumer = Amqp(amqp_url, service=service, queue_stats_interval_s=0.1)
    await publisher.connect()
    await consumer.connect()
    try:
        for n in range(3):  # parked by the handler below
            await publisher.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", inbound(n))

        async def park(_: InboundMessage, __: object) -> None:
            raise DeadLetter("depth test")

        await consumer.consume(
            topology.QUEUE_CONVERSATION_INBOUND,
            park,
            decoder=TypeAdapter(InboundMessage),
        )
        poison = topology.QUEUE_POISON
        await eventually(
            lambda: gauge("flowchat_amqp_queue_messages", service, poison) == 3, timeout_s=10
        )
        work = topology.QUEUE_CONVERSATION_INBOUND
        assert gauge("flowchat_amqp_queue_messages", service, work) == 0
        assert gauge("flowchat_amqp_queue_consumers", service, work) == 1
    finally:
        await consumer.close(grace_s=2)
        await publisher.close(grace_s=2)
    assert consumer._stats_task is None


async def test_one_round_reads_every_queue_past_a_missing_one(amqp_url):
    """The queues of a round share one channel; a missing queue closes it (NOT_FOUND) and
    the queues after it are still read, on another."""
    service = "depth-missing"
    amqp = Amqp(amqp_url, service=service, queue_stats_interval_s=3600)
    await amqp.connect()
    try:

        async def handle(_: InboundMessage, __: object) -> None:
            return None

        await amqp.consume(
            topology.QUEUE_CONVERSATION_INBOUND, handle, decoder=TypeAdapter(InboundMessage)
        )
        missing = "depth.test.missing"
        # the missing queue first, then the two the consumer watches
        amqp._watched = {missing: None, **amqp._watched}
        await amqp.sample_queues()
        assert gauge("flowchat_amqp_queue_messages", service, missing) is None
        work = topology.QUEUE_CONVERSATION_INBOUND
        assert gauge("flowchat_amqp_queue_consumers", service, work) == 1
        assert gauge("flowchat_amqp_queue_messages", service, topology.QUEUE_POISON) is not None
        # the consumer's own channel is untouched by the closed sampling channel
        channel = amqp._consumers[0]._channel
        assert channel is not None
        assert not channel.is_closed
    finally:
        await amqp.close(grace_s=2)
