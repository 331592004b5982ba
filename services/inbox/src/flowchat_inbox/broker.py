"""The RabbitMQ adapter of :class:`~flowchat_inbox.ports.Publisher`: agents' replies to
``flowchat.outbound`` (the lane of their category) and resolved hand-offs to
``flowchat.events`` (``<tenant>.<account>.handoff_resolved``), each with a confirm."""

from __future__ import annotations

from flowchat_contracts import HandoffRequested, HandoffResolved, OutboundCommand, topology
from flowchat_platform.amqp import Amqp


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
