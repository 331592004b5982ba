"""Conversation sessions in Redis: versioned, expiring, written with check-and-set.

Key ``conversation:session:{<tenant>}:<account>:<customer>`` is a hash ``{v, s}``:
``v`` the version (absent key = version 0), ``s`` the session JSON. A save names the
version it read; the Lua script writes only if that is still the stored version, bumps
it and resets the TTL, so two writers can never silently overwrite each other. The
cart is also written to ``conversation:cart:<...>`` with a longer TTL: when the session
expires the customer starts again at GREETING with the cart kept (abandoned carts).

A save for an inbound message also keeps ``m`` (that message's id) and ``p`` (the
session before it, ``""`` for none): the session is saved before the transaction
commits, and when that commit is lost the redelivery handles the message again from
``p``, so its effects (an order, a contact) are written after all.

A load is one round trip (a script): the session's fields, or when there is no session,
the cart it left.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from pydantic import TypeAdapter

from flowchat_contracts.shared_state import tenant_tag
from flowchat_conversation.commerce.bot import CartLine, Session
from flowchat_conversation.commerce.domain import ConversationKey
from flowchat_conversation.commerce.ports import StoredSession

_CAS = """
local current = redis.call('HGET', KEYS[1], 'v') or '0'
if current ~= ARGV[1] then
  return -1
end
local next_version = tonumber(current) + 1
redis.call('HSET', KEYS[1], 'v', next_version, 's', ARGV[2])
if ARGV[6] == '' then
  redis.call('HDEL', KEYS[1], 'm', 'p')
else
  redis.call('HSET', KEYS[1], 'm', ARGV[6], 'p', ARGV[7])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[4] == '' then
  redis.call('DEL', KEYS[2])
else
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
end
return next_version
"""

#: The session's ``v, s, m, p``; without a session, four nils and the cart (or nil).
_LOAD = """
local fields = redis.call('HMGET', KEYS[1], 'v', 's', 'm', 'p')
if fields[1] and fields[2] then
  return fields
end
return {false, false, false, false, redis.call('GET', KEYS[2])}
"""

_CART = TypeAdapter(list[CartLine])


def _keys(key: ConversationKey) -> tuple[str, str]:
    # the tenant's hash tag: the check-and-set script writes both keys (one Cluster slot)
    suffix = f"{tenant_tag(key.tenant_id)}:{key.account_id}:{key.customer_wa_id}"
    return f"conversation:session:{suffix}", f"conversation:cart:{suffix}"


class RedisSessionStore:
    def __init__(self, client: aioredis.Redis, *, ttl_s: int, cart_ttl_s: int) -> None:
        self._redis = client
        self.ttl_s = ttl_s
        self.cart_ttl_s = cart_ttl_s
        self._cas = client.register_script(_CAS)
        self._load = client.register_script(_LOAD)

    async def load(self, key: ConversationKey) -> StoredSession:
        raw = await self._load(keys=list(_keys(key)))
        version, body, message_id, previous = raw[:4]
        if version is not None and body is not None:
            return StoredSession(
                Session.model_validate_json(body),
                int(version),
                message_id.decode() if isinstance(message_id, bytes) else message_id,
                Session.model_validate_json(previous) if previous else None,
            )
        cart = raw[4]
        if cart:
            # The session expired: start again at GREETING, the cart kept.
            return StoredSession(Session(cart=_CART.validate_json(cart)), 0)
        return StoredSession(None, 0)

    async def save(
        self,
        key: ConversationKey,
        session: Session,
        *,
        expected_version: int,
        message_id: str | None = None,
        previous: Session | None = None,
    ) -> bool:
        """Write ``session`` if the stored version is still ``expected_version``; with
        ``message_id``, the inbound message it answers and the session before it."""
        session_key, cart_key = _keys(key)
        cart = _CART.dump_json(session.cart).decode() if session.cart else ""
        result = await self._cas(
            keys=[session_key, cart_key],
            args=[
                str(expected_version),
                session.model_dump_json(),
                str(self.ttl_s * 1000),
                cart,
                str(self.cart_ttl_s * 1000),
                message_id or "",
                previous.model_dump_json() if previous is not None else "",
            ],
        )
        return int(result) > 0

    async def ping(self) -> bool:
        return bool(await self._redis.ping())
