"""PostgreSQL access of the state-manager (asyncpg; schema ``state_manager``): the
stores of :mod:`flowchat_state_manager.ports`, rows mapped to :mod:`.models` values here.

Status handling runs in :meth:`Repository.transaction`: one transaction per batch,
the message row locked with ``SELECT … FOR UPDATE`` so concurrent events for one
message serialize; or, for a status alone for a known message, an unlocked read
(:meth:`Repository.peek_by_provider_id`) and one self-committing statement that locks
the row and writes only while it is the version read
(:meth:`Repository.record_if_unchanged`). When a provider message id is not mapped yet, a
transaction-scoped advisory lock on it (and on the FlowChat message id) closes the
race between a send result mapping it and a status being held for it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from flowchat_platform.errors import StoreUnavailable
from flowchat_platform.privacy import IdentitySealer, is_sealed
from flowchat_platform.retention import TENANT_CUTOFF, TenantRetention
from flowchat_platform.sealing import SealingState, batch_lock
from flowchat_state_manager.errors import RejectedEvent
from flowchat_state_manager.models import (
    AtVersion,
    CustomerIds,
    HistoryEntry,
    IncomingStatus,
    MessageFilter,
    MessageRecord,
    NewMessage,
    OutboxItem,
    PageKey,
    PendingStatus,
)
from flowchat_state_manager.state import RANK, Status

_COLUMNS = (
    "id, tenant_id, account_id, idempotency_key, recipient, message_type, category, "
    "campaign_id, correlation_id, provider, provider_message_id, status, error_code, "
    "error_title, error_details, pricing_category, created_at, updated_at, recipient_alias, "
    "recipient_enc, recipient_alias_enc"
)

#: A message's cutoff under its tenant's retention (``tenant_retention r``).
_MESSAGE_CUTOFF = TENANT_CUTOFF.format(column="message_days")

_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
    # Transient conflicts between concurrent transactions: worth a retry, not a bug.
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)


def _record(row: asyncpg.Record, sealer: IdentitySealer | None = None) -> MessageRecord:
    """The message as the service knows it: with a ``sealer``, the recipient's ids are
    read from their Fernet tokens (the id columns hold keyed digests), when first used."""
    recipient, alias = row["recipient"], row["recipient_alias"]
    if sealer is None:
        ids = CustomerIds.clear(recipient, alias)
    else:
        tokens = row["recipient_enc"], row["recipient_alias_enc"]

        def opener() -> tuple[str | None, str | None]:
            return sealer.open(tokens[0], recipient), sealer.open(tokens[1], alias)

        ids = CustomerIds(opener, has_alias=alias is not None)
    return MessageRecord(
        id=row["id"],
        tenant_id=row["tenant_id"],
        account_id=row["account_id"],
        idempotency_key=row["idempotency_key"],
        message_type=row["message_type"],
        category=row["category"],
        campaign_id=row["campaign_id"],
        correlation_id=row["correlation_id"],
        provider=row["provider"],
        provider_message_id=row["provider_message_id"],
        status=Status(row["status"]),
        error_code=row["error_code"],
        error_title=row["error_title"],
        error_details=row["error_details"],
        pricing_category=row["pricing_category"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        ids=ids,
    )


async def _message(
    db: asyncpg.Pool | PoolConnectionProxy[asyncpg.Record],
    sealer: IdentitySealer | None,
    where: str,
    *args: Any,
) -> MessageRecord | None:
    """The one message ``where`` (with its ORDER BY / FOR UPDATE) selects, if any."""
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM messages WHERE {where}", *args)  # noqa: S608
    return _record(row, sealer) if row else None


def _incoming(row: asyncpg.Record | dict[str, Any]) -> IncomingStatus:
    return IncomingStatus(
        status=Status(row["status"]),
        provider_timestamp=row["provider_timestamp"],
        event_id=row["event_id"],
        error_code=row["error_code"],
        error_title=row["error_title"],
        error_details=row["error_details"],
        pricing_category=row["pricing_category"],
        customer_wa_id=row["customer_wa_id"],
        customer_user_id=row["customer_user_id"],
        sequence=row["sequence"],
        received_at=row["received_at"],
    )


def _pending(r: asyncpg.Record | dict[str, Any]) -> PendingStatus:
    return PendingStatus(
        provider=r["provider"],
        provider_message_id=r["provider_message_id"],
        tenant_id=r["tenant_id"],
        account_id=r["account_id"],
        message_id=r["message_id"],
        correlation_id=r["correlation_id"],
        incoming=_incoming(r),
    )


def _from_json(r: dict[str, Any]) -> dict[str, Any]:
    """A ``pending_statuses`` row as ``json_agg`` renders it, with its timestamps parsed."""
    for column in ("provider_timestamp", "received_at"):
        if r[column] is not None:
            r[column] = datetime.fromisoformat(r[column])
    return r


#: A message with an id column still in clear (neither a token beside it, nor a keyed
#: digest, nor a pseudonym: ``is_sealed``): the predicate of the partial index
#: ``messages_unsealed`` (migration 0008), written alike so the planner uses it.
_CLEAR = "!~ '^([0-9a-f]{64}$|erased:)'"
_UNSEALED = (
    f"(recipient_enc IS NULL AND recipient {_CLEAR}) "
    f"OR (recipient_alias_enc IS NULL AND recipient_alias {_CLEAR})"
)


def _sealed_columns(
    sealer: IdentitySealer, row: asyncpg.Record, *, rotate: bool
) -> tuple[str | None, bytes | None, str | None, bytes | None] | None:
    """A row's four id columns sealed (clear ids) or re-encrypted (``rotate``); None when
    nothing changes."""
    out: list[Any] = []
    changed = False
    for column in ("recipient", "recipient_alias"):
        stored, token = row[column], row[f"{column}_enc"]
        if token is not None:
            if rotate:
                token, changed = sealer.box.rotate(bytes(token)), True
        elif stored is not None and not is_sealed(stored):
            stored, token = sealer.seal(row["tenant_id"], stored)
            changed = True
        out += [stored, token]
    return (out[0], out[1], out[2], out[3]) if changed else None


#: The ``xmin`` of the rows this transaction writes (its id, as ``xmin::text`` reads it),
#: for the statement's result: a partitioned table returns no system column.
_XID = "(txid_current() % 4294967296)::text"

#: After the history row ``e``: the message moved and its event queued, only when ``e``
#: was inserted (both statements below).
_MOVE_AND_QUEUE = """    ), u AS (
        UPDATE messages SET
            status = CASE WHEN $10 THEN $11::text ELSE status END,
            status_rank = CASE WHEN $10 THEN $12::smallint ELSE status_rank END,
            error_code = CASE WHEN $10 AND $11::text IN ('failed', 'parked') THEN $5
                WHEN $10 AND status = 'parked' THEN NULL ELSE error_code END,
            error_title = CASE WHEN $10 AND $11::text IN ('failed', 'parked') THEN $6
                WHEN $10 AND status = 'parked' THEN NULL ELSE error_title END,
            error_details = CASE WHEN $10 AND $11::text IN ('failed', 'parked') THEN $7
                WHEN $10 AND status = 'parked' THEN NULL ELSE error_details END,
            pricing_category = COALESCE($8, pricing_category),
            recipient_alias_enc = CASE WHEN recipient_alias IS NULL THEN $20::bytea
                ELSE recipient_alias_enc END,
            recipient_alias = COALESCE(recipient_alias, $16::text),
            updated_at = CASE WHEN $10 THEN now() ELSE updated_at END
        WHERE id = $1 AND created_at = $19 AND EXISTS (SELECT 1 FROM e)
          AND ($10 OR ($8::text IS NOT NULL AND pricing_category IS NULL)
               OR ($16::text IS NOT NULL AND recipient_alias IS NULL))
        RETURNING 1
    ), o AS (
        INSERT INTO outbox (event_id, routing_key, body)
        SELECT $13::text, $14::text, $15::bytea
        WHERE $10 AND $13::text IS NOT NULL AND EXISTS (SELECT 1 FROM e)
        RETURNING 1
    )
