"""The gateway's Redis state: webhook dedupe marks, the customer-service window,
send API idempotency records and rate-limit counters.

Every call is bounded (the client's socket timeouts plus ``timeout_s``) and any
Redis failure surfaces as :class:`StoreUnavailable`; the caller decides whether
that degrades (webhooks publish anyway) or refuses (send API → 503).

Webhooks' dedupe claims and marks and the customers' windows go through a
:class:`~flowchat_platform.redis_batch.RedisBatcher`: the webhooks in flight at once
share one ``EVALSHA``. A webhook with messages waits for one round trip (its claims and
windows, before the publish); its marks go after the confirm without being waited for,
with the next webhook's claims (or alone after ``mark_linger_s``): one round trip per
webhook with messages, at any rate.

Keys::

    flowchat:gateway:dedupe:{<account_id>}:<event_id>    "p:<token>" while a request
                                                         publishes it (TTL the claim, 30 s),
                                                         then "1", TTL dedupe window
                                                         (≥ 7 days); one hash slot per
                                                         account, so a webhook's claims
                                                         are one script call on a Redis
                                                         Cluster too
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
import functools
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from itertools import count
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from flowchat_contracts.shared_state import customer_window_key
from flowchat_gateway.ports import Claimed, IdempotencyRecord
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
# Claim each of KEYS not seen yet for ARGV[1] seconds under the token ARGV[2]; per key
# 0 = claimed by this call, 1 = marked done (published before), 2 = claimed by another
# request still publishing it (or by one that died: the claim expires).
_CLAIM = LuaScript("""
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if not v then
    redis.call('SET', key, ARGV[2], 'EX', ARGV[1])
    out[i] = 0
  elseif v == '1' then
    out[i] = 1
  else
    out[i] = 2
  end
end
return out
""")
_DONE, _HELD = 1, 2
# Mark KEYS done ("1") for ARGV[1] seconds.
_MARK = LuaScript("""
for _, key in ipairs(KEYS) do redis.call('SET', key, '1', 'EX', ARGV[1]) end
return #KEYS
""")
# Drop the claims of KEYS still held under the token ARGV[1].
_RELEASE = LuaScript("""
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then n = n + redis.call('DEL', key) end
end
return n
""")


class GatewayStore:
    """Redis behind :class:`~flowchat_gateway.ports.DedupeStore` and
    :class:`~flowchat_gateway.ports.SendStore`."""

    def __init__(
        self, redis: aioredis.Redis, *, timeout_s: float = 0.5, mark_linger_s: float = 0.5
    ) -> None:
        self._redis = redis
        self.timeout_s = timeout_s
        #: How long a mark waits for a claim to ride with (far below the claim's TTL).
        self.mark_linger_s = mark_linger_s
        self._marks: list[tuple[list[str], int, Callable[[BaseException], None]]] = []
        self._linger: asyncio.TimerHandle | None = None
        # the batcher bounds each batch by the timeout (the webhooks' scripts): one timer
        # per batch instead of one per call
        self._batcher = RedisBatcher(redis, timeout_s=timeout_s)
        # claim tokens: unique per process (prefix) and per webhook (counter)
        self._token_prefix = secrets.token_hex(4) + ":"
        self._tokens = count()

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
            # their futures, gathered: no task per call
            return await asyncio.gather(*(self._batcher.script_later(s, k, a) for s, k, a in calls))
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"redis: {exc!r}", store="redis") from exc

    async def claim(
        self, keys: list[str], ttl_s: int, windows: Iterable[tuple[str, str, str, int]] = ()
    ) -> Claimed:
        """Claim ``keys`` not seen yet for ``ttl_s`` seconds (the time to publish them)
        and move the customers' windows (``(tenant_id, account_id, customer_wa_id,
        unix_seconds)``) forward: one batch, the webhook's one awaited round trip."""
        token = f"p:{self._token_prefix}{next(self._tokens)}"
        if self._marks:  # earlier webhooks' marks ride with this claim, before it
            self._send_marks()
        groups = _by_slot(keys)
        calls: list[tuple[LuaScript, list[str], list[Any]]] = [
            (_CLAIM, group, [ttl_s, token]) for group in groups
        ]
        calls += _window_calls(windows)
        if not calls:
            return Claimed(token, frozenset(), frozenset())
        replies = await self._scripts(calls)
        done: set[str] = set()
        in_flight: set[str] = set()
        for group, flags in zip(groups, replies[: len(groups)], strict=True):
            for key, flag in zip(group, flags, strict=True):
                if flag == _DONE:
                    done.add(key)
                elif flag == _HELD:
                    in_flight.add(key)
        return Claimed(token, frozenset(done), frozenset(in_flight))

    def mark_later(
        self, keys: list[str], ttl_s: int, on_error: Callable[[BaseException], None]
    ) -> None:
        """Turn claims into marks (done, for ``ttl_s``) without waiting: they go with the
        next webhook's claim (same ``EVALSHA``, before it), or after ``mark_linger_s``
        when no webhook comes, or at :meth:`flush`. A mark that fails calls
        ``on_error``; its claim expires and a redelivery is published again (consumers
        dedupe by event id)."""
        self._marks.append((keys, ttl_s, on_error))
        if self._linger is None:
            loop = asyncio.get_running_loop()
            self._linger = loop.call_later(self.mark_linger_s, self._send_marks)

    def _send_marks(self) -> list[asyncio.Future[Any]]:
        """The marks waiting, into the batcher's next batch; their futures."""
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        waiting, self._marks = self._marks, []
        futures: list[asyncio.Future[Any]] = []
        for keys, ttl_s, on_error in waiting:
            for group in _by_slot(keys):
                future = self._batcher.script_later(_MARK, group, [ttl_s])
                future.add_done_callback(functools.partial(_report, on_error))
                futures.append(future)
        return futures

    async def flush(self) -> None:
        """Send the marks still waiting and wait for them (at shutdown)."""
        futures = self._send_marks()
        if futures:
            await asyncio.wait(futures)

    async def release(self, keys: list[str], token: str) -> None:
        """Drop the claims of ``keys`` still held under ``token`` (their publish failed:
        the provider's retry must find them free)."""
        groups = _by_slot(keys)
        if groups:
            await self._scripts([(_RELEASE, group, [token]) for group in groups])

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


def _report(on_error: Callable[[BaseException], None], future: asyncio.Future[Any]) -> None:
    if future.cancelled():
        on_error(asyncio.CancelledError())
    elif (exc := future.exception()) is not None:
        on_error(exc)


def _window_calls(
    windows: Iterable[tuple[str, str, str, int]],
) -> list[tuple[LuaScript, list[str], list[Any]]]:
    """One window touch per customer key, the latest time of the batch."""
    latest: dict[str, int] = {}
    for tenant_id, account_id, wa_id, ts in windows:
        key = customer_window_key(tenant_id, account_id, wa_id)
        latest[key] = max(ts, latest.get(key, 0))
    return [(_TOUCH_WINDOW, [key], [ts, CUSTOMER_WINDOW_TTL_S]) for key, ts in latest.items()]


def _by_slot(keys: list[str]) -> list[list[str]]:
    """Dedupe keys grouped by their hash tag (the account), in order: one script call
    each, so every call stays within one Redis Cluster slot."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(key[key.find("{") : key.find("}")], []).append(key)
    return list(groups.values())
