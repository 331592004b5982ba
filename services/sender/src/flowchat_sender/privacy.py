"""The sender's part of a customer's erasure (``flowchat_contracts.privacy``): the Redis
keys that name the customer — the customer-service window (``flowchat:csw:…``, written
by the gateway, read here) and the per-recipient pair limits and holds
(``flowchat:sender:rl:…:p:…`` / ``…:hold:…``) at every number of the tenant. They expire
on their own (72 h, seconds); an erasure does not wait for that.

Its idempotency records stay (a redelivered command must still find its send), but the
send result each keeps names the recipient: that id is replaced by a pseudonym shaped
as a BSUID (``XX.<keyed digest>``: ``XX`` is no country), so the record still decodes.
"""

from __future__ import annotations

import orjson
import redis.asyncio as aioredis

from flowchat_contracts.privacy import ErasureRequested
from flowchat_contracts.shared_state import tenant_tag
from flowchat_platform.privacy import BlindIndex, normalise_id
from flowchat_sender.idempotency import PREFIX as IDEM_PREFIX
from flowchat_sender.ratelimit import PREFIX as LIMIT_PREFIX

#: Idempotency records read per Redis call while looking for a customer's.
CHUNK = 500


def _glob(value: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in value)


class RedisErasure:
    def __init__(self, redis: aioredis.Redis, index: BlindIndex) -> None:
        self._redis = redis
        self._index = index

    async def erase(self, request: ErasureRequested) -> dict[str, int]:
        tag = _glob(tenant_tag(request.tenant_id))
        windows = limits = 0
        for raw in request.identities:
            customer = _glob(normalise_id(raw))
            windows += await self._delete(f"flowchat:csw:{tag}:*:{customer}")
            for kind in ("p", "hold"):
                limits += await self._delete(f"{LIMIT_PREFIX}{tag}:{kind}:*:{customer}")
        records = await self._scrub_records(request)
        return {
            "windows_deleted": windows,
            "pair_limits_deleted": limits,
            "send_records_pseudonymised": records,
        }

    async def _scrub_records(self, request: ErasureRequested) -> int:
        ids = {normalise_id(i) for i in request.identities}
        needles = [i.encode() for i in ids]
        pseudonym = "XX." + self._index.digest(request.tenant_id, sorted(ids)[0])[:24]
        pattern = f"{IDEM_PREFIX}{_glob(tenant_tag(request.tenant_id))}:*"
        changed = 0
        batch: list[bytes] = []
        async for key in self._redis.scan_iter(match=pattern, count=CHUNK):
            batch.append(key)
            if len(batch) >= CHUNK:
                changed += await self._scrub(batch, ids, needles, pseudonym)
                batch = []
        if batch:
            changed += await self._scrub(batch, ids, needles, pseudonym)
        return changed

    async def _scrub(
        self, keys: list[bytes], ids: set[str], needles: list[bytes], pseudonym: str
    ) -> int:
        changed = 0
        for key, raw in zip(keys, await self._redis.mget(keys), strict=True):
            if raw is None or not any(n in raw for n in needles):
                continue
            record = orjson.loads(raw)
            result = record.get("result")
            if isinstance(result, dict) and str(result.get("to", "")).lstrip("+") in ids:
                result["to"] = pseudonym
                await self._redis.set(key, orjson.dumps(record), keepttl=True)
                changed += 1
        return changed

    async def _delete(self, pattern: str) -> int:
        keys = [k async for k in self._redis.scan_iter(match=pattern, count=1000)]
        return int(await self._redis.delete(*keys)) if keys else 0
