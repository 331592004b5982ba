"""The AMQP outbox both packages publish through (the bot's replies, order notices,
campaign messages, reminders): :class:`~flowchat_conversation.outbox.Outbox` on aio-pika."""

from __future__ import annotations

from flowchat_contracts import OutboundCommand, topology
from flowchat_conversation.outbox import Event
from flowchat_platform.amqp import Amqp


class AmqpOutbox:
    """Publishes replies to ``flowchat.outbound`` (and hand-off, order and campaign
    events to ``flowchat.events``) and waits for the broker's confirm."""

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

    async def publish_event(self, event: Event) -> None:
        await self._amqp.publish(
            topology.EXCHANGE_EVENTS,
            topology.events_routing_key(event.tenant_id, event.account_id, event.kind),
            event,
            message_id=event.event_id,
            correlation_id=event.correlation_id,
            mandatory=False,  # no inbox deployed: nobody to tell, no error
        )
