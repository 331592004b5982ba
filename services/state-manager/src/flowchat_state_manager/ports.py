"""The seams of the state-manager's core (pure Protocols; :mod:`.repository` implements them).

- :class:`StatusTransaction` — the operations of one status transaction (rows locked);
- :class:`StateStore` — opens those transactions (or records one status in one statement,
  optimistically), purges, counts (the write side);
- :class:`QueryStore` — tenant-scoped reads (the query API);
- :class:`OutboxStore` — the transactional outbox the relay drains;
- :class:`StatusAudience` — who reads status events now (:mod:`.audience`).

A store that cannot reach the database raises
:class:`flowchat_platform.errors.StoreUnavailable` from :meth:`StateStore.transaction`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime
from typing import Protocol

from flowchat_state_manager.models import (
    AtVersion,
    HistoryEntry,
    IncomingStatus,
    MessageFilter,
    MessageRecord,
    NewMessage,
    OutboxItem,
    PageKey,
    PendingStatus,
    StatusReaders,
)
from flowchat_state_manager.state import Status


class Recorder(Protocol):
    """Where a status is recorded: a :class:`StatusTransaction`, or one statement."""

    async def record(
        self,
        message_id: str,
        tenant_id: str,
        s: IncomingStatus,
        *,
        new_status: Status | None,
        outbox: OutboxItem | None,
        alias: str | None = None,
        created_at: datetime,
    ) -> bool: ...


class StatusTransaction(Recorder, Protocol):
    #: Message id → the version of each message this transaction created (its
    #: ``upsert_message`` inserted it): the message's version once committed.
    created: dict[str, str]

    async def lock_keys(self, keys: Sequence[str]) -> None: ...

    async def lock_by_provider_id(
        self, provider: str, provider_message_id: str
    ) -> MessageRecord | None: ...

    async def lock_many_by_provider_ids(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], MessageRecord]: ...

    async def lock_by_id(self, message_id: str) -> MessageRecord | None: ...

    async def upsert_message(self, m: NewMessage) -> MessageRecord: ...

    async def set_provider_message_id(
        self, message_id: str, provider: str, provider_message_id: str, *, created_at: datetime
    ) -> None: ...

    async def hold(self, p: PendingStatus) -> bool: ...

    async def take_pending(
        self, provider: str, provider_message_id: str
    ) -> list[PendingStatus]: ...


class StateStore(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[StatusTransaction]: ...

    async def peek_by_provider_id(
        self, provider: str, provider_message_id: str
    ) -> tuple[MessageRecord, str] | None:
        """The message as it is now (no lock) and its version."""
        ...

    async def record_if_unchanged(
        self,
        version: str,
        message_id: str,
        tenant_id: str,
        s: IncomingStatus,
        *,
        new_status: Status | None,
        outbox: OutboxItem | None,
        alias: str | None = None,
        created_at: datetime,
    ) -> AtVersion:
        """``record`` in one statement, committed, while the message is still at
        ``version``: whether the status was new, and the message's version now; when it
        is not at ``version``, nothing written and the message as it is."""
        ...

    async def purge_messages(
        self, cutoff: datetime, batch: int, default_days: int, longest_days: int
    ) -> int: ...

    async def longest_retention(self) -> int | None: ...

    async def create_partitions(self, first: date, last: date) -> int: ...

    async def partitions(self) -> list[date]: ...

    async def drop_partition(self, day: date) -> int: ...

    async def default_partition_count(self) -> int: ...

    async def purge_pending(self, cutoff: datetime, batch: int) -> int: ...

    async def pending_count(self) -> int: ...

    async def outbox_count(self) -> int: ...


class RetentionStore(Protocol):
    """The tenants' own retention of message records (``GET/PUT /v1/retention``)."""

    async def retention(self, tenant_id: str) -> int | None: ...

    async def set_retention(self, tenant_id: str, days: int | None) -> None: ...


class QueryStore(Protocol):
    async def get(self, tenant_id: str, message_id: str) -> MessageRecord | None: ...

    async def by_provider_id(
        self, tenant_id: str, provider_message_id: str
    ) -> MessageRecord | None: ...

    async def by_idempotency_key(self, tenant_id: str, key: str) -> MessageRecord | None: ...

    async def list_messages(
        self, tenant_id: str, f: MessageFilter, after: PageKey | None, limit: int
    ) -> list[MessageRecord]: ...

    async def history(
        self, tenant_id: str, message_id: str, *, after: int, limit: int
    ) -> list[HistoryEntry]: ...

    async def count_by_status(
        self,
        tenant_id: str,
        *,
        campaign_id: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> dict[Status, int]: ...


class OutboxStore(Protocol):
    def outbox_batch(self, limit: int) -> AbstractAsyncContextManager[list[OutboxItem]]: ...


class StatusAudience(Protocol):
    """Who reads status events now, for the tenants of a batch (cached by the adapter:
    called once per write transaction, before it opens)."""

    async def readers(self, tenant_ids: Collection[str]) -> StatusReaders: ...
