"""Redis side of erasure: the bot's sessions and carts of the customer (at every number
of the tenant) and their opt-out members, replaced by suppression members."""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from flowchat_contracts import optout_key
from flowchat_contracts.shared_state import tenant_tag


class RedisPrivacy:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis

    async def erase(self, tenant_id: str, ids: Sequence[str], suppressed: Sequence[str]) -> int:
        removed = 0
        tag = tenant_tag(tenant_id)
        for kind in ("session", "cart"):
            for customer_id in ids:
                pattern = f"conversation:{kind}:{_glob(tag)}:*:{_glob(customer_id)}"
                keys = [k async for k in self._redis.scan_iter(match=pattern, count=1000)]
                if keys:
                    removed += int(await self._redis.delete(*keys))
        key = optout_key(tenant_id)
        if ids:
            removed += int(await self._redis.srem(key, *ids))
        if suppressed:
            await self._redis.sadd(key, *suppressed)
        return removed


def _glob(value: str) -> str:
    """``value`` as a literal in a Redis MATCH pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in value)
