"""Never send twice: idempotency key → send outcome, in Redis, shared by replicas.

One key per (tenant, idempotency key) holds JSON ``{fp, owner, at, result}``:

1. ``claim`` — one Lua call: either this delivery now owns the key, or the
   existing record comes back (a stored result, or another delivery's claim).
   ``claim_and_admit`` also reserves the rate-limit slot in the same call, and
   claims nothing when the limiter says "later" (one round trip per send, batched
   with the other messages' by :class:`~flowchat_platform.redis_batch.RedisBatcher`).
2. after the provider answered, ``complete`` stores the ``SendResult``; a duplicate
   re-publishes it without sending.
3. ``release`` — only when the provider certainly did not take the message (a
   retryable refusal, a limiter wait): the next delivery may claim again.

A claim that stays without result means a process died (or the network broke) while
the provider had the request: the outcome is unknown and the message is not resent.

Failover (Redis replicates asynchronously: a promoted replica may miss the last
claims): with ``replicas`` > 0 on the batcher, a claim counts only once that many
replicas acknowledged it (``WAIT``); one they did not is released and the send
retried later (:class:`~flowchat_platform.errors.StoreUnavailable`), so no claim the
provider was called for can vanish in a failover.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from flowchat_contracts import OutboundCommand, SendResult
from flowchat_contracts.shared_state import tenant_tag
from flowchat_platform.errors import StoreUnavailable
from flowchat_platform.redis_batch import LuaScript, RedisBatcher
from flowchat_sender.claims import (
    Claim,
    OptOutCheck,
    Record,
    WindowCheck,
    fingerprint,
)
from flowchat_sender.limits import LimitRequest
from flowchat_sender.ratelimit import ADMIT_LUA, admission_of

PREFIX = "flowchat:sender:idem:"

# Delete the key only while it is still this owner's claim without a result.
_RELEASE = LuaScript("""
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, rec = pcall(cjson.decode, v)
if ok and rec['owner'] == ARGV[1] and (rec['result'] == nil or rec['result'] == cjson.null) then
  return redis.call('DEL', KEYS[1])
end
return 0
""")

_STORE = LuaScript("return redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])")

# KEYS: idem key, window key (or the idem key again), opt-out set (or the idem key),
#       4 limiter keys (optional).
# ARGV: record, ttl, admit 0|1, window mode 0 off|1 known|2 strict, window s,
#       opt-out members, space-separated ('' when not checked), 5 limiter args (optional).
# Replies: {'dup', record} | {'optout'} | {'closed', last inbound s} (both claimed: the
#          failure is stored) | {'wait', wait_ms, limit} (nothing claimed)
#          | {'ok', wait_ms, limit}.
_CLAIM = LuaScript(
    ADMIT_LUA
    + """
local old = redis.call('GET', KEYS[1])
if old then return {'dup', old} end
for member in string.gmatch(ARGV[6], '%S+') do
  if redis.call('SISMEMBER', KEYS[3], member) == 1 then
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
    return {'optout'}
  end
end
local mode = ARGV[4]
if mode ~= '0' then
  local last = tonumber(redis.call('GET', KEYS[2]) or '-1')
  local now = tonumber(redis.call('TIME')[1])
  if (last >= 0 and now - last > tonumber(ARGV[5])) or (last < 0 and mode == '2') then
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
    return {'closed', tostring(last)}
  end
