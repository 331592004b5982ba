"""AMQP edge: ``conversation.inbound`` → :class:`ConversationService` (its replies go out
through :class:`~flowchat_conversation.amqp_outbox.AmqpOutbox`). Both versions of the
inbound contract are read (``AnyInboundMessage``: v2 for customers known only by a
BSUID), told apart by ``schema_version``."""

from __future__ import annotations

from aio_pika.abc import AbstractIncomingMessage
from pydantic import TypeAdapter

from flowchat_contracts import AnyInboundMessage, InboundMessage, InboundMessageV2, topology
from flowchat_conversation.commerce.service import ConversationService
from flowchat_platform.amqp import Amqp
from flowchat_platform.errors import Discard
from flowchat_platform.logs import get_logger

log = get_logger(__name__)

INBOUND_DECODER: TypeAdapter[InboundMessage | InboundMessageV2] = TypeAdapter(AnyInboundMessage)


class InboundConsumer:
    def __init__(self, service: ConversationService) -> None:
        self._service = service

    async def handle(
        self, message: InboundMessage | InboundMessageV2, _raw: AbstractIncomingMessage
    ) -> None:
        outcome = await self._service.handle_inbound(message)
        log.info(
            "inbound handled",
            outcome=outcome,
            tenant_id=message.tenant_id,
            account_id=message.account_id,
            provider_message_id=message.provider_message_id,
            type=message.type,
        )
        if outcome == "duplicate":
            raise Discard(f"message {message.provider_message_id} was handled before")

    async def start(self, amqp: Amqp, *, prefetch: int) -> None:
        await amqp.consume(
            topology.QUEUE_CONVERSATION_INBOUND,
            self.handle,
            decoder=INBOUND_DECODER,
            prefetch=prefetch,
        )
