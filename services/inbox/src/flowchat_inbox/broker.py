"""The RabbitMQ adapter of :class:`~flowchat_inbox.ports.Publisher`: agents' replies to
``flowchat.outbound`` (the lane of their category) and resolved hand-offs to
``flowchat.events`` (``<tenant>.<account>.handoff_resolved``), each with a confirm."""

from __future__ import annotations

import aio_pika

from flowchat_contracts import HandoffRequested, HandoffResolved, OutboundCommand, topology
from flowchat_platform.amqp import Amqp


async def declare_inbox_queue(url: str) -> None:
    """Declare ``inbox.history`` and its bindings (``topology.INBOX_QUEUES`` and
    ``INBOX_BINDINGS``): the inbox alone declares them, before it consumes."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for spec in topology.INBOX_QUEUES:
            await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments)
        for b in topology.INBOX_BINDINGS:
            queue = await channel.get_queue(b.queue, ensure=False)
            await queue.bind(b.exchange, b.routing_key)
    finally:
        await connection.close()


class AmqpPublisher:
    def __init__(self, amqp: Amqp) -> None:
        self._amqp = amqp

    async def send(self, command: OutboundCommand) -> None:
        await self._amqp.publish(
            topology.EXCHANGE_OUTBOUND,
            topology.outbound_routing_key(command.tenant_id, command.account_id, command.category),
            command,
            message_id=command.message_id,
            correlation_id=command.correlation_id,
        )

    async def resolved(self, event: HandoffResolved) -> None:
        await self._amqp.publish(
            topology.EXCHANGE_EVENTS,
            topology.events_routing_key(
                event.tenant_id, event.account_id, topology.HANDOFF_RESOLVED
            ),
            event,
            message_id=event.event_id,
            correlation_id=event.correlation_id,
            mandatory=False,
        )

    async def requested(self, event: HandoffRequested) -> None:
        await self._amqp.publish(
            topology.EXCHANGE_EVENTS,
            topology.events_routing_key(
                event.tenant_id, event.account_id, topology.HANDOFF_REQUESTED
            ),
            event,
            message_id=event.event_id,
            correlation_id=event.correlation_id,
            mandatory=False,
        )
