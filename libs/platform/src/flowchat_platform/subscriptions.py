"""Which tenant events some endpoint wants: the relay writes, producers read.

Events produced only for the relay (the conversation service's ``order_changed`` and
``campaign_changed``) are published only while some enabled endpoint of the tenant
subscribes to their event type, so the platform does not pay for events nobody reads.

The relay keeps, per tenant, a Redis set ``flowchat:relay:subscriptions:<tenant>`` of
the event types its enabled endpoints subscribe to (:class:`SubscriptionWriter`):
rewritten at once when an endpoint changes, and every few minutes for every tenant
(a disabled endpoint drops out; each set expires unless rewritten, so a platform where
the relay stopped running stops producing within :data:`DEFAULT_SET_TTL_S`).

Producers read it through :class:`SubscriptionView`, a per-tenant cache with a short
TTL (a new subscription is honoured within seconds). When Redis cannot answer, the view
answers from its stale entry, or *yes*: an event published for nobody costs a publish,
an event not published is lost to a subscriber.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from flowchat_platform.logs import get_logger

log = get_logger(__name__)

KEY_PREFIX = "flowchat:relay:subscriptions:"
#: How long a tenant's set lives unless the relay rewrites it.
DEFAULT_SET_TTL_S = 900
#: How long a producer trusts what it read.
DEFAULT_VIEW_TTL_S = 5.0


def subscriptions_key(tenant_id: str, *, prefix: str = KEY_PREFIX) -> str:
    return f"{prefix}{tenant_id}"


class SubscriptionWriter:
    """The relay's side: the event types each tenant's enabled endpoints want."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        set_ttl_s: int = DEFAULT_SET_TTL_S,
        prefix: str = KEY_PREFIX,
    ) -> None:
        self._redis = redis
        self._ttl = set_ttl_s
        self._prefix = prefix

    async def replace(self, tenant_id: str, event_types: Iterable[str]) -> None:
        """The tenant's set is exactly ``event_types`` (none: the key goes)."""
        key = subscriptions_key(tenant_id, prefix=self._prefix)
        types = sorted(set(event_types))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if types:
                pipe.sadd(key, *types)
                pipe.expire(key, self._ttl)
            await pipe.execute()

    async def replace_all(self, by_tenant: Mapping[str, Iterable[str]]) -> None:
        """Every tenant's set from ``by_tenant``; sets of tenants not in it go."""
        wanted = {t: set(types) for t, types in by_tenant.items() if types}
        async for raw in self._redis.scan_iter(match=f"{self._prefix}*", count=500):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            if key[len(self._prefix) :] not in wanted:
                await self._redis.delete(key)
        for tenant_id, types in wanted.items():
            await self.replace(tenant_id, types)


class SubscriptionView:
    """The producers' side: does some endpoint of the tenant want ``event_type``?"""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        ttl_s: float = DEFAULT_VIEW_TTL_S,
        prefix: str = KEY_PREFIX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._ttl = ttl_s
        self._prefix = prefix
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def wants(self, tenant_id: str, event_type: str) -> bool:
        now = self._clock()
        cached = self._cache.get(tenant_id)
        if cached is not None and cached[0] > now:
            return event_type in cached[1]
        try:
            members = await self._redis.smembers(subscriptions_key(tenant_id, prefix=self._prefix))
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("subscriptions unreadable: publishing anyway", error=type(exc).__name__)
            return True if cached is None else event_type in cached[1]
        types = frozenset(m.decode() if isinstance(m, bytes) else str(m) for m in members)
        self._cache[tenant_id] = (now + self._ttl, types)
        return event_type in types
