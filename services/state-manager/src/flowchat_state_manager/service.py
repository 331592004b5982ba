"""Business logic of the state-manager's write side: apply statuses, purge.

Knows nothing of aio-pika, FastAPI or asyncpg: the consumer (through the batcher) and
the retention loop call in; a :class:`~flowchat_state_manager.ports.StateStore`
(passed in) does the SQL. The query side is :mod:`flowchat_state_manager.query_service`.

Publishing uses a transactional outbox: a status change writes its
:class:`MessageStatusChanged` to the ``outbox`` table in the same transaction as the
change itself, so a change is never committed without its event nor published
without its change. After the commit, ``on_events`` wakes the relay
(:mod:`flowchat_state_manager.relay`), which publishes with confirms and then
deletes the rows.

A status alone for a known message costs one statement when this replica wrote the
message last (:class:`Written`: the row as written and its version, young entries only):
the write still checks the version, and one that finds the row changed elsewhere writes
nothing and returns it as it is, to be written at that version (two statements).

Only a change somebody reads is published (:class:`~.models.StatusReaders`, asked of a
:class:`~.ports.StatusAudience` once per transaction): a campaign message's statuses and
any ``failed`` (the conversation service), and every status while some queue takes them
all (the inbox) or for a tenant whose relay endpoints take ``message.status``. The
others are recorded without an outbox row: no event, no publish, no consumer woken.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time

from flowchat_contracts import SendResult, StatusUpdate, topology
from flowchat_contracts.command_events import CommandParked
from flowchat_platform.retention import Purge, purge_in_batches
from flowchat_state_manager import metrics
from flowchat_state_manager.errors import RejectedEvent
from flowchat_state_manager.events import MessageStatusChanged
from flowchat_state_manager.models import (
    PARTITION_SPAN,
    CustomerIds,
    IncomingStatus,
    MessageRecord,
    NewMessage,
    OutboxItem,
    PendingStatus,
    PurgeResult,
    StatusReaders,
)
from flowchat_state_manager.ports import Recorder, StateStore, StatusAudience, StatusTransaction
from flowchat_state_manager.recipients import alias_for, stored_recipient
from flowchat_state_manager.state import RANK, Outcome, Status, transition

PENDING = "pending"

#: Messages locked by the current transaction, by (provider, provider message id).
_Rows = dict[tuple[str, str], MessageRecord]
REJECTED = "rejected"


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _wamid_key(provider: str, provider_message_id: str) -> str:
    return f"pmid:{provider}:{provider_message_id}"


def _message_key(message_id: str) -> str:
    return f"msg:{message_id}"


def _incoming(u: StatusUpdate) -> IncomingStatus:
    first = u.errors[0] if u.errors else None
    return IncomingStatus(
        status=Status(u.status),
        provider_timestamp=_aware(u.timestamp),
        event_id=u.event_id,
        error_code=first.code if first else None,
        error_title=(first.title or first.message or None) if first else None,
        error_details=(first.details or None) if first else None,
        pricing_category=u.pricing.category if u.pricing else None,
        customer_wa_id=u.customer.wa_id if u.customer else None,
        customer_user_id=u.customer.user_id if u.customer else None,
    )


class _Changed(Exception):
    """The message changed after it was read without a lock: nothing was written.
    ``now``: the message as the write found it, and its version (None: gone)."""

    def __init__(self, now: tuple[MessageRecord, str] | None) -> None:
        super().__init__()
        self.now = now


class _Unchanged:
    """A :class:`~.ports.Recorder` writing with ``record_if_unchanged`` (one statement,
    committed) at the message's ``version``; raises :class:`_Changed` when it moved on.
    ``version``: the message's version after the write."""

    def __init__(self, repo: StateStore, version: str) -> None:
        self._repo = repo
        self.version = version

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
    ) -> bool:
        written = await self._repo.record_if_unchanged(
            self.version,
            message_id,
            tenant_id,
            s,
            new_status=new_status,
            outbox=outbox,
            alias=alias,
            created_at=created_at,
        )
        if not written.written:
            now = written.row
            raise _Changed((now, written.version) if now and written.version else None)
        assert written.version is not None
        self.version = written.version
        return written.inserted


