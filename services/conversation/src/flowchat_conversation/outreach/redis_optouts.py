"""The opt-out mirror: the Redis set the sender's guard reads, kept in step with PostgreSQL.

Contract (``flowchat_contracts.optout_key``): per tenant, a Redis **set** of the
``wa_id`` values (digits, no ``+``) opted out of marketing. PostgreSQL (``contacts``)
is the record; this set is a copy the sender checks before a ``marketing`` send.

Every path that changes a contact's marketing state mirrors the *resulting* state
(not the request: an import never opts back in a customer who stopped, an older
webhook never overrides a newer one):

- STOP / START to the bot (:class:`~flowchat_conversation.commerce.service.ConversationService`):
  an opt-out joins the set *before* the transaction commits, an opt-in leaves it
  *after*, so a crash between the two leaves the customer protected, never exposed;
- the ``user_marketing_preferences`` webhook, error 131050, the API, the contacts API
  and CSV import
  (:class:`~flowchat_conversation.outreach.contact_service.ContactsService`): after
  the write; a redelivered event or a retried request writes the same state again.

:meth:`RedisOptOuts.rebuild` repairs the set from PostgreSQL at service start (any
replica, any number of times): it adds every opted-out contact, page by page, then
walks each tenant's set and removes members PostgreSQL says may receive marketing.
A member is removed only after a fresh read of its row, so a rebuild running next to
live opt-outs can at worst keep a customer out a little longer, never let one in
(except in the instant between that read and the removal, which the campaign runner's
own check in PostgreSQL still covers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis

from flowchat_contracts import optout_key
from flowchat_contracts.shared_state import optout_tenant
from flowchat_platform.logs import get_logger

log = get_logger(__name__)

#: Members of an erased customer (``h:<keyed digest>``): kept by every rebuild.
SUPPRESSED_PREFIX = "h:"
#: Members per Redis command (SADD / SREM / SSCAN count) and rows per PostgreSQL page.
CHUNK = 1000


class OptOutSource(Protocol):
    """PostgreSQL's side of a rebuild (implemented by the outreach repository)."""

    async def opted_out_page(
        self, after: tuple[str, int], limit: int
    ) -> list[tuple[str, int, str]]:
        """``(tenant_id, contact_id, wa_id)`` of opted-out contacts after ``after``
        in ``(tenant_id, contact_id)`` order."""

    async def marketing_states(self, tenant_id: str, wa_ids: Sequence[str]) -> dict[str, bool]:
        """``wa_id → marketing_opt_in`` of the tenant's contacts among ``wa_ids``."""


@dataclass(frozen=True)
class RebuildReport:
    tenants: int
    added: int
    removed: int


class RedisOptOuts:
    """Writes the opt-out sets (the
    :class:`~flowchat_conversation.outreach.ports.OptOutMirror`)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def mirror(self, tenant_id: str, states: Mapping[str, bool]) -> None:
        key = optout_key(tenant_id)
        out = [wa_id for wa_id, opt_in in states.items() if not opt_in]
        back = [wa_id for wa_id, opt_in in states.items() if opt_in]
        if not out and not back:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for i in range(0, len(out), CHUNK):
                pipe.sadd(key, *out[i : i + CHUNK])
            for i in range(0, len(back), CHUNK):
                pipe.srem(key, *back[i : i + CHUNK])
            await pipe.execute()

    async def members(self, tenant_id: str) -> set[str]:
        raw = await self._redis.smembers(optout_key(tenant_id))
        return {m.decode() if isinstance(m, bytes) else str(m) for m in raw}

    async def rebuild(self, source: OptOutSource, *, page: int = CHUNK) -> RebuildReport:
        tenants: set[str] = set()
        added = 0
        after = ("", 0)
        while rows := await source.opted_out_page(after, page):
            by_tenant: dict[str, list[str]] = {}
            for tenant_id, _, wa_id in rows:
                by_tenant.setdefault(tenant_id, []).append(wa_id)
            async with self._redis.pipeline(transaction=False) as pipe:
                for tenant_id, wa_ids in by_tenant.items():
                    pipe.sadd(optout_key(tenant_id), *wa_ids)
                added += sum(await pipe.execute())
            tenants.update(by_tenant)
            after = (rows[-1][0], rows[-1][1])
        removed = 0
        async for raw_key in self._redis.scan_iter(match=optout_key("*"), count=CHUNK):
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            owner = optout_tenant(key)
            if owner is None:
                continue
            tenants.add(owner)
            removed += await self._prune(source, owner, page)
        return RebuildReport(tenants=len(tenants), added=added, removed=removed)

    async def _prune(self, source: OptOutSource, tenant_id: str, page: int) -> int:
        """Remove the tenant's members that PostgreSQL does not hold as opted out."""
        key = optout_key(tenant_id)
        removed = 0
        chunk: list[str] = []

        async def check(members: list[str]) -> int:
            states = await source.marketing_states(tenant_id, members)
            # suppression members (``h:<digest>``, erased customers) have no contact row
            gone = [
                m for m in members if not m.startswith(SUPPRESSED_PREFIX) and states.get(m, True)
            ]
            return int(await self._redis.srem(key, *gone)) if gone else 0

        async for raw in self._redis.sscan_iter(key, count=page):
            chunk.append(raw.decode() if isinstance(raw, bytes) else str(raw))
            if len(chunk) >= page:
                removed += await check(chunk)
                chunk = []
        if chunk:
            removed += await check(chunk)
        return removed
