"""The state-manager's query side: tenant-scoped reads of message records (pure).

Every method takes the caller's tenant first; a message of another tenant is
:class:`~flowchat_state_manager.errors.MessageNotFound` exactly like one that does not
exist. Message pages are keyed by (created_at, id), newest first; a message's history by
the order FlowChat learned its statuses (``sequence``); both behind the platform's opaque
cursor (:mod:`flowchat_platform.pagination`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from flowchat_platform.pagination import decode_cursor, page_of
from flowchat_state_manager.errors import MessageNotFound
from flowchat_state_manager.models import HistoryEntry, MessageFilter, MessageRecord, Page, PageKey
from flowchat_state_manager.ports import QueryStore
from flowchat_state_manager.recipients import recipient_for_lookup
from flowchat_state_manager.state import FORWARD, Status, reached


@dataclass(frozen=True, slots=True)
class Stats:
    total: int
    counts: dict[str, int]
    #: Messages that got at least this far (read implies delivered; failed excluded).
    reached: dict[str, int]


def summarize(counts: dict[Status, int]) -> Stats:
    all_counts = {s.value: counts.get(s, 0) for s in Status}
    funnel = {
        target.value: sum(n for status, n in counts.items() if reached(status, target))
        for target in FORWARD
        if target is not Status.QUEUED
    }
    return Stats(total=sum(counts.values()), counts=all_counts, reached=funnel)


def _found(message: MessageRecord | None) -> MessageRecord:
    if message is None:
        raise MessageNotFound("no such message")
    return message


class QueryService:
    """Tenant-scoped reads: every method takes the caller's tenant first."""

    def __init__(self, repository: QueryStore) -> None:
        self._repo = repository

    async def get(self, tenant_id: str, message_id: str) -> MessageRecord:
        return _found(await self._repo.get(tenant_id, message_id))

    async def by_provider_id(self, tenant_id: str, provider_message_id: str) -> MessageRecord:
        return _found(await self._repo.by_provider_id(tenant_id, provider_message_id))

    async def by_idempotency_key(self, tenant_id: str, key: str) -> MessageRecord:
        return _found(await self._repo.by_idempotency_key(tenant_id, key))

    async def history(
        self, tenant_id: str, message_id: str, *, cursor: str | None, limit: int
    ) -> tuple[list[HistoryEntry], str | None]:
        """One page of the message's statuses in the order FlowChat learned them."""
        _found(await self._repo.get(tenant_id, message_id))
        after = decode_cursor(cursor, int)
        rows = await self._repo.history(
            tenant_id, message_id, after=after[0] if after else 0, limit=limit + 1
        )
        return page_of(rows, limit, lambda e: (e.sequence,))

    async def list_messages(
        self, tenant_id: str, f: MessageFilter, *, cursor: str | None, limit: int
    ) -> Page:
        """One page, newest first; ``f.recipient`` may be in any phone form (``+…``, digits)
        or a BSUID, and matches either id of the customer (``recipient_alias``)."""
        key = decode_cursor(cursor, datetime, str)
        after = PageKey(created_at=key[0], id=key[1]) if key else None
        if f.recipient is not None:
            f = replace(f, recipient=recipient_for_lookup(f.recipient))
        rows = await self._repo.list_messages(tenant_id, f, after, limit + 1)
        items, next_cursor = page_of(rows, limit, lambda m: (m.created_at, m.id))
        return Page(items=items, next_cursor=next_cursor)

    async def stats(
        self,
        tenant_id: str,
        *,
        campaign_id: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> Stats:
        counts = await self._repo.count_by_status(
            tenant_id, campaign_id=campaign_id, since=since, until=until
        )
        return summarize(counts)
