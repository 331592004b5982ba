"""The AMQP edge: ``inbox.history`` → :class:`~flowchat_inbox.batching.Batcher`.

One quorum queue takes every inbound message (``flowchat.inbound``), every outbound
command (``flowchat.outbound``, both lanes), the state-manager's status changes and the
bot's hand-offs (``flowchat.events``). :data:`HISTORY_ITEM` decodes a body by its
``kind`` (an inbound message by its ``schema_version`` too); an undecodable body goes to
``flowchat.poison`` with the reason and the consumer carries on. The message is acked
after the transaction holding it committed.
"""

from __future__ import annotations

from typing import Annotated, Any

from aio_pika.abc import AbstractIncomingMessage
from pydantic import Discriminator, Tag, TypeAdapter

from flowchat_contracts import (
    HandoffRequested,
    InboundMessage,
    InboundMessageV2,
    OutboundCommand,
)
from flowchat_inbox import metrics
from flowchat_inbox.batching import Batcher
from flowchat_inbox.ports import Entry, HandoffOpen
from flowchat_inbox.service import HistoryItem, StatusChanged, op_of


def _tag(value: Any) -> str:
    get = value.get if isinstance(value, dict) else lambda k, d=None: getattr(value, k, d)
    kind = get("kind")
    if kind == "inbound_message":
        return f"inbound_message.v{get('schema_version', 1)}"
    return str(kind)


HISTORY_ITEM: TypeAdapter[HistoryItem] = TypeAdapter(
    Annotated[
        Annotated[InboundMessage, Tag("inbound_message.v1")]
        | Annotated[InboundMessageV2, Tag("inbound_message.v2")]
        | Annotated[OutboundCommand, Tag("outbound_command")]
        | Annotated[StatusChanged, Tag("message_status_changed")]
        | Annotated[HandoffRequested, Tag("handoff_requested")],
        Discriminator(_tag),
    ]
)


def _kind(op: object) -> str:
    if isinstance(op, Entry):
        return op.direction
    if isinstance(op, HandoffOpen):
        return "handoff"
    return "status"


class HistoryConsumer:
    def __init__(self, batcher: Batcher) -> None:
        self._batcher = batcher

    async def handle(self, item: HistoryItem, _message: AbstractIncomingMessage) -> None:
        op = op_of(item)
        if op is None:
            metrics.INGESTED.labels("other", "ignored").inc()
            return
        applied = await self._batcher.submit(op)
        metrics.INGESTED.labels(_kind(op), "recorded" if applied.recorded else "duplicate").inc()
