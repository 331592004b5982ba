"""The AMQP edge of erasure: ``conversation.privacy`` takes every tenant's erasure
requests (this service's own part) and every service's reports (kept for the API)."""

from __future__ import annotations

from typing import Annotated, Any

from aio_pika.abc import AbstractIncomingMessage
from pydantic import Discriminator, Tag, TypeAdapter

from flowchat_contracts import topology
from flowchat_contracts.privacy import ErasureReported, ErasureRequested
from flowchat_conversation.privacy.service import SERVICE, ErasureService
from flowchat_platform.amqp import Amqp
from flowchat_platform.erasure import ErasureAgent


def _tag(value: Any) -> str:
    return str(value.get("kind") if isinstance(value, dict) else getattr(value, "kind", ""))


PRIVACY_MESSAGE: TypeAdapter[ErasureRequested | ErasureReported] = TypeAdapter(
    Annotated[
        Annotated[ErasureRequested, Tag("erasure_requested")]
        | Annotated[ErasureReported, Tag("erasure_reported")],
        Discriminator(_tag),
    ]
)


class PrivacyConsumer:
    def __init__(self, amqp: Amqp, erasures: ErasureService) -> None:
        self._amqp = amqp
        self._erasures = erasures
        self._agent = ErasureAgent(amqp, SERVICE, erasures.erase_here)

    async def start(self) -> None:
        await self._amqp.consume(
            topology.privacy_queue(SERVICE), self.handle, decoder=PRIVACY_MESSAGE, prefetch=4
        )

    async def handle(
        self, item: ErasureRequested | ErasureReported, message: AbstractIncomingMessage
    ) -> None:
        if isinstance(item, ErasureReported):
            await self._erasures.reported(item)
        else:
            await self._agent.handle(item, message)


async def publish_request(amqp: Amqp, request: ErasureRequested) -> None:
    await amqp.publish(
        topology.EXCHANGE_PRIVACY,
        topology.erasure_requested_key(request.tenant_id),
        request,
        message_id=request.event_id,
        correlation_id=request.request_id,
    )
