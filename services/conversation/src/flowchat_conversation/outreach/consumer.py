"""AMQP edge: ``conversation.events`` (bound to ``flowchat.events``) →
:class:`~flowchat_conversation.outreach.events.OutreachEvents`."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from flowchat_contracts import topology
from flowchat_conversation.outreach.events import OutreachEvents
from flowchat_platform.amqp import Amqp

EVENT_DECODER: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


class EventsConsumer:
    def __init__(self, events: OutreachEvents) -> None:
        self._events = events

    async def start(self, amqp: Amqp, *, prefetch: int) -> None:
        await amqp.consume(
            topology.QUEUE_CONVERSATION_EVENTS,
            self._events.handle,
            decoder=EVENT_DECODER,
            prefetch=prefetch,
        )
