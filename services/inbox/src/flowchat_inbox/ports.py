"""What the inbox's services depend on (Protocols) and the plain values they trade.

Adapters: :mod:`.repository` (PostgreSQL) implements :class:`HistoryStore` and
:class:`InboxStore`; :mod:`.broker` (RabbitMQ) implements :class:`Publisher`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from flowchat_contracts import CustomerIdentity, HandoffRequested, HandoffResolved, OutboundCommand

Direction = Literal["inbound", "outbound", "internal"]
Author = Literal["customer", "bot", "agent", "campaign", "reminder", "api"]
ConversationStatus = Literal["waiting", "assigned", "resolved"]


# ------------------------------------------------------------------ ingest values


@dataclass(frozen=True)
class Entry:
    """One message of a thread to record (either direction, or an internal note)."""

    tenant_id: str
    account_id: str
    #: The customer: the identity an inbound message carries, or an outbound ``to``.
    customer: CustomerIdentity
    #: Unique per tenant: a redelivery carries the same one and is not recorded twice.
    dedupe_key: str
    direction: Direction
    author: Author
    type: str
    #: The searchable text (text, captions, choices, template name and parameters).
    body: str | None
    #: The whole content, as the contract carried it.
    content: dict[str, Any]
    occurred_at: datetime
    agent_id: str | None = None
    message_id: str | None = None
    provider_message_id: str | None = None
    customer_name: str | None = None
    #: Inbound: the ids are the same person (alias links); outbound ``to`` links nothing.
    links_ids: bool = False


@dataclass(frozen=True)
class StatusChange:
    tenant_id: str
    account_id: str
    message_id: str
    status: str
    rank: int
    occurred_at: datetime
    error_code: int | None = None


@dataclass(frozen=True)
class HandoffOpen:
    tenant_id: str
    account_id: str
    customer: CustomerIdentity
    event_id: str
    reason: str | None
    bot_state: str | None
    occurred_at: datetime


Op = Entry | StatusChange | HandoffOpen


@dataclass(frozen=True)
class Applied:
    """What one op did: ``recorded`` False for a duplicate; the thread it touched; the
    live update to broadcast (None when there is nothing new to tell)."""

    recorded: bool
    tenant_id: str
    live: dict[str, Any] | None = None


# ------------------------------------------------------------------ read values


@dataclass(frozen=True)
class Thread:
    id: int
    tenant_id: str
    account_id: str
    customer_key: str
    wa_id: str | None
    user_id: str | None
    customer_name: str | None
    last_message_at: datetime
    last_inbound_at: datetime | None
    last_preview: str | None
    message_count: int


@dataclass(frozen=True)
class Message:
    id: int
    thread_id: int
    direction: str
    author: str
    agent_id: str | None
    type: str
    body: str | None
    content: dict[str, Any]
    message_id: str | None
    provider_message_id: str | None
    status: str | None
    status_at: datetime | None
    error_code: int | None
    occurred_at: datetime


@dataclass(frozen=True)
class Conversation:
    id: int
    tenant_id: str
    account_id: str
    thread_id: int
    status: ConversationStatus
    assignee: str | None
    reason: str | None
    bot_state: str | None
    opened_at: datetime
    claimed_at: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Page:
    items: Sequence[Any]
    next_cursor: str | None


@dataclass(frozen=True)
class ConversationFilter:
    #: ``waiting`` (open, no agent reply yet), ``mine``, ``unassigned``, ``open``,
    #: ``resolved`` or None (every open one).
    view: str | None = None
    account_id: str | None = None
    agent_id: str | None = None
    #: Only conversations carrying this tag.
    tag: str | None = None


@dataclass(frozen=True)
class WaitStats:
    waiting: int
    oldest_wait_s: float | None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TenantWait:
    tenant_id: str
    waiting: int
    oldest_wait_s: float


# ------------------------------------------------------------------ ports


class HistoryStore(Protocol):
    async def apply(self, ops: Sequence[Op]) -> list[Applied]:
        """Apply every op in one transaction (all or none)."""

    async def erase_customer(self, tenant_id: str, ids: Sequence[str]) -> dict[str, int]:
        """Delete the customer's threads (messages, statuses, conversations) and aliases."""

    async def threads(
        self,
        tenant_id: str,
        *,
        account_id: str | None,
        after: tuple[datetime, int] | None,
        limit: int,
        customer: str | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[Thread]: ...

    async def thread(self, tenant_id: str, thread_id: int) -> Thread | None: ...

    async def messages(
        self, tenant_id: str, thread_id: int, *, after: tuple[datetime, int] | None, limit: int
    ) -> list[Message]: ...

    async def search(
        self, tenant_id: str, query: str, *, after: tuple[datetime, int] | None, limit: int
    ) -> list[Message]: ...

    async def purge_messages(self, cutoff: datetime, batch: int, default_days: int = 0) -> int:
        """Delete one batch of messages that occurred before ``cutoff`` (now - the
        default ``default_days``), or before now - their tenant's own days."""

    async def purge_statuses(self, cutoff: datetime, batch: int, default_days: int = 0) -> int:
        """Delete one batch of latest statuses last updated before the cutoff (as above)."""

    async def purge_previews(self, cutoff: datetime, batch: int, default_days: int = 0) -> int:
        """Clear one batch of threads' last-message previews older than the cutoff."""

    async def retention(self, tenant_id: str) -> int | None:
        """The tenant's own retention in days (None: the default)."""

    async def set_retention(self, tenant_id: str, days: int | None) -> None:
        """Set (None: drop) the tenant's own retention."""


class InboxStore(Protocol):
    async def conversation(self, tenant_id: str, conversation_id: int) -> Conversation | None: ...

    async def conversations(
        self,
        tenant_id: str,
        flt: ConversationFilter,
        *,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> list[Conversation]: ...

    async def claim(
        self, tenant_id: str, conversation_id: int, agent_id: str, now: datetime
    ) -> Conversation | None:
        """Take a waiting conversation; None when it was not waiting (someone won)."""

    async def assign(
        self, tenant_id: str, conversation_id: int, agent_id: str, now: datetime
    ) -> Conversation | None:
        """Give an open conversation to ``agent_id``; None when it is resolved."""

    async def resolve(
        self, tenant_id: str, conversation_id: int, agent_id: str, now: datetime
    ) -> Conversation | None:
        """Close an open conversation; None when it was already resolved."""

    async def record_reply(
        self, conversation: Conversation, entry: Entry, now: datetime
    ) -> Conversation:
        """Record an agent's message (or note) in the thread; a reply also marks the
        conversation's first response."""

    async def tag(
        self, tenant_id: str, conversation_id: int, add: Sequence[str], remove: Sequence[str]
    ) -> Conversation | None:
        """Add and remove tags (a set, sorted); None when there is no such conversation."""

    async def take_over(
        self, thread: Thread, agent_id: str, event_id: str, reason: str, now: datetime
    ) -> Conversation | None:
        """Open a conversation on the thread, held by ``agent_id``; None when the thread
        has an open one already."""

    async def open_conversation_of(self, tenant_id: str, thread_id: int) -> Conversation | None: ...

    async def wait_stats(self, tenant_id: str | None, now: datetime) -> WaitStats: ...

    async def longest_waits(self, now: datetime, limit: int) -> list[TenantWait]:
        """The ``limit`` tenants whose oldest unanswered hand-off is oldest, longest first."""


class Publisher(Protocol):
    async def send(self, command: OutboundCommand) -> None:
        """Publish an outbound command with a broker confirm."""

    async def resolved(self, event: HandoffResolved) -> None:
        """Tell the conversation service the hand-off is over (broker confirm)."""

    async def requested(self, event: HandoffRequested) -> None:
        """Tell the conversation service people take the conversation (broker confirm)."""


class Live(Protocol):
    def publish(self, tenant_id: str, event: dict[str, Any]) -> None: ...
