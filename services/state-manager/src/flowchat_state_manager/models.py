"""The state-manager's records, as plain data (no I/O, no framework)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flowchat_contracts import topology
from flowchat_state_manager.state import Status


@dataclass(frozen=True, slots=True)
class IncomingStatus:
    """One status for one message, normalized from a SendResult or a StatusUpdate."""

    status: Status
    provider_timestamp: datetime
    #: Raw event id; unique in the history (redeliveries of one event are duplicates).
    event_id: str
    error_code: int | None = None
    error_title: str | None = None
    error_details: str | None = None
    pricing_category: str | None = None
    #: The customer's ids when the status names them (``StatusUpdate.customer``): the
    #: one that is not the message's recipient is recorded as its alias.
    customer_wa_id: str | None = None
    customer_user_id: str | None = None
    #: When FlowChat first learned it (a held status: when it was held); None: now.
    sequence: int | None = None
    received_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewMessage:
    id: str
    tenant_id: str
    account_id: str
    idempotency_key: str
    recipient: str
    message_type: str
    category: str
    campaign_id: str | None
    correlation_id: str
    provider: str
    provider_message_id: str | None


class CustomerIds:
    """A message's recipient and its alias (``recipient_alias``), opened (decrypted, when
    the row is sealed) the first time either is read: a status applied to a sealed row
    decrypts them only when it builds an event or compares a customer's ids."""

    __slots__ = ("_ids", "_open", "has_alias")

    def __init__(
        self, opener: Callable[[], tuple[str | None, str | None]], *, has_alias: bool
    ) -> None:
        self._open: Callable[[], tuple[str | None, str | None]] | None = opener
        self._ids: tuple[str | None, str | None] = (None, None)
        #: Whether the message has an alias (known without opening: its column is set).
        self.has_alias = has_alias

    @classmethod
    def clear(cls, recipient: str | None, alias: str | None) -> CustomerIds:
        ids = cls(lambda: (recipient, alias), has_alias=alias is not None)
        ids.get()
        return ids

    def get(self) -> tuple[str | None, str | None]:
        """``(recipient, alias)``, opened now if they were not yet."""
        if self._open is not None:
            self._ids, self._open = self._open(), None
        return self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CustomerIds) and self.get() == other.get()

    def __hash__(self) -> int:
        return hash(self.get())

    def __repr__(self) -> str:
        return "CustomerIds(...)"  # customers' ids stay out of logs


@dataclass(frozen=True, slots=True)
class MessageRecord:
    id: str
    tenant_id: str
    account_id: str
    idempotency_key: str | None
    message_type: str | None
    category: str | None
    campaign_id: str | None
    correlation_id: str | None
    provider: str
    provider_message_id: str | None
    status: Status
    error_code: int | None
    error_title: str | None
    error_details: str | None
    pricing_category: str | None
    created_at: datetime
    updated_at: datetime
    #: The recipient and the customer's other id (:attr:`recipient_alias`).
    ids: CustomerIds

    @property
    def recipient(self) -> str | None:
        return self.ids.get()[0]

    @property
    def recipient_alias(self) -> str | None:
        """The customer's other id (a BSUID for a phone recipient, a phone number for a
        BSUID recipient), once a status named both."""
        return self.ids.get()[1]


@dataclass(frozen=True, slots=True)
class AtVersion:
    """What a write at a message's version did (``record_if_unchanged``): ``written``,
    with ``inserted`` (the status was new) and ``version`` the message's version now; or
    not, the message having moved on: ``row`` as the write found it (None: gone) at
    ``version``."""

    written: bool
    version: str | None
    inserted: bool = False
    row: MessageRecord | None = None


@dataclass(frozen=True, slots=True)
class PendingStatus:
    """A status held until its provider message id is mapped to a FlowChat message."""

    provider: str
    provider_message_id: str
    tenant_id: str
    account_id: str
    message_id: str | None
    correlation_id: str | None
    incoming: IncomingStatus


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    #: Position in the order FlowChat learned the message's statuses (the history's order).
    sequence: int
    status: Status
    provider_timestamp: datetime
    received_at: datetime
    error_code: int | None
    error_title: str | None
    error_details: str | None
    pricing_category: str | None


@dataclass(frozen=True, slots=True)
class MessageFilter:
    recipient: str | None = None
    status: Status | None = None
    since: datetime | None = None
    until: datetime | None = None
    campaign_id: str | None = None


@dataclass(frozen=True, slots=True)
class PageKey:
    """Keyset position: the last item of a page (newest first: created_at, then id)."""

    created_at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class Page:
    items: list[MessageRecord]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    event_id: str
    routing_key: str
    body: bytes


@dataclass(frozen=True, slots=True)
class StatusReaders:
    """Who reads status events right now, beyond the conversation service (which always
    takes a campaign message's statuses and any ``failed``): ``every`` — some queue takes
    every message's statuses (the inbox's history, or an operator's own subscriber);
    ``tenants`` — the tenants some enabled relay endpoint of which takes
    ``message.status``. A status change nobody reads is recorded but not published."""

    every: bool = True
    tenants: frozenset[str] = frozenset()

    def wants(self, tenant_id: str, status: str, *, campaign: bool) -> bool:
        if self.every or tenant_id in self.tenants:
            return True
        if status == "failed":
            return True  # opt-outs (131050), campaign pauses
        return campaign and status in topology.CONVERSATION_CAMPAIGN_STATUSES


#: What one partition of ``messages`` / ``message_events`` spans: a week from a Monday
#: 00:00 UTC (migration 0005's ``create_message_partitions``).
PARTITION_SPAN = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class PurgeResult:
    #: Rows deleted one by one (from the DEFAULT partition: records outside every day).
    messages: int
    pending: int
    #: Week partitions dropped (both tables), and their rows (PostgreSQL's estimate).
    partitions: int = 0
    partition_rows: int = 0
