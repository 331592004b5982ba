"""The gateway's Redis state: webhook dedupe marks, the customer-service window,
send API idempotency records and rate-limit counters.

Every call is bounded (the client's socket timeouts plus ``timeout_s``) and any
Redis failure surfaces as :class:`StoreUnavailable`; the caller decides whether
that degrades (webhooks publish anyway) or refuses (send API → 503).

Webhooks' dedupe checks and marks and the customers' windows go through a
:class:`~flowchat_platform.redis_batch.RedisBatcher`: the webhooks in flight at once
share one ``EVALSHA`` (under load, a fraction of a round trip per webhook, not two).

Keys::

    flowchat:gateway:dedupe:{<account_id>}:<event_id>    "1", TTL dedupe window (≥ 7 days);
                                                         one hash slot per account, so a
                                                         webhook's marks are one script
                                                         call on a Redis Cluster too
    flowchat:gateway:idem:<tenant_id>:<sha256(key)>      JSON record, TTL 24 h
    flowchat:gateway:rate:<key_id>:<minute>              request count, TTL 2 min
    flowchat:csw:{<tenant_id>}:<account_id>:<customer_wa_id>
                                                         Unix seconds of the customer's
                                                         last inbound message (never moves
                                                         back), TTL 72 h; read by the sender
                                                         for the 24 h window
                                                         (``flowchat_contracts.shared_state``);
                                                         ``customer_wa_id`` in digits, no '+'
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from flowchat_contracts.shared_state import customer_window_key
from flowchat_gateway.ports import IdempotencyRecord
from flowchat_platform.errors import StoreUnavailable
from flowchat_platform.redis_batch import LuaScript, RedisBatcher

T = TypeVar("T")

PREFIX = "flowchat:gateway:"
CUSTOMER_WINDOW_TTL_S = 72 * 3600

# Set the customer's last-inbound time unless a later one is already recorded.
_TOUCH_WINDOW = LuaScript("""
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
""")
# Which of KEYS are marked (1) or not (0).
_SEEN = LuaScript("""
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('EXISTS', key) end
return out
""")
# Mark KEYS for ARGV[1] seconds.
_MARK = LuaScript("""
for _, key in ipairs(KEYS) do redis.call('SET', key, '1', 'EX', ARGV[1]) end
return #KEYS
""")


class GatewayStore:
    """Redis behind :class:`~flowchat_gateway.ports.DedupeStore` and
    :class:`~flowchat_gateway.ports.SendStore`."""

    def __init__(self, redis: aioredis.Redis, *, timeout_s: float = 0.5) -> None:
        self._redis = redis
        self.timeout_s = timeout_s
        # the batcher bounds each batch by the timeout (the webhooks' scripts): one timer
        # per batch instead of one per call
        self._batcher = RedisBatcher(redis, timeout_s=timeout_s)

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await op()
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"redis: {exc!r}", store="redis") from exc

    async def ping(self) -> bool:
        return bool(await self._call(self._redis.ping))

    # ------------------------------------------------------------ webhook dedupe

    @staticmethod
    def dedupe_key(account_id: str, event_id: str) -> str:
        return f"{PREFIX}dedupe:{{{account_id}}}:{event_id}"

    async def _scripts(self, calls: list[tuple[LuaScript, list[str], list[Any]]]) -> list[Any]:
        """Each ``(script, keys, args)`` in the batcher's next batch; their replies (the
        batcher bounds the batch by ``timeout_s``)."""
        try:
            if len(calls) == 1:  # the usual webhook: no task for it
                script, keys, args = calls[0]
                return [await self._batcher.script(script, keys, args)]
            return await asyncio.gather(*(self._batcher.script(s, k, a) for s, k, a in calls))
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"redis: {exc!r}", store="redis") from exc

    async def seen(self, keys: list[str]) -> set[str]:
        """The subset of ``keys`` already marked."""
        groups = _by_slot(keys)
        if not groups:
            return set()
        replies = await self._scripts([(_SEEN, group, []) for group in groups])
        return {
            key
            for group, flags in zip(groups, replies, strict=True)
            for key, flag in zip(group, flags, strict=True)
            if flag
        }

    async def record(
        self,
        marks: Iterable[str],
        ttl_s: int,
        windows: Iterable[tuple[str, str, str, int]] = (),
    ) -> None:
        """What a webhook leaves once the broker confirmed it, in one batch: dedupe
        ``marks`` (for ``ttl_s``) and the customers' last inbound times
        (``(tenant_id, account_id, customer_wa_id, unix_seconds)``)."""
        latest: dict[str, int] = {}
        for tenant_id, account_id, wa_id, ts in windows:
            key = customer_window_key(tenant_id, account_id, wa_id)
            latest[key] = max(ts, latest.get(key, 0))
        calls: list[tuple[LuaScript, list[str], list[Any]]] = [
            (_MARK, group, [ttl_s]) for group in _by_slot(list(marks))
        ]
        calls += [(_TOUCH_WINDOW, [key], [ts, CUSTOMER_WINDOW_TTL_S]) for key, ts in latest.items()]
        if calls:
            await self._scripts(calls)

    # ------------------------------------------------------------ send API idempotency

    @staticmethod
    def _idem_key(tenant_id: str, key: str) -> str:
        return f"{PREFIX}idem:{tenant_id}:{hashlib.sha256(key.encode()).hexdigest()}"

    async def idempotency_get(self, tenant_id: str, key: str) -> IdempotencyRecord | None:
        raw = await self._call(lambda: self._redis.get(self._idem_key(tenant_id, key)))
        if raw is None:
            return None
        return IdempotencyRecord.decode(raw if isinstance(raw, bytes) else raw.encode())

    async def idempotency_claim(
        self, tenant_id: str, key: str, record: IdempotencyRecord, ttl_s: int
    ) -> bool:
        """Store ``record`` unless the key is taken; True when this call took it."""
        done = await self._call(
            lambda: self._redis.set(
                self._idem_key(tenant_id, key), record.encode(), ex=ttl_s, nx=True
            )
        )
        return bool(done)

    async def idempotency_complete(
        self, tenant_id: str, key: str, record: IdempotencyRecord, ttl_s: int
    ) -> None:
        await self._call(
            lambda: self._redis.set(self._idem_key(tenant_id, key), record.encode(), ex=ttl_s)
        )

    # ------------------------------------------------------------ send API rate limit

    async def rate_limit(self, key_id: str, per_minute: int) -> float | None:
        """Count one request; seconds to wait when over ``per_minute``, else None."""
        now = time.time()
        minute = int(now // 60)
        key = f"{PREFIX}rate:{key_id}:{minute}"

        async def op() -> Any:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, 120)
                return await pipe.execute()

        count, _ = await self._call(op)
        if int(count) > per_minute:
            return max(1.0, (minute + 1) * 60 - now)
        return None

    async def customer_window(
        self, tenant_id: str, account_id: str, customer_id: str
    ) -> int | None:
        """Unix seconds of the customer's last inbound message to ``account_id`` (None:
        none recorded in the last 72 h), the record the sender's window check reads."""
        key = customer_window_key(tenant_id, account_id, customer_id.lstrip("+"))
        raw = await self._call(lambda: self._redis.get(key))
        return int(raw) if raw is not None else None


def _by_slot(keys: list[str]) -> list[list[str]]:
    """Dedupe keys grouped by their hash tag (the account), in order: one script call
    each, so every call stays within one Redis Cluster slot."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(key[key.find("{") : key.find("}")], []).append(key)
    return list(groups.values())
