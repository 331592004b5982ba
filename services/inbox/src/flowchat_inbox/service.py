"""History: every message of every thread, built from the queues; reads by cursor.

Pure: contracts in, :mod:`.ports` values out, storage behind :class:`HistoryStore`.

- An inbound message → an :class:`Entry` by the customer (its ids linked: the same
  person by phone and BSUID has one thread per number).
- An outbound command → an :class:`Entry` whose author is the command's ``origin``,
  else derived: a ``campaign_id`` is a campaign, an idempotency key ``reminder:…`` a
  reminder, a FlowChat-made message id (``msg-…``, the conversation service's) or an
  idempotency key ``reply:…`` the bot, anything else the send API.
- A status change → a :class:`StatusChange` (forward-only by rank).
- A hand-off → a :class:`HandoffOpen` (the inbox opens a conversation).

Redeliveries are recorded once: each entry has a dedupe key unique per tenant
(``in:<provider>:<provider message id>``, ``out:<idempotency key>``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from flowchat_contracts import (
    CustomerIdentity,
    HandoffRequested,
    InboundMessage,
    InboundMessageV2,
    OutboundCommand,
    is_bsuid,
)
from flowchat_contracts.privacy import ErasureRequested
from flowchat_inbox import metrics
from flowchat_inbox.errors import NotFound
from flowchat_inbox.ports import (
    Applied,
    Author,
    Entry,
    HandoffOpen,
    HistoryStore,
    Message,
    Op,
    Page,
    StatusChange,
    Thread,
)
from flowchat_platform import pagination
from flowchat_platform.retention import purge_in_batches

#: Status order (forward only); ``failed`` wins over everything.
STATUS_RANK: dict[str, int] = {
    "queued": 0,
    "accepted": 1,
    "sent": 2,
    "delivered": 3,
    "read": 4,
    "played": 5,
    "failed": 6,
}

MAX_PAGE = 100
MAX_BODY_INDEXED = 8000


class StatusChanged(BaseModel):
    """The state-manager's ``message_status_changed`` (the fields used here)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: str = "message_status_changed"
    event_id: str
    message_id: str
    tenant_id: str
    account_id: str
    status: str
    error_code: int | None = None
    timestamp: datetime


HistoryItem = InboundMessage | InboundMessageV2 | OutboundCommand | StatusChanged | HandoffRequested


# ------------------------------------------------------------------ contracts → ops


def customer_of_to(to: str) -> CustomerIdentity:
    if is_bsuid(to):
        return CustomerIdentity(user_id=to)
    return CustomerIdentity(wa_id=to.lstrip("+"))


def _join(*parts: Any) -> str | None:
    text = " ".join(str(p) for p in parts if p not in (None, ""))
    return text[:MAX_BODY_INDEXED] or None


def inbound_entry(m: InboundMessage | InboundMessageV2) -> Entry:
    customer = m.customer or CustomerIdentity(wa_id=m.customer_wa_id)
    content = m.model_dump(
        mode="json",
        exclude_none=True,
        include={
            "text",
            "media",
            "location",
            "reply",
            "reaction_emoji",
            "reaction_message_id",
            "context_message_id",
            "contacts",
            "order",
            "flow",
            "system",
            "referral",
        },
    )
    media = m.media
    body = _join(
        m.text,
        media.caption if media else None,
        m.reply.title if m.reply else None,
        m.location.name if m.location else None,
        m.flow.body if m.flow else None,
    )
    return Entry(
        tenant_id=m.tenant_id,
        account_id=m.account_id,
        customer=customer,
        dedupe_key=f"in:{m.provider}:{m.provider_message_id}",
        direction="inbound",
        author="customer",
        type=m.type,
        body=body,
        content=content,
        occurred_at=m.timestamp,
        provider_message_id=m.provider_message_id,
        customer_name=m.customer_name,
        links_ids=True,
    )


def outbound_author(c: OutboundCommand) -> Author:
    if c.origin is not None:
        return c.origin
    if c.campaign_id:
        return "campaign"
    if c.idempotency_key.startswith("reminder:"):
        return "reminder"
    if c.message_id.startswith("msg-") or c.idempotency_key.startswith("reply:"):
        return "bot"
    return "api"


def _outbound_body(c: OutboundCommand) -> str | None:
    content = c.content
    match content.type:
        case "text":
            return _join(content.body)
        case "image" | "video" | "audio" | "document" | "sticker":
            return _join(content.caption, content.filename)
        case "template":
            params = [
                p.text for comp in content.components for p in comp.parameters if p.text is not None
            ]
            return _join(content.name, *params)
        case "interactive_buttons":
            return _join(content.header, content.body, *(b.title for b in content.buttons))
        case "cta_url":
            return _join(content.header, content.body, content.url)
        case "interactive_list":
            rows = [r.title for s in content.sections for r in s.rows]
            return _join(content.header, content.body, *rows)
        case "location":
            return _join(content.name, content.address)
        case _:
            return None


