"""AMQP edge: the inbound queues → :class:`ConversationService` (its replies go out
through :class:`~flowchat_conversation.amqp_outbox.AmqpOutbox`). Both versions of the
inbound contract are read (``AnyInboundMessage``: v2 for customers known only by a
BSUID), told apart by ``schema_version``.

Per-conversation order across replicas: the gateway tags each inbound message with its
conversation's partition (``topology.conversation_partition``: tenant + customer), and
it lands in ``conversation.inbound.<n>``, a queue with a single active consumer. The
replicas share the partitions out among themselves
(:class:`~flowchat_platform.partitions.PartitionedConsumer`, membership in Redis), so
a conversation's messages are handled by one replica at a time, in the order the
gateway published them; a replica killed or scaled away hands its partitions over with
their unacknowledged messages first. ``conversation.inbound``, the queue of earlier
versions, is still consumed by every replica (no order across them): its backlog, and
whatever arrives without a partition header.
"""

from __future__ import annotations

from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from pydantic import TypeAdapter

from flowchat_contracts import AnyInboundMessage, InboundMessage, InboundMessageV2, topology
from flowchat_conversation.commerce.service import ConversationService
from flowchat_platform.amqp import Amqp, ConsumerHandle, declare_own_queues
from flowchat_platform.errors import Discard
from flowchat_platform.logs import get_logger
from flowchat_platform.partitions import PartitionedConsumer, PartitionMembers

log = get_logger(__name__)

INBOUND_DECODER: TypeAdapter[InboundMessage | InboundMessageV2] = TypeAdapter(AnyInboundMessage)

#: The membership group of the conversation replicas (a Redis key's hash tag).
PARTITION_GROUP = "conversation.inbound"


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

    async def start(
        self,
        amqp: Amqp,
        *,
        prefetch: int,
        redis: Any,
        partition_prefetch: int,
        partition_interval_s: float = 1.0,
        partition_ttl_s: float = 3.0,
        shutdown_grace_s: float = 10.0,
    ) -> PartitionedConsumer:
        """Consume ``conversation.inbound`` and this replica's share of the partitions;
        the returned consumer follows the other replicas (stop it before the broker
        client: it leaves the group)."""
        await amqp.consume(
            topology.QUEUE_CONVERSATION_INBOUND,
            self.handle,
            decoder=INBOUND_DECODER,
            prefetch=prefetch,
        )

        async def consume(queue: str) -> ConsumerHandle:
            return await amqp.consume(
                queue,
                self.handle,
                decoder=INBOUND_DECODER,
                prefetch=partition_prefetch,
                return_on_stop=True,
            )

        partitions = PartitionedConsumer(
            amqp,
            PartitionMembers(redis, PARTITION_GROUP, ttl_s=partition_ttl_s),
            topology.CONVERSATION_PARTITION_QUEUES,
            consume,
            interval_s=partition_interval_s,
            release_grace_s=shutdown_grace_s,
            # the partitions are the conversation service's own (declared by it alone)
            prepare=lambda: declare_own_queues(
                amqp.url,
                topology.CONVERSATION_PARTITION_SPECS,
                topology.CONVERSATION_PARTITION_BINDINGS,
            ),
        )
        await partitions.start()
        return partitions
