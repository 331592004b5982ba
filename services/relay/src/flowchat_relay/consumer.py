"""The AMQP edge: ``relay.events`` and ``relay.inbound`` → :class:`Intake`.

``relay.events`` carries the ``flowchat.events`` keys of ``topology.RELAY_EVENT_KEYS``:
the state-manager's ``message_status_changed`` (``message.status``), the hand-offs, the
conversation service's ``order_changed`` / ``campaign_changed`` and the gateway's
template-status and quality ``business_event`` become events
(:mod:`flowchat_relay.events`); any other kind or business field is acked and dropped.
``relay.inbound`` carries every inbound message (v1 or v2: ``message.received``). Each
handler returns after the event and its deliveries are committed, so the ack follows the
durable write. An event of a known kind that does not validate is parked with the
reason; the consumer carries on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from pydantic import BaseModel, TypeAdapter, ValidationError

from flowchat_contracts import (
    AnyInboundMessage,
    HandoffRequested,
    HandoffResolved,
    InboundMessage,
    InboundMessageV2,
)
from flowchat_contracts.tenant_events import CampaignChanged, OrderChanged
from flowchat_platform.errors import DeadLetter
from flowchat_relay.events import (
    BUSINESS_EVENT_FIELDS,
    BusinessEventIn,
    Outgoing,
    StatusChanged,
    business_event,
    campaign_event,
    handoff_requested_event,
    handoff_resolved_event,
    order_event,
    received_event,
    status_event,
)
from flowchat_relay.service import Intake

ANY_EVENT: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])
INBOUND: TypeAdapter[InboundMessage | InboundMessageV2] = TypeAdapter(AnyInboundMessage)
STATUS_KIND = "message_status_changed"


def _builder(
    model: type[Any], build: Callable[[Any], Outgoing | None]
) -> tuple[type[BaseModel], Callable[[Any], Outgoing | None]]:
    return model, build


#: ``kind`` → (the model it validates as, the builder of its webhook event).
BUILDERS: dict[str, tuple[type[BaseModel], Callable[[Any], Outgoing | None]]] = {
    STATUS_KIND: _builder(StatusChanged, status_event),
    "handoff_requested": _builder(HandoffRequested, handoff_requested_event),
    "handoff_resolved": _builder(HandoffResolved, handoff_resolved_event),
    "order_changed": _builder(OrderChanged, order_event),
    "campaign_changed": _builder(CampaignChanged, campaign_event),
    "business_event": _builder(BusinessEventIn, business_event),
}


class RelayConsumer:
    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    async def on_event(self, body: dict[str, Any], _: AbstractIncomingMessage) -> None:
        kind = body.get("kind")
        found = BUILDERS.get(kind) if isinstance(kind, str) else None
        if found is None:
            return  # not a tenant's event
        if kind == "business_event" and body.get("field") not in BUSINESS_EVENT_FIELDS:
            return  # account-level news no event type carries
        model, build = found
        try:
            source = model.model_validate(body)
        except ValidationError as exc:
            fields = ",".join(sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]}))
            raise DeadLetter(f"invalid {kind}: {fields or 'body'}") from None
        outgoing = build(source)
        if outgoing is not None:
            await self._intake.take(outgoing)

    async def on_inbound(
        self, message: InboundMessage | InboundMessageV2, _: AbstractIncomingMessage
    ) -> None:
        await self._intake.take(received_event(message))