def outbound_entry(c: OutboundCommand) -> Entry:
    return Entry(
        tenant_id=c.tenant_id,
        account_id=c.account_id,
        customer=customer_of_to(c.to),
        dedupe_key=f"out:{c.idempotency_key}",
        direction="outbound",
        author=outbound_author(c),
        agent_id=c.agent_id,
        type=c.content.type,
        body=_outbound_body(c),
        content=c.content.model_dump(mode="json", exclude_none=True),
        occurred_at=c.created_at,
        message_id=c.message_id,
    )


def op_of(item: HistoryItem) -> Op | None:
    """The op a queue message makes; None for one the history does not keep."""
    if isinstance(item, InboundMessage | InboundMessageV2):
        return inbound_entry(item)
    if isinstance(item, OutboundCommand):
        return outbound_entry(item)
    if isinstance(item, StatusChanged):
        rank = STATUS_RANK.get(item.status)
        if rank is None:
            return None
        return StatusChange(
            tenant_id=item.tenant_id,
            account_id=item.account_id,
            message_id=item.message_id,
            status=item.status,
            rank=rank,
            occurred_at=item.timestamp,
            error_code=item.error_code,
        )
    return HandoffOpen(
        tenant_id=item.tenant_id,
        account_id=item.account_id,
        customer=item.customer,
        event_id=item.event_id,
        reason=item.reason,
        bot_state=item.bot_state,
        occurred_at=item.requested_at,
    )


def partition_key(op: Op) -> str:
    """One number's ops go to one writer, in order (no two batches lock one thread)."""
    return f"{op.tenant_id}\x1f{op.account_id}"


# ------------------------------------------------------------------ cursors


def encode_cursor(at: datetime, row_id: int) -> str:
    return pagination.encode_cursor((at, row_id))


def decode_cursor(cursor: str | None) -> tuple[datetime, int] | None:
    """The (time, row id) keyset of a cursor (the platform's codec); None: the first page."""
    key = pagination.decode_cursor(cursor, datetime, int)
    return (key[0], key[1]) if key else None


def _page(rows: Sequence[Any], limit: int, key: Any) -> Page:
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(rows, encode_cursor(*key(rows[-1])))
    return Page(rows, None)


# ------------------------------------------------------------------ the service


class HistoryService:
    def __init__(self, store: HistoryStore) -> None:
        self.store = store

    async def apply(self, ops: Sequence[Op]) -> list[Applied]:
        return await self.store.apply(ops)

    async def threads(
        self,
        tenant_id: str,
        *,
        account_id: str | None,
        cursor: str | None,
        limit: int,
        customer: str | None = None,
        ids: Sequence[int] | None = None,
    ) -> Page:
        """``customer``: only the threads of the customer with that id (phone digits or
        a BSUID; any of the customer's ids). ``ids``: only these threads (those of the
        tenant; a list page's customers in one call)."""
        rows = await self.store.threads(
            tenant_id,
            account_id=account_id,
            after=decode_cursor(cursor),
            limit=limit + 1,
            customer=customer,
            ids=ids,
        )
        return _page(rows, limit, lambda t: (t.last_message_at, t.id))

    async def thread(self, tenant_id: str, thread_id: int) -> Thread:
        thread = await self.store.thread(tenant_id, thread_id)
        if thread is None:
            raise NotFound("no such thread")
        return thread

    async def messages(
        self, tenant_id: str, thread_id: int, *, cursor: str | None, limit: int
    ) -> Page:
        await self.thread(tenant_id, thread_id)
        rows = await self.store.messages(
            tenant_id, thread_id, after=decode_cursor(cursor), limit=limit + 1
        )
        return _page(rows, limit, _message_key)

    async def search(self, tenant_id: str, query: str, *, cursor: str | None, limit: int) -> Page:
        rows = await self.store.search(
            tenant_id, query, after=decode_cursor(cursor), limit=limit + 1
        )
        return _page(rows, limit, _message_key)

    async def erase(self, request: ErasureRequested) -> dict[str, int]:
        """Forget a customer (``flowchat_contracts.privacy``): their threads, history,
        hand-offs and aliases are deleted; idempotent."""
        return await self.store.erase_customer(request.tenant_id, request.identities)

    async def purge(self, *, retention_days: int, batch_size: int, now: datetime) -> dict[str, int]:
        """Delete message content older than the retention (messages, their latest
        statuses, the threads' previews of them), one short batch at a time; the rows
        touched by kind."""
        cutoff = now - timedelta(days=retention_days)
        kinds = {
            "messages": self.store.purge_messages,
            "statuses": self.store.purge_statuses,
            "previews": self.store.purge_previews,
        }
        done: dict[str, int] = {}
        for kind, purge in kinds.items():

            async def one(c: datetime, b: int, purge: Any = purge) -> int:
                return int(await purge(c, b, default_days=retention_days))

            done[kind] = await purge_in_batches(
                one, cutoff, batch_size, metrics.PURGED.labels(kind).inc
            )
        return done

    async def retention(self, tenant_id: str, default_days: int) -> tuple[int, bool]:
        """The tenant's retention of message content in days, and whether it is its own."""
        days = await self.store.retention(tenant_id)
        return (days, True) if days is not None else (default_days, False)

    async def set_retention(self, tenant_id: str, days: int | None) -> None:
        await self.store.set_retention(tenant_id, days)


def _message_key(m: Message) -> tuple[datetime, int]:
    return m.occurred_at, m.id