end
local wait, limit = '0', 'none'
if ARGV[3] == '1' then
  local r = admit(KEYS[4], KEYS[5], KEYS[6], KEYS[7], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11])
  if r[1] == 0 then return {'wait', r[2], r[3]} end
  wait, limit = r[2], r[3]
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return {'ok', wait, limit}
"""
)


class IdempotencyStore:
    def __init__(
        self, redis: aioredis.Redis, *, ttl_s: int, batcher: RedisBatcher | None = None
    ) -> None:
        self._redis = redis
        self.ttl_s = ttl_s
        self._batch = batcher or RedisBatcher(redis)

    @property
    def redis(self) -> aioredis.Redis:
        """The store's client (the DLQ's audit trail lives beside it)."""
        return self._redis

    @staticmethod
    def key(tenant_id: str, idempotency_key: str) -> str:
        # the tenant's hash tag: one slot with the window, opt-out and limiter keys
        return f"{PREFIX}{tenant_tag(tenant_id)}:{idempotency_key}"

    async def claim(
        self, command: OutboundCommand, owner: str, *, fp: str | None = None
    ) -> Record | None:
        """Claim the command's key for ``owner``; the existing record when someone holds it."""
        return (await self.claim_and_admit(command, owner, fp=fp)).record

    async def claim_and_admit(
        self,
        command: OutboundCommand,
        owner: str,
        *,
        fp: str | None = None,
        limit: LimitRequest | None = None,
        window: WindowCheck | None = None,
        optout: OptOutCheck | None = None,
    ) -> Claim:
        """Claim the key, check the opt-out set (``optout``) and the customer-service
        window (``window``) and reserve the rate-limit slot (``limit``): one Redis call."""
        value = orjson.dumps(
            {"fp": fp or fingerprint(command), "owner": owner, "at": time.time(), "result": None}
        )
        key = self.key(command.tenant_id, command.idempotency_key)
        keys = [key, window.key if window else key, optout.key if optout else key]
        args: list[Any] = [
            value,
            self.ttl_s,
            "1" if limit else "0",
            "0" if window is None else "2" if window.strict else "1",
            window.window_s if window else 0,
            " ".join(optout.members) if optout else "",
        ]
        if limit is not None:
            keys += limit.keys
            args += limit.args
        try:
            done = await self._batch.durable_script(_CLAIM, keys, args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"idempotency store: {exc!r}", store="idempotency") from exc
        reply = done.reply
        verdict = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        if verdict == "ok" and done.replicas < self._batch.replicas:
            # not on enough replicas: a failover now could forget it and a redelivery
            # send again; give it back and send later (the slot reserved stays spent)
            await self.release(command, owner)
            raise StoreUnavailable(
                f"idempotency claim on {done.replicas} of {self._batch.replicas} replicas",
                store="idempotency",
            )
        if verdict == "dup":
            old = reply[1]
            return Claim(Record.decode(old if isinstance(old, bytes) else str(old).encode()))
        if verdict == "optout":
            return Claim(None, opted_out=True)
        if verdict == "closed":
            return Claim(None, window_closed=float(reply[1]))
        if limit is None:
            return Claim(None)
        return Claim(None, admission_of([1 if verdict == "ok" else 0, reply[1], reply[2]]))

    async def complete(
        self, command: OutboundCommand, owner: str, result: SendResult, *, fp: str | None = None
    ) -> None:
        value = orjson.dumps(
            {
                "fp": fp or fingerprint(command),
                "owner": owner,
                "at": time.time(),
                "result": orjson.Fragment(result.model_dump_json(exclude_none=True)),
            }
        )
        key = self.key(command.tenant_id, command.idempotency_key)
        try:
            await self._batch.script(_STORE, [key], [value, self.ttl_s])
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"idempotency store: {exc!r}", store="idempotency") from exc

    async def release(self, command: OutboundCommand, owner: str) -> None:
        key = self.key(command.tenant_id, command.idempotency_key)
        try:
            await self._batch.script(_RELEASE, [key], [owner])
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"idempotency store: {exc!r}", store="idempotency") from exc

    async def raw(self, tenant_id: str, idempotency_key: str) -> bytes | None:
        """The stored record of a key, as stored (None: no record)."""
        try:
            value = await self._redis.get(self.key(tenant_id, idempotency_key))
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"idempotency store: {exc!r}", store="idempotency") from exc
        return value if value is None or isinstance(value, bytes) else str(value).encode()

    async def forget(self, tenant_id: str, idempotency_key: str) -> bool:
        """Delete a key's record (DLQ replay with ``--force``); True when there was one."""
        try:
            return bool(await self._redis.delete(self.key(tenant_id, idempotency_key)))
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"idempotency store: {exc!r}", store="idempotency") from exc
