"""The RabbitMQ adapter of :class:`~flowchat_relay.ports.Notices`: the relay's own facts
on ``flowchat.events`` (``<tenant>.-.endpoint_disabled``), each with a confirm."""

from __future__ import annotations

from flowchat_contracts import topology
from flowchat_contracts.tenant_events import ENDPOINT_DISABLED_KIND, NO_ACCOUNT, EndpointDisabled
from flowchat_platform.amqp import Amqp


class AmqpNotices:
    def __init__(self, amqp: Amqp) -> None:
        self._amqp = amqp

    async def endpoint_disabled(self, event: EndpointDisabled) -> None:
        await self._amqp.publish(
            topology.EXCHANGE_EVENTS,
            topology.events_routing_key(event.tenant_id, NO_ACCOUNT, ENDPOINT_DISABLED_KIND),
            event,
            message_id=event.event_id,
            mandatory=False,
        )
