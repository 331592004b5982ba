"""Never send twice: idempotency key → send outcome, in Redis, shared by replicas.

One key per (tenant, idempotency key) holds JSON ``{fp, owner, at, result}``:

1. ``claim`` — ``SET NX GET``: either this delivery now owns the key, or the
   existing record comes back (a stored result, or another delivery's claim).
2. after the provider answered, ``complete`` stores the ``SendResult``; a duplicate
   re-publishes it without sending.
3. ``release`` — only when the provider certainly did not take the message (a
   retryable refusal, a limiter wait): the next delivery may claim again.

A claim that stays without result means a process died (or the network broke) while
the provider had the request: the outcome is unknown and the message is not resent.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis
from flowchat_contracts import OutboundCommand, SendResult
from redis.exceptions import RedisError

from flowchat_sender.errors import StoreUnavailable

PREFIX = "flowchat:sender:idem:"

# Delete the key only while it is still this owner's claim without a result.
_RELEASE = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, rec = pcall(cjson.decode, v)
if ok and rec['owner'] == ARGV[1] and (rec['result'] == nil or rec['result'] == cjson.null) then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def fingerprint(command: OutboundCommand) -> str:
    """What makes two commands "the same message": account, recipient, content, reply."""
    payload = {
        "account_id": command.account_id,
        "to": command.to.lstrip("+"),
        "reply_to": command.reply_to,
        "content": command.content.model_dump(mode="json", exclude_none=True),
    }
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True)
class Record:
    fingerprint: str
    owner: str
    claimed_at: float
    result: SendResult | None

    @classmethod
    def decode(cls, raw: bytes) -> Record:
        data = orjson.loads(raw)
        result = data.get("result")
        return cls(
            fingerprint=str(data.get("fp", "")),
            owner=str(data.get("owner", "")),
            claimed_at=float(data.get("at", 0)),
            result=SendResult.model_validate(result) if result else None,
        )


class IdempotencyStore:
    def __init__(self, redis: aioredis.Redis, *, ttl_s: int) -> None:
        self._redis = redis
        self.ttl_s = ttl_s
        self._release = redis.register_script(_RELEASE)

    @staticmethod
    def key(tenant_id: str, idempotency_key: str) -> str:
        return f"{PREFIX}{tenant_id}:{idempotency_key}"

    async def claim(self, command: OutboundCommand, owner: str) -> Record | None:
        """Claim the command's key for ``owner``; the existing record when someone holds it."""
        value = orjson.dumps(
            {"fp": fingerprint(command), "owner": owner, "at": time.time(), "result": None}
        )
        key = self.key(command.tenant_id, command.idempotency_key)
        try:
            old = await self._redis.set(key, value, nx=True, ex=self.ttl_s, get=True)
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"idempotency store: {exc!r}", store="idempotency") from exc
        if old is None:
            return None
        return Record.decode(old if isinstance(old, bytes) else str(old).encode())

    async def complete(self, command: OutboundCommand, owner: str, result: SendResult) -> None:
        value = orjson.dumps(
            {
                "fp": fingerprint(command),
                "owner": owner,
                "at": time.time(),
                "result": result.model_dump(mode="json", exclude_none=True),
            }
        )
        key = self.key(command.tenant_id, command.idempotency_key)
        try:
            await self._redis.set(key, value, ex=self.ttl_s)
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"idempotency store: {exc!r}", store="idempotency") from exc

    async def release(self, command: OutboundCommand, owner: str) -> None:
        key = self.key(command.tenant_id, command.idempotency_key)
        try:
            await self._release(keys=[key], args=[owner])
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"idempotency store: {exc!r}", store="idempotency") from exc