class Written:
    """The messages this replica wrote last, as written and at which version (``xmin``),
    by (provider, provider message id): the next status for one of them is written at
    that version without reading the row first (the write checks the version: an entry
    outdated by another writer costs the statement that finds the row changed, as a read
    first would). At most ``size`` entries, each kept ``ttl_s`` (a customer's ids stay no
    longer in memory); ``size`` 0 keeps none."""

    def __init__(
        self, size: int = 4096, ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.size = size
        self.ttl_s = ttl_s
        self._clock = clock
        self._rows: dict[tuple[str, str], tuple[float, MessageRecord, str]] = {}

    def put(self, row: MessageRecord, version: str) -> None:
        if not self.size or row.provider_message_id is None:
            return
        key = (row.provider, row.provider_message_id)
        self._rows.pop(key, None)  # to the end: the oldest entry leaves first
        self._rows[key] = (self._clock(), row, version)
        if len(self._rows) > self.size:
            del self._rows[next(iter(self._rows))]

    def created(self, rows: Iterable[MessageRecord], versions: dict[str, str]) -> None:
        """After a commit: the ``rows`` it created (by message id in ``versions``), each
        at its version (every write of one transaction leaves the row at that one)."""
        for row in rows:
            if row.id in versions:
                self.put(row, versions[row.id])

    def forget(self, events: Iterable[SendResult | StatusUpdate | CommandParked]) -> None:
        """Before a transaction that may change the messages of ``events``."""
        for e in events:
            if not isinstance(e, CommandParked) and e.provider_message_id:
                self._rows.pop((e.provider, e.provider_message_id), None)

    def take(self, key: tuple[str, str]) -> tuple[MessageRecord, str] | None:
        """The entry for ``key``, removed; None when there is none young enough."""
        entry = self._rows.pop(key, None)
        if entry is None or self._clock() - entry[0] > self.ttl_s:
            return None
        return entry[1], entry[2]

    def clear(self) -> None:
        self._rows.clear()

    def __len__(self) -> int:
        return len(self._rows)


@dataclass
class Handled:
    """What one queue message did: (status, outcome) pairs and whether events were written."""

    outcomes: list[tuple[str, str]] = field(default_factory=list)
    events: int = 0

    def add(self, status: Status, outcome: str) -> None:
        self.outcomes.append((status.value, outcome))


class StateService:
    """Applies send results and provider statuses to message records.

    :meth:`apply` handles one event in one transaction; :meth:`apply_batch` handles
    several in one transaction (batched writes), the caller acking them all after it.
    A status alone for a known message is written in one statement of its own instead
    (:meth:`_status_alone`: committed when it returns, as a transaction would be).
    """

    def __init__(
        self,
        repository: StateStore,
        *,
        on_events: Callable[[], None] | None = None,
        audience: StatusAudience | None = None,
        written: Written | None = None,
    ):
        self._repo = repository
        self._on_events = on_events or (lambda: None)
        #: None: every change is published (``StatusReaders()``: every reader present).
        self._audience = audience
        self.written = written if written is not None else Written()

    async def apply(self, event: SendResult | StatusUpdate | CommandParked) -> Handled:
        return (await self.apply_batch([event]))[0]

    async def apply_batch(
        self, events: Sequence[SendResult | StatusUpdate | CommandParked]
    ) -> list[Handled]:
        """Apply ``events`` in order in ONE transaction: all commit, or none (an error —
        a :class:`RejectedEvent` among them — rolls every one back)."""
        results = [Handled() for _ in events]
        readers = StatusReaders()
        if self._audience is not None:
            readers = await self._audience.readers({e.tenant_id for e in events})
        if len(events) == 1 and isinstance(events[0], StatusUpdate):
            alone = await self._status_alone(events[0], readers)
            if alone is not None:
                metrics.BATCH_SIZE.observe(1)
                self._done(alone)
                return [alone]
        self.written.forget(events)
        async with self._repo.transaction() as tx:
            # Rows locked by this transaction, as they are now (every change below updates
            # this map too): a batch locks its known messages in one query.
            rows: _Rows = {}
            keys = [
                (e.provider, e.provider_message_id) for e in events if e.kind == "status_update"
            ]
            if len(events) > 1 and keys:
                rows.update(await tx.lock_many_by_provider_ids(keys))
            for event, handled in zip(events, results, strict=True):
                if isinstance(event, SendResult):
                    await self._send_result(tx, rows, event, handled, readers)
                elif isinstance(event, CommandParked):
                    await self._parked(tx, event, handled, readers)
                else:
                    await self._status(tx, rows, event, handled, readers)
        self.written.created(rows.values(), tx.created)  # committed
        metrics.BATCH_SIZE.observe(len(events))
        for handled in results:
            self._done(handled)
        return results

    async def record_send_result(self, r: SendResult) -> Handled:
        return await self.apply(r)

    async def record_status(self, u: StatusUpdate) -> Handled:
        return await self.apply(u)

    # ------------------------------------------------------------ send results

    async def _send_result(
        self,
        tx: StatusTransaction,
        rows: _Rows,
        r: SendResult,
        handled: Handled,
        readers: StatusReaders,
    ) -> None:
        incoming = IncomingStatus(
            status=Status(r.status),
            provider_timestamp=_aware(r.occurred_at),
            event_id=f"send_result:{r.message_id}:{r.status}",
            error_code=r.error.code if r.error else None,
            error_title=(r.error.title or r.error.message or None) if r.error else None,
            error_details=(r.error.details or None) if r.error else None,
        )
        new = NewMessage(
            id=r.message_id,
            tenant_id=r.tenant_id,
            account_id=r.account_id,
            idempotency_key=r.idempotency_key,
            recipient=stored_recipient(r.to),
            message_type=r.message_type,
            category=r.category,
            campaign_id=r.campaign_id,
            correlation_id=r.correlation_id,
            provider=r.provider,
            provider_message_id=r.provider_message_id,
        )
        keys = [_message_key(r.message_id)]
        if r.provider_message_id:
            keys.append(_wamid_key(r.provider, r.provider_message_id))
        # Serialize with statuses being held for this WAMID right now (see record_status).
        await tx.lock_keys(keys)
        row = await tx.upsert_message(new)
        if row.tenant_id != r.tenant_id:
            raise RejectedEvent("message id belongs to another tenant", message_id=row.id)
        if r.provider_message_id and row.provider_message_id != r.provider_message_id:
            if row.provider_message_id is not None:
                raise RejectedEvent(
                    "message already mapped to another provider message id", message_id=row.id
                )
            await tx.set_provider_message_id(
                row.id, r.provider, r.provider_message_id, created_at=row.created_at
            )
            row = replace(row, provider=r.provider, provider_message_id=r.provider_message_id)
        row = await self._apply(tx, row, incoming, handled, readers)
        if r.provider_message_id and row.provider_message_id == r.provider_message_id:
            rows[(r.provider, r.provider_message_id)] = await self._drain(tx, row, handled, readers)

    async def _parked(
        self, tx: StatusTransaction, p: CommandParked, handled: Handled, readers: StatusReaders
    ) -> None:
        """The sender parked the command: the message is ``parked``, with the reason as
        its error title (the provider's last error, if any, as code and details)."""
        incoming = IncomingStatus(
            status=Status.PARKED,
            provider_timestamp=_aware(p.occurred_at),
            event_id=f"command_parked:{p.message_id}:{p.attempts}",
            error_code=p.error.code if p.error else None,
            error_title=p.reason,
            error_details=(p.error.message or p.error.title or None) if p.error else None,
        )
        new = NewMessage(
            id=p.message_id,
            tenant_id=p.tenant_id,
            account_id=p.account_id,
            idempotency_key=p.idempotency_key,
            recipient=stored_recipient(p.to),
            message_type=p.message_type,
            category=p.category,
            campaign_id=p.campaign_id,
            correlation_id=p.correlation_id,
            # as the sender's failed results name an account it could not look up
            provider=p.provider or "meta",
            provider_message_id=None,
        )
        await tx.lock_keys([_message_key(p.message_id)])
        row = await tx.upsert_message(new)
        if row.tenant_id != p.tenant_id:
            raise RejectedEvent("message id belongs to another tenant", message_id=row.id)
        await self._apply(tx, row, incoming, handled, readers)

    # ------------------------------------------------------------ provider statuses

    async def _status(
        self,
        tx: StatusTransaction,
        rows: _Rows,
        u: StatusUpdate,
        handled: Handled,
        readers: StatusReaders,
    ) -> None:
        incoming = _incoming(u)
        key = (u.provider, u.provider_message_id)
        row = rows.get(key) or await tx.lock_by_provider_id(*key)
        mapped_now = False
        if row is None:
            # Slow path: a send result may be mapping this WAMID right now; its advisory
            # lock makes us wait for its commit, so we see the row or it sees our hold.
            keys = [_wamid_key(u.provider, u.provider_message_id)]
            if u.message_id:
                keys.append(_message_key(u.message_id))
            await tx.lock_keys(keys)
            row = await tx.lock_by_provider_id(u.provider, u.provider_message_id)
        if row is None and u.message_id:
            # biz_opaque_callback_data echoed FlowChat's id: map the WAMID now.
            candidate = await tx.lock_by_id(u.message_id)
            if candidate is not None:
                self._check_owner(candidate, u)
                if candidate.provider_message_id is not None:
                    raise RejectedEvent(
                        "message already mapped to another provider message id",
                        message_id=candidate.id,
                    )
                await tx.set_provider_message_id(
                    candidate.id,
                    u.provider,
                    u.provider_message_id,
                    created_at=candidate.created_at,
                )
                row = replace(
                    candidate, provider=u.provider, provider_message_id=u.provider_message_id
                )
                mapped_now = True
        if row is None:
            held = await tx.hold(
                PendingStatus(
                    provider=u.provider,
                    provider_message_id=u.provider_message_id,
                    tenant_id=u.tenant_id,
                    account_id=u.account_id,
                    message_id=u.message_id,
                    correlation_id=u.correlation_id,
                    incoming=incoming,
                )
            )
            handled.add(incoming.status, PENDING if held else Outcome.DUPLICATE.value)
            return
        self._check_owner(row, u)
        row = await self._apply(tx, row, incoming, handled, readers)
        if mapped_now:
            row = await self._drain(tx, row, handled, readers)
        rows[key] = row

    async def _status_alone(self, u: StatusUpdate, readers: StatusReaders) -> Handled | None:
        """A status alone for a known message, in two round trips instead of four: the
        message read without a lock, then the write in one statement of its own that
        locks the row and applies only if it is still the version read (no BEGIN or
        COMMIT round trip); in one round trip when this replica wrote the message last
        (:class:`Written`). None when the message is not known yet (held, mapped) or
        changed in between: the caller applies it in a transaction, as any other."""
        key = (u.provider, u.provider_message_id)
        kept = self.written.take(key)
        if kept is not None:
            try:
                return await self._write_alone(u, readers, *kept)
            except _Changed as changed:  # written elsewhere since: as the write found it
                read = changed.now
        else:
            read = await self._repo.peek_by_provider_id(*key)
        if read is None:
            return None
        try:
            return await self._write_alone(u, readers, *read)
        except _Changed:
            return None

    async def _write_alone(
        self, u: StatusUpdate, readers: StatusReaders, row: MessageRecord, version: str
    ) -> Handled:
        """``u`` written at the message's ``version`` (``row``), the message kept as written;
        :class:`_Changed` when it moved on."""
        self._check_owner(row, u)
        handled = Handled()
        recorder = _Unchanged(self._repo, version)
        row = await self._apply(recorder, row, _incoming(u), handled, readers)
        self.written.put(row, recorder.version)
        return handled

    @staticmethod
    def _check_owner(row: MessageRecord, u: StatusUpdate) -> None:
        if row.tenant_id != u.tenant_id:
            raise RejectedEvent("status for another tenant's message", message_id=row.id)

    # ------------------------------------------------------------ shared steps

    async def _apply(
        self,
        tx: Recorder,
        row: MessageRecord,
        s: IncomingStatus,
        handled: Handled,
        readers: StatusReaders,
    ) -> MessageRecord:
        """Record ``s`` for the (locked) message ``row``; return the row as it is now (its
        event in the outbox when ``readers`` want it)."""
        t = transition(row.status, s.status, seen_before=False)
        if not t.recorded:
            handled.add(s.status, t.outcome.value)
            return row
        updated = row
        outbox = None
        campaign = row.campaign_id is not None
        if t.changed:
            # a failed or parked message says why
            failed = t.status in (Status.FAILED, Status.PARKED)
            # a parked message that moves on forgets why it was parked
            kept = (
                row
                if row.status is not Status.PARKED
                else replace(row, error_code=None, error_title=None, error_details=None)
            )
            updated = replace(
                row,
                status=t.status,
                error_code=s.error_code if failed else kept.error_code,
                error_title=s.error_title if failed else kept.error_title,
                error_details=s.error_details if failed else kept.error_details,
                pricing_category=s.pricing_category or row.pricing_category,
            )
            if readers.wants(row.tenant_id, t.status.value, campaign=campaign):
                event = MessageStatusChanged(
                    message_id=updated.id,
                    tenant_id=updated.tenant_id,
                    account_id=updated.account_id,
                    idempotency_key=updated.idempotency_key,
                    status=updated.status.value,
                    previous_status=row.status.value,
                    provider=updated.provider,
                    provider_message_id=updated.provider_message_id,
                    recipient=updated.recipient,
                    category=updated.category,
                    campaign_id=updated.campaign_id,
                    correlation_id=updated.correlation_id,
                    error_code=updated.error_code if failed else None,
                    error_title=updated.error_title if failed else None,
                    timestamp=s.provider_timestamp,
                )
                outbox = OutboxItem(
                    id=0,
                    event_id=event.event_id,
                    routing_key=topology.status_event_key(
                        updated.tenant_id, updated.account_id, event.status, campaign=campaign
                    ),
                    body=event.model_dump_json(exclude_none=True).encode(),
                )
        elif s.pricing_category and row.pricing_category is None:
            updated = replace(row, pricing_category=s.pricing_category)
        alias = None
        if not row.ids.has_alias and (s.customer_wa_id or s.customer_user_id):
            alias = alias_for(row.recipient, s.customer_wa_id, s.customer_user_id)
            if alias is not None:
                updated = replace(updated, ids=CustomerIds.clear(row.recipient, alias))
        inserted = await tx.record(
            row.id,
            row.tenant_id,
            s,
            new_status=t.status if t.changed else None,
            outbox=outbox,
            alias=alias,
            created_at=row.created_at,
        )
        if not inserted:  # this status (or this very event) is in the history already
            handled.add(s.status, Outcome.DUPLICATE.value)
            return row
        handled.add(s.status, t.outcome.value)
        if outbox is not None:
            handled.events += 1
        return updated

    async def _drain(
        self, tx: StatusTransaction, row: MessageRecord, handled: Handled, readers: StatusReaders
    ) -> MessageRecord:
        """Apply the statuses held for this message's provider id, oldest first."""
        assert row.provider_message_id is not None
        held = await tx.take_pending(row.provider, row.provider_message_id)
        held.sort(key=lambda p: (p.incoming.provider_timestamp, RANK[p.incoming.status]))
        for p in held:
            if p.tenant_id != row.tenant_id:
                handled.add(p.incoming.status, REJECTED)
                continue
            row = await self._apply(tx, row, p.incoming, handled, readers)
        return row

    def _done(self, handled: Handled) -> None:
        for status, outcome in handled.outcomes:
            metrics.STATUSES.labels(status, outcome).inc()
        if handled.events:
            self._on_events()

    # ------------------------------------------------------------ retention

    async def purge(
        self,
        *,
        retention_days: int,
        batch_size: int,
        now: datetime,
        days_ahead: int = 7,
        clock: Callable[[], float] = time.perf_counter,
    ) -> PurgeResult:
        """Retention: drop every week partition whose whole week is older than every
        tenant's retention (the default ``retention_days`` or a tenant's own, whichever
        is longest; each in its own short transaction); delete, one short batch at a
        time, the messages older than their tenant's retention in the DEFAULT partition
        and those of tenants keeping fewer days than the longest (in the weeks kept for
        the longest), and the old held statuses; and create the partitions up to
        ``days_ahead`` days from now."""
        cutoff = now - timedelta(days=retention_days)
        await self.create_partitions(now, days_ahead)

        async def purge_all(purge: Purge, what: str) -> int:
            return await purge_in_batches(
                purge, cutoff, batch_size, metrics.PURGED.labels(what).inc
            )

        longest = max(retention_days, await self._repo.longest_retention() or 0)

        async def purge_messages(c: datetime, b: int) -> int:
            return await self._repo.purge_messages(
                c, b, default_days=retention_days, longest_days=longest
            )

        metrics.RETENTION_LONGEST_SECONDS.set(longest * 86_400)
        drop_before = now - timedelta(days=longest)
        partitions = partition_rows = 0
        for first in await self._repo.partitions():
            if datetime.combine(first, dt_time(), UTC) + PARTITION_SPAN > drop_before:
                break  # oldest first: every later one is younger
            started = clock()
            rows = await self._repo.drop_partition(first)
            metrics.PARTITION_DROP_SECONDS.observe(clock() - started)
            metrics.PARTITIONS_DROPPED.inc()
            metrics.PARTITION_ROWS_DROPPED.inc(rows)
            partitions += 1
            partition_rows += rows
        messages = await purge_all(purge_messages, "messages")
        pending = await purge_all(self._repo.purge_pending, "pending_statuses")
        return PurgeResult(
            messages=messages,
            pending=pending,
            partitions=partitions,
            partition_rows=partition_rows,
        )

    async def create_partitions(self, now: datetime, days_ahead: int) -> int:
        """Create the partitions from today to ``days_ahead`` days ahead (UTC)."""
        today = now.astimezone(UTC).date()
        created = await self._repo.create_partitions(today, today + timedelta(days=days_ahead))
        metrics.PARTITIONS_CREATED.inc(created)
        return created

    async def refresh_gauges(self) -> None:
        metrics.PENDING.set(await self._repo.pending_count())
        metrics.OUTBOX_BACKLOG.set(await self._repo.outbox_count())
        metrics.PARTITIONS.set(len(await self._repo.partitions()))
        metrics.UNPARTITIONED.set(await self._repo.default_partition_count())