"""

#: Append a status to the history; when it is new, move the message and queue its event
#: (:meth:`Tx.record`, inside the caller's transaction: the row locked already).
_RECORD = f"""    WITH e AS (
        INSERT INTO message_events (message_id, tenant_id, status, provider_timestamp,
            error_code, error_title, error_details, pricing_category, event_id,
            sequence, received_at, message_created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
            COALESCE($17::bigint, nextval('status_learned_seq')),
            COALESCE($18::timestamptz, now()), $19::timestamptz)
        ON CONFLICT DO NOTHING
        RETURNING 1
{_MOVE_AND_QUEUE}    SELECT count(*) FROM e  -- u and o run to completion anyway (PostgreSQL docs)
"""  # noqa: S608 - constant fragments

#: :data:`_RECORD` as a statement of its own (its own implicit transaction), for a message
#: read without a lock: it locks the row and writes only when the row is still the
#: version read (``xmin`` $21, which every UPDATE of the row changes); ``locked`` 0 when
#: it is not (nothing written: then the row as it is, ``c``, with its version);
#: ``moved``, the row's new version when it was updated.
_RECORD_IF_UNCHANGED = f"""    WITH g AS (
        SELECT 1 FROM messages
        WHERE id = $1 AND created_at = $19 AND xmin::text = $21
        FOR UPDATE
    ), e AS (
        INSERT INTO message_events (message_id, tenant_id, status, provider_timestamp,
            error_code, error_title, error_details, pricing_category, event_id,
            sequence, received_at, message_created_at)
        SELECT $1::text, $2::text, $3::text, $4::timestamptz, $5::integer, $6::text,
            $7::text, $8::text, $9::text,
            COALESCE($17::bigint, nextval('status_learned_seq')),
            COALESCE($18::timestamptz, now()), $19::timestamptz
        WHERE EXISTS (SELECT 1 FROM g)
        ON CONFLICT DO NOTHING
        RETURNING 1
{_MOVE_AND_QUEUE}    SELECT (SELECT count(*) FROM g) AS locked,
        (SELECT count(*) FROM e) AS inserted,
        CASE WHEN EXISTS (SELECT 1 FROM u) THEN {_XID} END AS moved, c.*
    FROM (SELECT 1) AS one LEFT JOIN LATERAL (
        SELECT {_COLUMNS}, xmin::text AS version FROM messages
        WHERE id = $1 AND created_at = $19 AND NOT EXISTS (SELECT 1 FROM g)
    ) AS c ON true
"""  # noqa: S608 - constant fragments


def _seal(
    sealer: IdentitySealer | None, tenant_id: str, customer_id: str | None
) -> tuple[str | None, bytes | None]:
    """A customer's id as stored: its keyed digest and Fernet token (clear without a sealer)."""
    if sealer is None:
        return customer_id, None
    return sealer.seal(tenant_id, customer_id)


def _record_args(
    sealer: IdentitySealer | None,
    message_id: str,
    tenant_id: str,
    s: IncomingStatus,
    new_status: Status | None,
    outbox: OutboxItem | None,
    alias: str | None,
    created_at: datetime,
) -> tuple[Any, ...]:
    """The parameters of :data:`_RECORD` / :data:`_RECORD_IF_UNCHANGED` ($1 to $20)."""
    changed = new_status is not None
    alias, alias_enc = _seal(sealer, tenant_id, alias)
    return (
        message_id,
        tenant_id,
        s.status.value,
        s.provider_timestamp,
        s.error_code,
        s.error_title,
        s.error_details,
        s.pricing_category,
        s.event_id,
        changed,
        new_status.value if new_status is not None else None,
        RANK[new_status] if new_status is not None else None,
        outbox.event_id if outbox else None,
        outbox.routing_key if outbox else None,
        outbox.body if outbox else None,
        alias,
        s.sequence,
        s.received_at,
        created_at,
        alias_enc,
    )


class Tx:
    """The operations of one status transaction (one connection, one transaction)."""

    def __init__(
        self, conn: PoolConnectionProxy[asyncpg.Record], sealer: IdentitySealer | None = None
    ) -> None:
        self._conn = conn
        self._sealer = sealer
        #: Statuses held for a provider id, deleted by the statement that created its
        #: message (:meth:`upsert_message`), until :meth:`take_pending` asks for them.
        self._taken: dict[tuple[str, str], list[PendingStatus]] = {}
        #: Message id → the version (``xmin``) of the message this transaction created.
        self.created: dict[str, str] = {}

    def _seal(self, tenant_id: str, customer_id: str | None) -> tuple[str | None, bytes | None]:
        return _seal(self._sealer, tenant_id, customer_id)

    async def lock_keys(self, keys: Sequence[str]) -> None:
        """Transaction-scoped advisory locks, always taken in sorted order (no deadlock)."""
        await self._conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) AS k",
            sorted(set(keys)),
        )

    async def lock_by_provider_id(
        self, provider: str, provider_message_id: str
    ) -> MessageRecord | None:
        return await _message(
            self._conn,
            self._sealer,
            "provider = $1 AND provider_message_id = $2 FOR UPDATE",
            provider,
            provider_message_id,
        )

    async def lock_many_by_provider_ids(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], MessageRecord]:
        """Lock every known message of a batch in one query (in id order: no deadlock)."""
        rows = await self._conn.fetch(
            f"SELECT {_COLUMNS} FROM messages WHERE provider_message_id = ANY($1::text[]) "  # noqa: S608
            "ORDER BY id FOR UPDATE",
            sorted({k[1] for k in keys}),
        )
        wanted = set(keys)
        found = {}
        for row in rows:
            record = _record(row, self._sealer)
            key = (record.provider, record.provider_message_id or "")
            if key in wanted:
                found[key] = record
        return found

    async def lock_by_id(self, message_id: str) -> MessageRecord | None:
        return await _message(self._conn, self._sealer, "id = $1 FOR UPDATE", message_id)

    async def upsert_message(self, m: NewMessage) -> MessageRecord:
        """Create the record (status ``queued``) unless it exists; return it, row-locked.

        The caller holds the advisory locks on the id and on the provider message id
        (``lock_keys``): with partitions no unique index spans the table, so an id
        (and a WAMID) stays unique by looking it up under those locks first."""
        recipient, recipient_enc = self._seal(m.tenant_id, m.recipient)
        # one statement: the message locked if it exists (x), else inserted (m) with the
        # claim of its provider message id (claim_provider_id: no row when another
        # message has it) and the statuses held for it taken (take_pending): it runs
        # after lock_keys, so it sees every message and status stored before
        row = await self._conn.fetchrow(
            f"""
            WITH x AS (
                SELECT {_COLUMNS} FROM messages WHERE id = $1::text FOR UPDATE
            ), m AS (
                INSERT INTO messages (id, tenant_id, account_id, idempotency_key, recipient,
                    message_type, category, campaign_id, correlation_id, provider,
                    provider_message_id, status, status_rank, recipient_enc)
                SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text,
                    $8::text, $9::text, $10::text, $11::text, $12::text, $13::smallint,
                    $14::bytea
                WHERE NOT EXISTS (SELECT 1 FROM x) AND ($11::text IS NULL OR NOT EXISTS (
                    SELECT 1 FROM messages
                    WHERE provider_message_id = $11::text AND provider = $10::text
                      AND id <> $1::text))
                RETURNING {_COLUMNS}
            ), d AS (
                DELETE FROM pending_statuses
                WHERE provider = $10::text AND provider_message_id = $11::text
                  AND EXISTS (SELECT 1 FROM m)
                RETURNING *
            )
            SELECT m.*, (SELECT json_agg(d) FROM d)::text AS taken, {_XID} AS version FROM m
            UNION ALL
            SELECT x.*, NULL, NULL FROM x
            """,  # noqa: S608
            m.id,
            m.tenant_id,
            m.account_id,
            m.idempotency_key,
            recipient,
            m.message_type,
            m.category,
            m.campaign_id,
            m.correlation_id,
            m.provider,
            m.provider_message_id,
            Status.QUEUED.value,
            RANK[Status.QUEUED],
            recipient_enc,
        )
        if row is None:
            raise RejectedEvent(
                f"provider message id {m.provider_message_id} belongs to another message",
                message_id=m.id,
            )
        if row["version"] is None:  # it existed
            return _record(row, self._sealer)
        if m.provider_message_id is not None:
            self._taken[(m.provider, m.provider_message_id)] = [
                _pending(_from_json(p)) for p in json.loads(row["taken"] or "[]")
            ]
        # every later write of this transaction keeps it: the version once committed
        self.created[m.id] = row["version"]
        return _record(row, self._sealer)

    async def claim_provider_id(
        self, message_id: str, provider: str, provider_message_id: str
    ) -> None:
        """Refuse a provider message id another message has (the caller holds its
        advisory lock: what the dropped UNIQUE (provider, provider_message_id) did)."""
        other = await self._conn.fetchval(
            "SELECT id FROM messages WHERE provider_message_id = $2 AND provider = $1 "
            "AND id <> $3 LIMIT 1",
            provider,
            provider_message_id,
            message_id,
        )
        if other is not None:
            raise RejectedEvent(
                f"provider message id {provider_message_id} belongs to another message",
                message_id=message_id,
            )

    async def set_provider_message_id(
        self, message_id: str, provider: str, provider_message_id: str, *, created_at: datetime
    ) -> None:
        await self.claim_provider_id(message_id, provider, provider_message_id)
        await self._conn.execute(
            "UPDATE messages SET provider = $2, provider_message_id = $3, updated_at = now() "
            "WHERE id = $1 AND created_at = $4",
            message_id,
            provider,
            provider_message_id,
            created_at,
        )

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
        """In one statement: append ``s`` to the history and, only when it was not there
        yet, move the message to ``new_status`` (None: keep it; fill a missing pricing
        category or recipient ``alias``) and queue the ``outbox`` event (None: a change nobody
        reads, recorded without one). False when ``s`` is
        a duplicate."""
        value = await self._conn.fetchval(
            _RECORD,
            *_record_args(
                self._sealer, message_id, tenant_id, s, new_status, outbox, alias, created_at
            ),
        )
        return bool(value)

    async def hold(self, p: PendingStatus) -> bool:
        """Keep a status for an unmapped provider id; False when already held."""
        s = p.incoming
        result = await self._conn.execute(
            """
            INSERT INTO pending_statuses (provider, provider_message_id, tenant_id, account_id,
                message_id, correlation_id, status, provider_timestamp, error_code, error_title,
                error_details, pricing_category, event_id, customer_wa_id, customer_user_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
            ON CONFLICT DO NOTHING
            """,
            p.provider,
            p.provider_message_id,
            p.tenant_id,
            p.account_id,
            p.message_id,
            p.correlation_id,
            s.status.value,
            s.provider_timestamp,
            s.error_code,
            s.error_title,
            s.error_details,
            s.pricing_category,
            s.event_id,
            s.customer_wa_id,
            s.customer_user_id,
        )
        return result.endswith(" 1")

    async def take_pending(self, provider: str, provider_message_id: str) -> list[PendingStatus]:
        """Delete and return the statuses held for this provider id (taken already, with
        no round trip, when :meth:`upsert_message` created the message with it)."""
        taken = self._taken.pop((provider, provider_message_id), None)
        if taken is not None:
            return taken
        rows = await self._conn.fetch(
            "DELETE FROM pending_statuses WHERE provider = $1 AND provider_message_id = $2 "
            "RETURNING *",
            provider,
            provider_message_id,
        )
        return [_pending(r) for r in rows]


