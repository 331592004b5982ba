"""Rate limits shared by every replica: GCRA in one Redis Lua script on Redis ``TIME``.

Two limits per send, checked atomically:

- per number: ``rate`` messages/s (the account's throughput, 80 by default), with a
  small burst; while a 130429 throttle is set the rate is multiplied by its factor;
- per (number, recipient) pair: one message every 6 s with a burst of 45 (Meta's
  pair rate); a 131056 hold blocks that recipient alone for 4^X s.

A send *reserves* its slot (the theoretical arrival time moves on) and learns how
long to wait for it; waits up to ``max_wait_s`` are slept in-process, longer ones
reserve nothing and go to a retry tier. Reserving makes the achieved rate exact
across replicas: nobody polls, every admitted send has its own instant.

The pure :func:`gcra` is the same arithmetic, for unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from flowchat_sender.errors import StoreUnavailable

PREFIX = "flowchat:sender:rl:"

_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n_T = tonumber(ARGV[1])
local n_tau = tonumber(ARGV[2])
local p_T = tonumber(ARGV[3])
local p_tau = tonumber(ARGV[4])
local max_wait = tonumber(ARGV[5])
local factor = tonumber(redis.call('GET', KEYS[3]) or '1')
if factor and factor > 0 and factor < 1 then n_T = n_T / factor end
local hold = redis.call('PTTL', KEYS[4])
if hold > 0 then return {0, tostring(hold), 'hold'} end
local p_tat = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'), now)
local p_wait = p_tat - now - p_tau
if p_wait > 0 then return {0, tostring(p_wait), 'pair'} end
local n_tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local n_wait = n_tat - now - n_tau
if n_wait < 0 then n_wait = 0 end
if n_wait > max_wait then return {0, tostring(n_wait), 'number'} end
local new_n = n_tat + n_T
local n_ttl = math.ceil(new_n - now + n_tau) + 1000
redis.call('SET', KEYS[1], string.format('%.3f', new_n), 'PX', n_ttl)
local new_p = p_tat + p_T
redis.call('SET', KEYS[2], string.format('%.3f', new_p), 'PX', math.ceil(new_p - now) + 1000)
return {1, tostring(n_wait), 'ok'}
"""


@dataclass(frozen=True)
class Admission:
    admitted: bool
    #: Admitted: sleep this long, then send. Not admitted: come back after this long.
    wait_s: float
    #: ``ok``, or which limit refused: ``number``, ``pair``, ``hold``.
    limit: str


def gcra(
    tat: float, now: float, *, interval: float, tolerance: float, max_wait: float
) -> tuple[bool, float, float]:
    """One GCRA step with reservation: ``(admitted, wait, new_tat)`` (all in seconds).

    ``interval`` is 1/rate, ``tolerance`` = interval * (burst - 1).
    """
    tat = max(tat, now)
    wait = max(0.0, tat - now - tolerance)
    if wait > max_wait:
        return False, wait, tat
    return True, wait, tat + interval


class RateLimiter:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        number_burst: int = 1,
        pair_interval_s: float = 6.0,
        pair_burst: int = 45,
    ) -> None:
        self._redis = redis
        self._script = redis.register_script(_SCRIPT)
        self.number_burst = max(1, number_burst)
        self.pair_interval_s = pair_interval_s
        self.pair_burst = max(1, pair_burst)

    @staticmethod
    def _keys(number: str, recipient: str) -> list[str]:
        return [
            f"{PREFIX}n:{number}",
            f"{PREFIX}p:{number}:{recipient}",
            f"{PREFIX}throttle:{number}",
            f"{PREFIX}hold:{number}:{recipient}",
        ]

    async def acquire(
        self, number: str, recipient: str, *, rate_mps: float, max_wait_s: float
    ) -> Admission:
        n_interval = 1000.0 / max(rate_mps, 0.001)
        p_interval = self.pair_interval_s * 1000.0
        args = [
            n_interval,
            n_interval * (self.number_burst - 1),
            p_interval,
            p_interval * (self.pair_burst - 1),
            max_wait_s * 1000.0,
        ]
        try:
            admitted, wait_ms, limit = await self._script(
                keys=self._keys(number, recipient.lstrip("+")), args=args
            )
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"rate limiter: {exc!r}", store="ratelimit") from exc
        return Admission(bool(int(admitted)), float(wait_ms) / 1000.0, _text(limit))

    async def throttle(self, number: str, *, factor: float, duration_s: float) -> None:
        """After 130429: run ``number`` at ``factor`` times its rate for ``duration_s``."""
        try:
            await self._redis.set(
                f"{PREFIX}throttle:{number}", str(factor), px=int(duration_s * 1000)
            )
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"rate limiter: {exc!r}", store="ratelimit") from exc

    async def hold(self, number: str, recipient: str, *, duration_s: float) -> None:
        """After 131056: send nothing to ``recipient`` from ``number`` for ``duration_s``."""
        key = f"{PREFIX}hold:{number}:{recipient.lstrip('+')}"
        try:
            await self._redis.set(key, "1", px=max(1, int(duration_s * 1000)))
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"rate limiter: {exc!r}", store="ratelimit") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
