"""Rate limits shared by every replica: GCRA in one Redis Lua script on Redis ``TIME``.

Two limits per send, checked atomically:

- per number: ``rate`` messages/s (the account's throughput, 80 by default), each
  send at most ``number_burst_s`` ahead of the number's even schedule; while a 130429
  throttle is set the rate is multiplied by its factor;
- per (number, recipient) pair: one message every 6 s with a burst of 45 (Meta's
  pair rate); a 131056 hold blocks that recipient alone for 4^X s.

A send *reserves* its slot (the theoretical arrival time moves on) and learns how
long to wait for it; waits up to ``max_wait_s`` are slept in-process, longer ones
reserve nothing and go to a retry tier. Reserving makes the achieved rate exact
across replicas: nobody polls, every admitted send has its own instant.

The pure :func:`~flowchat_sender.limits.gcra` is the same arithmetic, for unit tests;
the values (:class:`~flowchat_sender.limits.LimitRequest`,
:class:`~flowchat_sender.limits.Admission`) live beside it in :mod:`flowchat_sender.limits`.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from flowchat_contracts.shared_state import tenant_tag
from flowchat_platform.errors import StoreUnavailable
from flowchat_platform.redis_batch import LuaScript, RedisBatcher
from flowchat_sender.limits import Admission, LimitRequest

PREFIX = "flowchat:sender:rl:"

#: ``admit(n_key, p_key, throttle_key, hold_key, n_T, n_tau, p_T, p_tau, max_wait)`` →
#: ``{admitted 0|1, wait_ms, limit}``; times in ms on Redis' clock. Shared with the
#: idempotency claim script, which reserves the slot in the same call.
ADMIT_LUA = """
local function admit(kn, kp, kthrottle, khold, n_T, n_tau, p_T, p_tau, max_wait)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
  n_T = tonumber(n_T)
  n_tau = tonumber(n_tau)
  p_T = tonumber(p_T)
  p_tau = tonumber(p_tau)
  max_wait = tonumber(max_wait)
  local factor = tonumber(redis.call('GET', kthrottle) or '1')
  if factor and factor > 0 and factor < 1 then n_T = n_T / factor end
  local hold = redis.call('PTTL', khold)
  if hold > 0 then return {0, tostring(hold), 'hold'} end
  local p_tat = math.max(tonumber(redis.call('GET', kp) or '0'), now)
  local p_wait = p_tat - now - p_tau
  if p_wait > 0 then return {0, tostring(p_wait), 'pair'} end
  local n_tat = math.max(tonumber(redis.call('GET', kn) or '0'), now)
  local n_wait = n_tat - now - n_tau
  if n_wait < 0 then n_wait = 0 end
  if n_wait > max_wait then return {0, tostring(n_wait), 'number'} end
  local new_n = n_tat + n_T
  local n_ttl = math.ceil(new_n - now + n_tau) + 1000
  redis.call('SET', kn, string.format('%.3f', new_n), 'PX', n_ttl)
  local new_p = p_tat + p_T
  redis.call('SET', kp, string.format('%.3f', new_p), 'PX', math.ceil(new_p - now) + 1000)
  return {1, tostring(n_wait), 'ok'}
end
"""

_SCRIPT = LuaScript(
    ADMIT_LUA
    + """
return admit(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
"""
)


class RateLimiter:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        number_burst_s: float = 0.0,
        pair_interval_s: float = 6.0,
        pair_burst: int = 45,
        batcher: RedisBatcher | None = None,
    ) -> None:
        self._redis = redis
        self._batch = batcher or RedisBatcher(redis)
        #: GCRA tolerance of a number, in time not messages: commands that arrive
        #: together at a fast number go together instead of each sleeping for a slot
        #: a millisecond off; over any second it sends at most rate * (1 + this).
        self.number_burst_ms = max(0.0, number_burst_s) * 1000.0
        self.pair_interval_s = pair_interval_s
        self.pair_burst = max(1, pair_burst)

    @staticmethod
    def _keys(tenant_id: str, number: str, recipient: str) -> list[str]:
        # the tenant's hash tag (a number belongs to one tenant): one Redis Cluster slot
        # with the tenant's idempotency, window and opt-out keys, checked in one script
        tag = tenant_tag(tenant_id)
        return [
            f"{PREFIX}{tag}:n:{number}",
            f"{PREFIX}{tag}:p:{number}:{recipient}",
            f"{PREFIX}{tag}:throttle:{number}",
            f"{PREFIX}{tag}:hold:{number}:{recipient}",
        ]

    def request(
        self, tenant_id: str, number: str, recipient: str, *, rate_mps: float, max_wait_s: float
    ) -> LimitRequest:
        n_interval = 1000.0 / max(rate_mps, 0.001)
        p_interval = self.pair_interval_s * 1000.0
        return LimitRequest(
            self._keys(tenant_id, number, recipient.lstrip("+")),
            [
                n_interval,
                self.number_burst_ms,
                p_interval,
                p_interval * (self.pair_burst - 1),
                max_wait_s * 1000.0,
            ],
        )

    async def acquire(
        self, tenant_id: str, number: str, recipient: str, *, rate_mps: float, max_wait_s: float
    ) -> Admission:
        req = self.request(tenant_id, number, recipient, rate_mps=rate_mps, max_wait_s=max_wait_s)
        try:
            reply = await self._batch.script(_SCRIPT, req.keys, list(req.args))
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"rate limiter: {exc!r}", store="ratelimit") from exc
        return admission_of(reply)

    async def throttle(
        self, tenant_id: str, number: str, *, factor: float, duration_s: float
    ) -> None:
        """After 130429: run ``number`` at ``factor`` times its rate for ``duration_s``."""
        key = self._keys(tenant_id, number, "")[2]
        try:
            await self._redis.set(key, str(factor), px=int(duration_s * 1000))
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"rate limiter: {exc!r}", store="ratelimit") from exc

    async def hold(self, tenant_id: str, number: str, recipient: str, *, duration_s: float) -> None:
        """After 131056: send nothing to ``recipient`` from ``number`` for ``duration_s``."""
        key = self._keys(tenant_id, number, recipient.lstrip("+"))[3]
        try:
            await self._redis.set(key, "1", px=max(1, int(duration_s * 1000)))
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"rate limiter: {exc!r}", store="ratelimit") from exc


def admission_of(reply: list[Any]) -> Admission:
    """``admit``'s ``{admitted, wait_ms, limit}`` reply as an :class:`Admission`."""
    admitted, wait_ms, limit = reply
    return Admission(bool(int(admitted)), float(wait_ms) / 1000.0, _text(limit))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