class Repository:
    """``sealer``: customers' ids encrypted at rest (``recipient`` / ``recipient_alias``
    hold keyed digests, ``recipient_enc`` / ``recipient_alias_enc`` Fernet tokens); None:
    stored in clear (tests of other concerns)."""

    def __init__(self, pool: asyncpg.Pool, sealer: IdentitySealer | None = None) -> None:
        self._pool = pool
        self._sealer = sealer
        self._retention = TenantRetention(pool, "message_days")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                yield Tx(conn, self._sealer)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(repr(exc), store="database") from exc

    async def peek_by_provider_id(
        self, provider: str, provider_message_id: str
    ) -> tuple[MessageRecord, str] | None:
        """The message with this provider id as it is now, read without a lock, and its
        version (for :meth:`record_if_unchanged`)."""
        try:
            row = await self._pool.fetchrow(
                f"SELECT {_COLUMNS}, xmin::text AS version FROM messages "  # noqa: S608
                "WHERE provider = $1 AND provider_message_id = $2",
                provider,
                provider_message_id,
            )
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(repr(exc), store="database") from exc
        return (_record(row, self._sealer), row["version"]) if row else None

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
        """:meth:`Tx.record` in one statement of its own (one round trip, committed when
        it returns), for a message read by :meth:`peek_by_provider_id`: it locks the row
        and writes only while the row is still at ``version``. Written: as
        :meth:`Tx.record`, and the row's version now; else nothing written, and the row
        as the statement found it (to decide again and write at its version)."""
        try:
            row = await self._pool.fetchrow(
                _RECORD_IF_UNCHANGED,
                *_record_args(
                    self._sealer, message_id, tenant_id, s, new_status, outbox, alias, created_at
                ),
                version,
            )
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(repr(exc), store="database") from exc
        assert row is not None
        if not row["locked"]:
            found = _record(row, self._sealer) if row["id"] is not None else None
            return AtVersion(written=False, version=row["version"], row=found)
        return AtVersion(
            written=True, version=row["moved"] or version, inserted=row["inserted"] > 0
        )

    async def ping(self) -> bool:
        async with self._pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT true"))

    # ------------------------------------------------------------ queries (tenant-scoped)

    async def get(self, tenant_id: str, message_id: str) -> MessageRecord | None:
        return await _message(
            self._pool, self._sealer, "tenant_id = $1 AND id = $2", tenant_id, message_id
        )

    async def by_provider_id(
        self, tenant_id: str, provider_message_id: str
    ) -> MessageRecord | None:
        return await _message(
            self._pool,
            self._sealer,
            "provider_message_id = $2 AND tenant_id = $1 ORDER BY created_at DESC LIMIT 1",
            tenant_id,
            provider_message_id,
        )

    async def by_idempotency_key(self, tenant_id: str, key: str) -> MessageRecord | None:
        return await _message(
            self._pool,
            self._sealer,
            "tenant_id = $1 AND idempotency_key = $2 ORDER BY created_at DESC, id DESC LIMIT 1",
            tenant_id,
            key,
        )

    async def list_messages(
        self, tenant_id: str, f: MessageFilter, after: PageKey | None, limit: int
    ) -> list[MessageRecord]:
        where = ["tenant_id = $1"]
        args: list[Any] = [tenant_id]

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if f.recipient is not None:
            # either id of the customer: the one the send used, or the one a status told;
            # by its digest (sealed rows) or as it is (rows stored before encryption)
            forms = [f.recipient]
            if self._sealer is not None:
                forms.append(self._sealer.digest(tenant_id, f.recipient))
            value = arg(forms)
            where.append(
                f"(recipient = ANY({value}::text[]) OR recipient_alias = ANY({value}::text[]))"
            )
        if f.status is not None:
            where.append(f"status = {arg(f.status.value)}")
        if f.campaign_id is not None:
            where.append(f"campaign_id = {arg(f.campaign_id)}")
        if f.since is not None:
            where.append(f"created_at >= {arg(f.since)}")
        if f.until is not None:
            where.append(f"created_at < {arg(f.until)}")
        if after is not None:
            where.append(f"(created_at, id) < ({arg(after.created_at)}, {arg(after.id)})")
        sql = (
            f"SELECT {_COLUMNS} FROM messages WHERE {' AND '.join(where)} "  # noqa: S608
            f"ORDER BY created_at DESC, id DESC LIMIT {arg(limit)}"
        )
        return [_record(r, self._sealer) for r in await self._pool.fetch(sql, *args)]

    async def history(
        self, tenant_id: str, message_id: str, *, after: int, limit: int
    ) -> list[HistoryEntry]:
        """Up to ``limit`` of the message's statuses learned after ``sequence`` ``after``,
        in the order FlowChat learned them."""
        rows = await self._pool.fetch(
            """
            SELECT sequence, status, provider_timestamp, received_at, error_code, error_title,
                   error_details, pricing_category
            FROM message_events
            WHERE tenant_id = $1 AND message_id = $2 AND sequence > $3
            ORDER BY sequence LIMIT $4
            """,
            tenant_id,
            message_id,
            after,
            limit,
        )
        return [
            HistoryEntry(
                sequence=r["sequence"],
                status=Status(r["status"]),
                provider_timestamp=r["provider_timestamp"],
                received_at=r["received_at"],
                error_code=r["error_code"],
                error_title=r["error_title"],
                error_details=r["error_details"],
                pricing_category=r["pricing_category"],
            )
            for r in rows
        ]

    async def count_by_status(
        self,
        tenant_id: str,
        *,
        campaign_id: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> dict[Status, int]:
        rows = await self._pool.fetch(
            """
            SELECT status, count(*) AS n FROM messages
            WHERE tenant_id = $1
              AND ($2::text IS NULL OR campaign_id = $2)
              AND ($3::timestamptz IS NULL OR created_at >= $3)
              AND ($4::timestamptz IS NULL OR created_at < $4)
            GROUP BY status
            """,
            tenant_id,
            campaign_id,
            since,
            until,
        )
        return {Status(r["status"]): int(r["n"]) for r in rows}

    # ------------------------------------------------------------ outbox

    @asynccontextmanager
    async def outbox_batch(self, limit: int) -> AsyncIterator[list[OutboxItem]]:
        """Lock up to ``limit`` unsent events; they are deleted when the block succeeds."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, event_id, routing_key, body FROM outbox ORDER BY id LIMIT $1 "
                "FOR UPDATE SKIP LOCKED",
                limit,
            )
            items = [OutboxItem(r["id"], r["event_id"], r["routing_key"], r["body"]) for r in rows]
            yield items
            if items:
                await conn.execute(
                    "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [i.id for i in items]
                )

    # ------------------------------------------------------------ encryption at rest

    async def seal_batch(self, after: str, batch: int, *, rotate: bool) -> tuple[int, str | None]:
        """Seal (or, ``rotate``: re-encrypt under the newest key) one batch of messages
        after id ``after`` in id order; ``(rows changed, last id seen)`` (None: done)."""
        sealer = self._sealer
        if sealer is None:
            return 0, None
        # sealing only: the rows still in clear, through the partial index that holds
        # them alone (migration 0008; empty once all are sealed: a probe per partition)
        only = "" if rotate else f" AND ({_UNSEALED})"
        sql = (
            "SELECT id, tenant_id, recipient, recipient_alias, recipient_enc, "  # noqa: S608
            f"recipient_alias_enc FROM messages WHERE id > $1{only} ORDER BY id LIMIT $2 "
            f"{batch_lock(rotate=rotate)}"
        )
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(sql, after, batch)
            changes = []
            for r in rows:
                new = _sealed_columns(sealer, r, rotate=rotate)
                if new is not None:
                    changes.append((r["id"], *new))
            if changes:
                await conn.executemany(
                    "UPDATE messages SET recipient = $2, recipient_enc = $3, "
                    "recipient_alias = $4, recipient_alias_enc = $5 WHERE id = $1",
                    changes,
                )
        return len(changes), (rows[-1]["id"] if len(rows) == batch else None)

    async def rotation_recorded(self) -> bool:
        """Whether a rotation pass re-encrypted every message under the newest key."""
        if self._sealer is None:
            return False
        return await SealingState(self._pool).rotated("messages", self._sealer.box.key_id)

    async def record_rotation(self) -> None:
        """Every message re-encrypted under the newest key (a rotation pass finished)."""
        if self._sealer is None:
            return
        await SealingState(self._pool).record_rotated("messages", self._sealer.box.key_id)

    # ------------------------------------------------------------ erasure

    async def erase_recipient(
        self, tenant_id: str, ids: list[str], pseudonym: str
    ) -> dict[str, int]:
        """The customer's messages keep their history under ``pseudonym`` (no other id);
        pending statuses forget the customer's ids; counts by kind."""
        forms = list(ids)
        if self._sealer is not None:
            forms += [self._sealer.digest(tenant_id, i) for i in ids]
        async with self._pool.acquire() as conn, conn.transaction():
            messages = await conn.execute(
                """
                UPDATE messages SET recipient = $3, recipient_alias = NULL,
                    recipient_enc = NULL, recipient_alias_enc = NULL
                WHERE tenant_id = $1
                  AND (recipient = ANY($2::text[]) OR recipient_alias = ANY($2::text[]))
                """,
                tenant_id,
                forms,
                pseudonym,
            )
            pending = await conn.execute(
                """
                UPDATE pending_statuses SET customer_wa_id = NULL, customer_user_id = NULL
                WHERE tenant_id = $1 AND (customer_wa_id = ANY($2::text[])
                                          OR customer_user_id = ANY($2::text[]))
                """,
                tenant_id,
                ids,
            )
        return {
            "messages_pseudonymised": int(messages.split()[-1]),
            "pending_statuses_cleared": int(pending.split()[-1]),
        }

    # ------------------------------------------------------------ retention and gauges

    async def purge_messages(
        self, cutoff: datetime, batch: int, default_days: int, longest_days: int
    ) -> int:
        """Delete one batch of messages older than their tenant's retention (``cutoff``:
        now - the default ``default_days``; a tenant's own days in ``tenant_retention``),
        with their history: those in the DEFAULT partition, and those of tenants keeping
        fewer days than ``longest_days`` wherever they are. The rest go with their whole
        week (:meth:`drop_partition`), once it is older than ``longest_days``."""
        deleted = await self._pool.fetchval(
            f"""
            WITH doomed AS (
                SELECT m.id, m.created_at FROM messages m
                LEFT JOIN tenant_retention r ON r.tenant_id = m.tenant_id
                WHERE m.created_at < greatest($1::timestamptz, $1::timestamptz + make_interval(
                        days => $3::int - (SELECT coalesce(min(message_days), $3::int)
                                           FROM tenant_retention)))
                  AND m.created_at < {_MESSAGE_CUTOFF}
                  AND (m.tableoid = 'messages_default'::regclass
                       OR coalesce(r.message_days, $3::int) < $4::int)
                LIMIT $2 FOR UPDATE OF m SKIP LOCKED
            ), m AS (
                DELETE FROM messages x USING doomed d
                WHERE x.id = d.id AND x.created_at = d.created_at
                RETURNING x.id
            ), e AS (
                DELETE FROM message_events WHERE message_id IN (SELECT id FROM m)
            )
            SELECT count(*) FROM m
            """,  # noqa: S608 - a constant expression
            cutoff,
            batch,
            default_days,
            longest_days,
        )
        return int(deleted)

    async def retention(self, tenant_id: str) -> int | None:
        """The tenant's own retention of message records in days (None: the default)."""
        return await self._retention.get(tenant_id)

    async def set_retention(self, tenant_id: str, days: int | None) -> None:
        await self._retention.set(tenant_id, days)

    async def longest_retention(self) -> int | None:
        """The most days any tenant keeps its records (None: every tenant has the default)."""
        return await self._retention.longest()

    async def create_partitions(self, first: date, last: date) -> int:
        """Create the missing week partitions that cover ``first`` to ``last``."""
        return int(
            await self._pool.fetchval("SELECT create_message_partitions($1, $2)", first, last)
        )

    async def partitions(self) -> list[date]:
        """The first day (a Monday) of every partition of ``messages``, oldest first."""
        rows = await self._pool.fetch(
            """
            SELECT substr(c.relname, 11) AS day FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'messages'::regclass AND c.relname ~ '^messages_p[0-9]{8}$'
            ORDER BY 1
            """
        )
        return [datetime.strptime(r["day"], "%Y%m%d").date() for r in rows]

    async def drop_partition(self, day: date, lock_timeout_s: float = 5.0) -> int:
        """Detach and drop the partition from ``day`` of both tables in one transaction;
        the messages it held (PostgreSQL's estimate). Waits at most ``lock_timeout_s``
        for the brief ACCESS EXCLUSIVE locks (never queues every writer behind it)."""
        suffix = day.strftime("%Y%m%d")
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
            rows = await conn.fetchval(
                "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass($1)",
                f"messages_p{suffix}",
            )
            for table in ("message_events", "messages"):
                part = f"{table}_p{suffix}"
                await conn.execute(f"ALTER TABLE {table} DETACH PARTITION {part}")
                await conn.execute(f"DROP TABLE {part}")
        return int(rows or 0)

    async def default_partition_count(self) -> int:
        return int(await self._pool.fetchval("SELECT count(*) FROM messages_default"))

    async def purge_pending(self, cutoff: datetime, batch: int) -> int:
        result = await self._pool.execute(
            """
            DELETE FROM pending_statuses WHERE id IN (
                SELECT id FROM pending_statuses WHERE received_at < $1 LIMIT $2
                FOR UPDATE SKIP LOCKED)
            """,
            cutoff,
            batch,
        )
        return int(result.split()[-1])

    async def pending_count(self) -> int:
        return int(await self._pool.fetchval("SELECT count(*) FROM pending_statuses"))

    async def outbox_count(self) -> int:
        return int(await self._pool.fetchval("SELECT count(*) FROM outbox"))
