"""The AMQP edge: ``relay.events`` and ``relay.inbound`` → :class:`Intake`.

``relay.events`` carries the ``flowchat.events`` keys of ``topology.RELAY_EVENT_KEYS``
(statuses, hand-offs); the state-manager's ``message_status_changed`` becomes an event
(``message.status``), the rest is acked and dropped. ``relay.inbound`` carries every
inbound message (v1 or v2: ``message.received``). Each handler returns after the event
and its deliveries are committed, so the ack follows the durable write. A status change
that does not validate is parked with the reason; the consumer carries on.
"""

from __future__ import annotations

from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from pydantic import TypeAdapter, ValidationError

from flowchat_contracts import AnyInboundMessage, InboundMessage, InboundMessageV2
from flowchat_platform.errors import DeadLetter
from flowchat_relay.events import StatusChanged, received_event, status_event
from flowchat_relay.service import Intake

ANY_EVENT: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])
INBOUND: TypeAdapter[InboundMessage | InboundMessageV2] = TypeAdapter(AnyInboundMessage)
STATUS_KIND = "message_status_changed"


class RelayConsumer:
    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    async def on_event(self, body: dict[str, Any], _: AbstractIncomingMessage) -> None:
        if body.get("kind") != STATUS_KIND:
            return  # business events: no webhook event of theirs yet
        try:
            source = StatusChanged.model_validate(body)
        except ValidationError as exc:
            fields = ",".join(sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]}))
            raise DeadLetter(f"invalid message_status_changed: {fields or 'body'}") from None
        await self._intake.take(status_event(source))

    async def on_inbound(
        self, message: InboundMessage | InboundMessageV2, _: AbstractIncomingMessage
    ) -> None:
        await self._intake.take(received_event(message))
