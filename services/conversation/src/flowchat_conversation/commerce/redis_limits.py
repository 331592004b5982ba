"""The per-customer inbound limit in Redis (the
:class:`~flowchat_conversation.commerce.ports.InboundLimiter` adapter).

A fixed one-minute window per customer: ``INCR`` then ``EXPIRE`` in one pipeline on
``conversation:inbound:{tenant}:<account>:<customer digest>:<minute>`` (the customer's id
as its keyed digest, ``flowchat_platform.privacy``: no customer id in Redis, nothing for
an erasure to find); the count tells the
service whether this message is within the limit, the first past it (the bot says
once that it will reply shortly) or one of the rest (dropped from bot processing).
Every replica counts in the same key, so the limit holds across replicas.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from flowchat_contracts.shared_state import tenant_tag
from flowchat_conversation.commerce.domain import ConversationKey
from flowchat_platform.privacy import BlindIndex

WINDOW_S = 60


class RedisInboundLimiter:
    def __init__(
        self, client: aioredis.Redis, index: BlindIndex, *, window_s: int = WINDOW_S
    ) -> None:
        self._redis = client
        self._index = index
        self.window_s = window_s

    async def hit(self, key: ConversationKey) -> int:
        """Count one message of the customer; the messages in this window so far."""
        window = int(time.time()) // self.window_s
        name = (
            f"conversation:inbound:{tenant_tag(key.tenant_id)}:{key.account_id}:"
            f"{self._index.digest(key.tenant_id, key.customer_wa_id)[:32]}:{window}"
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, self.window_s * 2)
            count, _ = await pipe.execute()
        return int(count)
