"""The :class:`~flowchat_gateway.ports.Publisher` over RabbitMQ (confirmed publishes)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from flowchat_gateway.ports import Outgoing
from flowchat_platform.amqp import HEADER_ORIGIN_QUEUE, HEADER_REASON, Amqp


class AmqpPublisher:
    def __init__(self, amqp: Amqp) -> None:
        self.amqp = amqp

    async def publish_all(self, items: Sequence[Outgoing]) -> list[BaseException | None]:
        if len(items) == 1:  # most webhooks carry one event: no task for it
            try:
                await self._one(items[0])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reported per item, like gather's
                return [exc]
            return [None]
        results = await asyncio.gather(*(self._one(item) for item in items), return_exceptions=True)
        errors: list[BaseException | None] = []
        for result in results:
            if isinstance(result, asyncio.CancelledError):
                raise result
            errors.append(result if isinstance(result, BaseException) else None)
        return errors

    async def _one(self, item: Outgoing) -> None:
        headers: dict[str, Any] = dict(item.headers or {})
        if item.park_reason is not None:
            headers[HEADER_REASON] = item.park_reason[:1000]
            headers[HEADER_ORIGIN_QUEUE] = "gateway"
        await self.amqp.publish(
            item.exchange,
            item.routing_key,
            item.body,
            message_id=item.message_id,
            correlation_id=item.correlation_id,
            headers=headers,
            message_type=item.message_type,
            mandatory=item.mandatory,
        )
