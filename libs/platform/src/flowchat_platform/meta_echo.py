"""Messages sent through the gateway's Cloud-API-compatible endpoint, for the relay's
``meta``-format status webhooks: the gateway remembers, the relay recalls.

Code written for Meta names its messages by the id the send answered. The compatible
endpoint answers ``wamid_of(message_id)`` (:mod:`flowchat_contracts.meta_ids`) and may
be given ``biz_opaque_callback_data``, which Meta echoes in every status webhook of the
message. So the gateway records each message it queued there (key
``flowchat:meta:sent:<tenant>:<message_id>``, the callback data as its value, for
:data:`DEFAULT_TTL_S`), and the relay's ``meta`` status bodies of a recorded message
carry that id and echo the data. A message sent any other way (the bot, campaigns,
FlowChat's own API) keeps the provider's id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the relay's logic names the value below without loading Redis
    import redis.asyncio as aioredis

KEY_PREFIX = "flowchat:meta:sent:"
#: Statuses of a message come within days (a read receipt can take longer: the
#: customer opens it late); after this a late status names the provider's id.
DEFAULT_TTL_S = 30 * 24 * 3600


def echo_key(tenant_id: str, message_id: str) -> str:
    return f"{KEY_PREFIX}{tenant_id}:{message_id}"


@dataclass(frozen=True)
class SentThroughCloudApi:
    """A message the compatible endpoint queued, and the tenant's callback data."""

    callback_data: str | None


class MetaEcho:
    def __init__(self, redis: aioredis.Redis, *, ttl_s: int = DEFAULT_TTL_S) -> None:
        self._redis = redis
        self._ttl = ttl_s

    async def remember(self, tenant_id: str, message_id: str, callback_data: str | None) -> None:
        # "" stands for "no callback data" ("\x00" prefix keeps an empty string apart)
        value = "" if callback_data is None else "\x00" + callback_data
        await self._redis.set(echo_key(tenant_id, message_id), value, ex=self._ttl)

    async def recall(self, tenant_id: str, message_id: str) -> SentThroughCloudApi | None:
        raw = await self._redis.get(echo_key(tenant_id, message_id))
        if raw is None:
            return None
        value = raw.decode() if isinstance(raw, bytes) else str(raw)
        return SentThroughCloudApi(value[1:] if value.startswith("\x00") else None)
