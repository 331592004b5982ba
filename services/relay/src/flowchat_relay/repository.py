"""PostgreSQL adapter of the relay's stores (asyncpg).

Due deliveries are leased with ``FOR UPDATE SKIP LOCKED`` and a lease time
(``next_attempt_at`` moved past the attempt), so replicas share the work and a
delivery whose worker died is due again when its lease ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from flowchat_platform.crypto import SecretBox
from flowchat_platform.privacy import BlindIndex, is_sealed, privacy_index
from flowchat_platform.retention import TENANT_CUTOFF, TenantRetention
from flowchat_platform.sealing import batch_lock
from flowchat_relay.events import customer_ids
from flowchat_relay.ports import (
    Attempt,
    Claimed,
    CustomerEvent,
    Disabled,
    Endpoint,
    EndpointChanges,
    Outcome,
    StoredEvent,
)

#: Outcomes and leases commit without waiting for the disk (the ``fast`` pool's session
#: setting): a crash may lose the last few, which means a delivery made once more (at
#: least once) or a lease ended early; events themselves (save_event) are durable
#: before the broker ack.
NO_FSYNC = {"synchronous_commit": "off"}

_ENDPOINT_COLUMNS = (
    "id, tenant_id, url, description, event_types, format, enabled, disabled_reason, "
    "secret_enc, previous_secret_enc, previous_secret_until, created_at, updated_at"
)


#: Decrypted secrets remembered at most (then forgotten all at once).
_OPENED_MAX = 10_000


def _endpoint(row: asyncpg.Record | dict[str, Any], open_: Callable[[Any], str | None]) -> Endpoint:
    return Endpoint(
        id=row["id"],
        tenant_id=row["tenant_id"],
        url=row["url"],
        description=row["description"],
        event_types=tuple(row["event_types"]),
        format=row["format"],
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        secret=open_(row["secret_enc"]) or "",
        previous_secret=open_(row["previous_secret_enc"]),
        previous_secret_until=row["previous_secret_until"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _with_sequence(body: bytes, sequence: int | None) -> bytes:
    """The FlowChat body with its ``sequence`` set (the bytes stored and delivered)."""
    if sequence is None:
        return body
    event = orjson.loads(body)
    event["sequence"] = sequence
    return orjson.dumps(event)


def _count(status: str) -> int:
    return int(status.rsplit(maxsplit=1)[-1])


class Repository:
    """``box`` encrypts at rest the endpoints' signing secrets (``secret_enc``,
    ``previous_secret_enc``; the plain ``secret`` columns stay empty), the events' bodies
    (``body_enc``, ``meta_body_enc``) and the endpoints' answers in the delivery log
    (``response_enc``). ``index`` gives the keyed digests of the customers' ids
    (``events.customers``, ``conversation_sequences.conversation``): the platform's
    privacy key (``FLOWCHAT_PRIVACY_KEY``), derived from an empty token when not given
    (tests)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        box: SecretBox,
        *,
        fast: asyncpg.Pool | None = None,
        index: BlindIndex | None = None,
    ) -> None:
        self._pool = pool
        #: leases, outcomes and reads: a pool whose commits do not wait for the disk
        #: (``synchronous_commit=off``; see ``NO_FSYNC``), when given
        self._fast = fast or pool
        self._box = box
        self._index = index or privacy_index(None, None)
        self._opened: dict[bytes, str] = {}
        self._retention = TenantRetention(pool, "delivery_days")

    def _digests(self, tenant_id: str, ids: Sequence[str]) -> list[str]:
        return sorted({self._index.digest(tenant_id, i) for i in ids})

    def _body(self, token: bytes | None, clear: str | None) -> bytes | None:
        """An event's body: decrypted, else as stored before encryption."""
        if token is not None:
            return self._box.decrypt_bytes(token)
        return clear.encode() if clear is not None else None

    def _open(self, token: bytes | None) -> str | None:
        """Decrypt, remembering the answer (a token is one encryption of one secret:
        every lease and every event's subscribers read the same ones)."""
        if token is None:
            return None
        token = bytes(token)
        found = self._opened.get(token)
        if found is None:
            found = self._box.decrypt(token) or ""
            if len(self._opened) >= _OPENED_MAX:
                self._opened.clear()
            self._opened[token] = found
        return found

    def _endpoint(self, row: asyncpg.Record | dict[str, Any]) -> Endpoint:
        return _endpoint(row, self._open)

    def _open_response(self, token: bytes | None, clear: str) -> str:
        return (self._box.decrypt(token) or "") if token is not None else clear

    # ------------------------------------------------------------ erasure

    async def erase_customer(self, tenant_id: str, ids: Sequence[str]) -> dict[str, int]:
        """Delete the tenant's events naming the customer by any of ``ids`` (by their
        keyed digests; a row stored before encryption and not sealed yet: as a JSON
        string anywhere in its bodies), their deliveries and attempts, and the customer's
        conversation sequences; counts by kind."""
        digests = self._digests(tenant_id, ids)
        quoted = [f'%"{i}"%' for i in ids] + [f'%"+{i}"%' for i in ids if "." not in i]
        async with self._pool.acquire() as conn, conn.transaction():
            events = [
                r["id"]
                for r in await conn.fetch(
                    """
                    SELECT id FROM events WHERE tenant_id = $1
                      AND (customers && $3::text[]
                           OR (body IS NOT NULL
                               AND (body::text LIKE ANY($2::text[])
                                    OR coalesce(meta_body::text, '') LIKE ANY($2::text[]))))
                    FOR UPDATE
                    """,
                    tenant_id,
                    quoted,
                    digests,
                )
            ]
            attempts = await conn.execute(
                "DELETE FROM attempts WHERE event_id = ANY($1::text[])", events
            )
            deliveries = await conn.execute(
                "DELETE FROM deliveries WHERE event_id = ANY($1::text[])", events
            )
            deleted = await conn.execute("DELETE FROM events WHERE id = ANY($1::text[])", events)
            sequences = await conn.execute(
                "DELETE FROM conversation_sequences WHERE tenant_id = $1 "
                "AND conversation = ANY($2::text[])",
                tenant_id,
                [*ids, *digests],
            )
        return {
            "events_deleted": _count(deleted),
            "deliveries_deleted": _count(deliveries),
            "attempts_deleted": _count(attempts),
            "sequences_deleted": _count(sequences),
        }

    # ------------------------------------------------------------ export

    async def customer_events(
        self, tenant_id: str, digest: str, *, after: str | None, limit: int
    ) -> list[CustomerEvent]:
        """The tenant's events naming the customer whose id has ``digest``, by event id,
        with their bodies decrypted and their deliveries (each endpoint's status and
        attempts)."""
        rows = await self._pool.fetch(
            """
            SELECT e.id, e.type, e.account_id, e.created_at, e.body_enc, e.meta_body_enc,
                   e.body::text AS body, e.meta_body::text AS meta_body,
                   coalesce((SELECT jsonb_agg(jsonb_build_object(
                        'endpoint_id', d.endpoint_id, 'status', d.status,
                        'attempts', d.attempts, 'created_at', d.created_at,
                        'finished_at', d.finished_at) ORDER BY d.id)
                     FROM deliveries d WHERE d.event_id = e.id), '[]'::jsonb)::text AS deliveries
            FROM events e
            WHERE e.tenant_id = $1 AND e.customers @> ARRAY[$2::text]
              AND ($3::text IS NULL OR e.id > $3)
            ORDER BY e.id LIMIT $4
            """,
            tenant_id,
            digest,
            after,
            limit,
        )
        out: list[CustomerEvent] = []
        for r in rows:
            body = self._body(r["body_enc"], r["body"])
            meta = self._body(r["meta_body_enc"], r["meta_body"])
            out.append(
                CustomerEvent(
                    id=r["id"],
                    type=r["type"],
                    account_id=r["account_id"],
                    created_at=r["created_at"],
                    body=orjson.loads(body) if body is not None else None,
                    meta_body=orjson.loads(meta) if meta is not None else None,
                    deliveries=orjson.loads(r["deliveries"]),
                )
            )
        return out

    # ------------------------------------------------------------ encryption at rest

    async def seal_events(self, after: str, batch: int, *, rotate: bool) -> tuple[int, str | None]:
        """One batch of events after the id ``after``: those stored in clear before
        encryption sealed (bodies encrypted, the customers' digests set), and with
        ``rotate`` every token re-encrypted under the newest key; (rows changed, the last
        id seen, or None at the end). One short transaction; rows another replica holds
        are skipped (the next pass takes them)."""
        where = "" if rotate else "AND body IS NOT NULL"  # the partial index events_unsealed
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"""
                SELECT id, tenant_id, body::text AS body, meta_body::text AS meta_body,
                       body_enc, meta_body_enc
                FROM events WHERE id > $1 {where}
                ORDER BY id LIMIT $2 {batch_lock(rotate=rotate)}
                """,  # noqa: S608 - constants
                after,
                batch,
            )
            changed: list[tuple[Any, ...]] = []
            for r in rows:
                if r["body"] is not None:
                    digests = self._digests(r["tenant_id"], customer_ids(orjson.loads(r["body"])))
                    body_enc = self._box.encrypt(r["body"])
                    meta_enc = self._box.encrypt(r["meta_body"])
                elif r["body_enc"] is not None:
                    digests = None
                    body_enc = self._box.rotate(r["body_enc"])
                    meta_enc = self._box.rotate(r["meta_body_enc"])
                else:
                    continue
                changed.append((r["id"], body_enc, meta_enc, digests))
            await conn.executemany(
                """
                UPDATE events SET body_enc = $2, meta_body_enc = $3,
                    customers = coalesce($4::text[], customers), body = NULL, meta_body = NULL
                WHERE id = $1
                """,
                changed,
            )
        return len(changed), (rows[-1]["id"] if len(rows) == batch else None)

    async def seal_attempts(
        self, after: str, batch: int, *, rotate: bool
    ) -> tuple[int, str | None]:
        """:meth:`seal_events` for the delivery log's answers (``after``: an attempt id
        as text)."""
        async with self._pool.acquire() as conn, conn.transaction():
            # rows in clear: the partial index attempts_unsealed
            where = "(response <> '' OR response_enc IS NOT NULL)" if rotate else "response <> ''"
            rows = await conn.fetch(
                f"""
                SELECT id, response, response_enc FROM attempts
                WHERE id > $1::bigint AND {where}
                ORDER BY id LIMIT $2 {batch_lock(rotate=rotate)}
                """,  # noqa: S608 - constants
                int(after or 0),
                batch,
            )
            changed = [
                (
                    r["id"],
                    self._box.encrypt(r["response"])
                    if r["response"]
                    else self._box.rotate(r["response_enc"]),
                )
                for r in rows
            ]
            await conn.executemany(
                "UPDATE attempts SET response_enc = $2, response = '' WHERE id = $1", changed
            )
        return len(changed), (str(rows[-1]["id"]) if len(rows) == batch else None)

    async def seal_endpoints(
        self, after: str, batch: int, *, rotate: bool
    ) -> tuple[int, str | None]:
        """With ``rotate``, the endpoints' secrets re-encrypted under the newest key
        (those in clear are encrypted at start: :meth:`encrypt_clear_secrets`)."""
        if not rotate:
            return 0, None
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, secret_enc, previous_secret_enc FROM endpoints WHERE id > $1 "  # noqa: S608
                f"ORDER BY id LIMIT $2 {batch_lock(rotate=True)}",
                after,
                batch,
            )
            changed = [
                (
                    r["id"],
                    self._box.rotate(r["secret_enc"]),
                    self._box.rotate(r["previous_secret_enc"]),
                )
                for r in rows
            ]
            await conn.executemany(
                "UPDATE endpoints SET secret_enc = $2, previous_secret_enc = $3 WHERE id = $1",
                changed,
            )
        return len(changed), (rows[-1]["id"] if len(rows) == batch else None)

    async def seal_sequences(self) -> int:
        """The conversation counters keyed by a customer's id in clear (before migration
        0004) re-keyed by its digest, keeping the higher count: run at start, before the
        consumers, so a customer's ``sequence`` goes on where it was. Idempotent; the rows
        in clear are found through the partial index ``conversation_sequences_unsealed``
        (nothing read once none is left)."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT tenant_id, account_id, conversation, sequence FROM conversation_sequences "
                "WHERE conversation !~ '^[0-9a-f]{64}$' FOR UPDATE"
            )
            clear = [r for r in rows if not is_sealed(r["conversation"])]
            await conn.executemany(
                """
                INSERT INTO conversation_sequences AS s
                    (tenant_id, account_id, conversation, sequence)
                VALUES ($1, $2, $3, $4)
                ON CONFLICT (tenant_id, account_id, conversation)
                DO UPDATE SET sequence = greatest(s.sequence, EXCLUDED.sequence)
                """,
                [
                    (
                        r["tenant_id"],
                        r["account_id"],
                        self._index.digest(r["tenant_id"], r["conversation"]),
                        r["sequence"],
                    )
                    for r in clear
                ],
            )
            await conn.executemany(
                "DELETE FROM conversation_sequences "
                "WHERE tenant_id = $1 AND account_id = $2 AND conversation = $3",
                [(r["tenant_id"], r["account_id"], r["conversation"]) for r in clear],
            )
        return len(clear)

    # ------------------------------------------------------------ retention

    # A row's cutoff: ``$1`` (now - the default ``$3`` days) moved to now - its tenant's
    # days when the tenant chose its own (``tenant_retention``).
    _TENANT_CUTOFF = TENANT_CUTOFF.format(column="delivery_days")

    async def purge_attempts(self, cutoff: datetime, batch: int, default_days: int = 0) -> int:
        result = await self._pool.execute(
            f"""
            DELETE FROM attempts WHERE id IN (
                SELECT a.id FROM attempts a
                JOIN endpoints p ON p.id = a.endpoint_id
                LEFT JOIN tenant_retention r ON r.tenant_id = p.tenant_id
                WHERE a.at < {self._TENANT_CUTOFF}
                LIMIT $2 FOR UPDATE OF a SKIP LOCKED)
            """,  # noqa: S608
            cutoff,
            batch,
            default_days,
        )
        return int(result.split()[-1])

    async def purge_events(self, cutoff: datetime, batch: int, default_days: int = 0) -> int:
        result = await self._pool.execute(
            f"""
            DELETE FROM events WHERE id IN (
                SELECT e.id FROM events e
                LEFT JOIN tenant_retention r ON r.tenant_id = e.tenant_id
                WHERE e.created_at < {self._TENANT_CUTOFF}
                  AND NOT EXISTS (SELECT 1 FROM deliveries d
                                  WHERE d.event_id = e.id AND d.status = 'pending')
                LIMIT $2 FOR UPDATE OF e SKIP LOCKED)
            """,  # noqa: S608
            cutoff,
            batch,
            default_days,
        )
        return int(result.split()[-1])

    async def retention(self, tenant_id: str) -> int | None:
        return await self._retention.get(tenant_id)

    async def set_retention(self, tenant_id: str, days: int | None) -> None:
        await self._retention.set(tenant_id, days)

    async def encrypt_clear_secrets(self) -> int:
        """Encrypt the secrets of rows stored before they were encrypted (migration
        0002 leaves them in the plain columns, which it cannot encrypt without the key);
        how many rows. Idempotent: run at every start."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, secret, previous_secret FROM endpoints "
                "WHERE secret IS NOT NULL OR previous_secret IS NOT NULL FOR UPDATE"
            )
            await conn.executemany(
                "UPDATE endpoints SET secret_enc = coalesce($2, secret_enc), "
                "previous_secret_enc = coalesce($3, previous_secret_enc), "
                "secret = NULL, previous_secret = NULL WHERE id = $1",
                [
                    (
                        r["id"],
                        self._box.encrypt(r["secret"]),
                        self._box.encrypt(r["previous_secret"]),
                    )
                    for r in rows
                ],
            )
        return len(rows)

    # ------------------------------------------------------------- endpoints

    async def create_endpoint(self, endpoint: Endpoint) -> None:
        await self._pool.execute(
            f"INSERT INTO endpoints ({_ENDPOINT_COLUMNS}) "  # noqa: S608 - constant columns
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            endpoint.id,
            endpoint.tenant_id,
            endpoint.url,
            endpoint.description,
            list(endpoint.event_types),
            endpoint.format,
            endpoint.enabled,
            endpoint.disabled_reason,
            self._box.encrypt(endpoint.secret),
            self._box.encrypt(endpoint.previous_secret),
            endpoint.previous_secret_until,
            endpoint.created_at,
            endpoint.updated_at,
        )

    async def get_endpoint(self, tenant_id: str, endpoint_id: str) -> Endpoint | None:
        row = await self._pool.fetchrow(
            f"SELECT {_ENDPOINT_COLUMNS} FROM endpoints "  # noqa: S608 - constant columns
            "WHERE tenant_id = $1 AND id = $2",
            tenant_id,
            endpoint_id,
        )
        return self._endpoint(row) if row else None

    async def list_endpoints(
        self, tenant_id: str, *, after: str | None, limit: int
    ) -> list[Endpoint]:
        rows = await self._pool.fetch(
            f"SELECT {_ENDPOINT_COLUMNS} FROM endpoints "  # noqa: S608 - constant columns
            "WHERE tenant_id = $1 AND ($2::text IS NULL OR id > $2) ORDER BY id LIMIT $3",
            tenant_id,
            after,
            limit,
        )
        return [self._endpoint(r) for r in rows]

    async def update_endpoint(
        self, tenant_id: str, endpoint_id: str, changes: EndpointChanges
    ) -> Endpoint | None:
        row = await self._pool.fetchrow(
            f"""
            UPDATE endpoints SET
                url = coalesce($3, url),
                description = coalesce($4, description),
                event_types = coalesce($5, event_types),
                format = coalesce($6, format),
                enabled = coalesce($7, enabled),
                disabled_reason = CASE WHEN $7::boolean THEN NULL ELSE disabled_reason END,
                failing_since = CASE WHEN $7::boolean THEN NULL ELSE failing_since END,
                updated_at = now()
            WHERE tenant_id = $1 AND id = $2
            RETURNING {_ENDPOINT_COLUMNS}
            """,  # noqa: S608 - constant columns
            tenant_id,
            endpoint_id,
            changes.url,
            changes.description,
            list(changes.event_types) if changes.event_types is not None else None,
            changes.format,
            changes.enabled,
        )
        return self._endpoint(row) if row else None

    async def rotate_secret(
        self, tenant_id: str, endpoint_id: str, secret: str, previous_until: datetime
    ) -> Endpoint | None:
        row = await self._pool.fetchrow(
            f"""
            UPDATE endpoints SET previous_secret_enc = secret_enc, secret_enc = $3,
                previous_secret_until = $4, updated_at = now()
            WHERE tenant_id = $1 AND id = $2
            RETURNING {_ENDPOINT_COLUMNS}
            """,  # noqa: S608 - constant columns
            tenant_id,
            endpoint_id,
            self._box.encrypt(secret),
            previous_until,
        )
        return self._endpoint(row) if row else None

    async def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> bool:
        done = await self._pool.execute(
            "DELETE FROM endpoints WHERE tenant_id = $1 AND id = $2", tenant_id, endpoint_id
        )
        return bool(done.endswith(" 1"))

    async def subscribed(self, tenant_id: str, event_type: str) -> list[Endpoint]:
        rows = await self._fast.fetch(
            f"SELECT {_ENDPOINT_COLUMNS} FROM endpoints "  # noqa: S608 - constant columns
            "WHERE tenant_id = $1 AND enabled AND $2 = ANY(event_types)",
            tenant_id,
            event_type,
        )
        return [self._endpoint(r) for r in rows]

    async def subscribed_types(self, tenant_id: str) -> set[str]:
        rows = await self._pool.fetch(
            "SELECT DISTINCT unnest(event_types) AS t FROM endpoints "
            "WHERE tenant_id = $1 AND enabled",
            tenant_id,
        )
        return {r["t"] for r in rows}

    async def all_subscribed_types(self) -> dict[str, set[str]]:
        rows = await self._pool.fetch(
            "SELECT DISTINCT tenant_id, unnest(event_types) AS t FROM endpoints WHERE enabled"
        )
        out: dict[str, set[str]] = {}
        for r in rows:
            out.setdefault(r["tenant_id"], set()).add(r["t"])
        return out

    async def endpoint_ids(self) -> list[str]:
        return [r["id"] for r in await self._pool.fetch("SELECT id FROM endpoints")]

    # ------------------------------------------------------------ deliveries

    async def save_event(self, event: StoredEvent) -> bool:
        """Store the event and one pending delivery per endpoint, in one transaction;
        False when the event was stored before (a redelivered source)."""
        async with self._pool.acquire() as conn, conn.transaction():
            return await self._save(conn, event)

    async def save_events(self, events: list[StoredEvent]) -> list[bool]:
        """:meth:`save_event` for each, all in one transaction (one commit to wait for)."""
        async with self._pool.acquire() as conn, conn.transaction():
            return [await self._save(conn, event) for event in events]

    async def _save(self, conn: Any, event: StoredEvent) -> bool:
        if await conn.fetchval("SELECT 1 FROM events WHERE id = $1", event.id):
            return False
        sequence = None
        if event.conversation is not None:
            sequence = await conn.fetchval(
                """
                INSERT INTO conversation_sequences AS s
                    (tenant_id, account_id, conversation, sequence)
                VALUES ($1, $2, $3, 1)
                ON CONFLICT (tenant_id, account_id, conversation)
                DO UPDATE SET sequence = s.sequence + 1
                RETURNING sequence
                """,
                event.tenant_id,
                event.account_id,
                self._index.digest(event.tenant_id, event.conversation),
            )
        inserted = await conn.fetchval(
            """
            WITH ev AS (
                INSERT INTO events (id, type, tenant_id, account_id, body_enc, meta_body_enc,
                                    customers)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (id) DO NOTHING
                RETURNING id
            ), d AS (
                INSERT INTO deliveries (event_id, endpoint_id)
                SELECT ev.id, e FROM ev, unnest($8::text[]) AS e
                ON CONFLICT DO NOTHING
            )
            SELECT id FROM ev
            """,
            event.id,
            event.type,
            event.tenant_id,
            event.account_id,
            self._box.encrypt_bytes(_with_sequence(event.body, sequence)),
            self._box.encrypt_bytes(event.meta_body) if event.meta_body is not None else None,
            self._digests(event.tenant_id, event.customers),
            list(event.endpoint_ids),
        )
        return inserted is not None

    async def due_endpoints(self) -> list[str]:
        rows = await self._fast.fetch(
            """
            SELECT e.id AS endpoint_id FROM endpoints e
            WHERE e.enabled AND EXISTS (
                SELECT 1 FROM deliveries d
                WHERE d.endpoint_id = e.id AND d.status = 'pending' AND d.next_attempt_at <= now()
            )
            """
        )
        return [r["endpoint_id"] for r in rows]

    async def lease(self, endpoint_id: str, limit: int, lease_s: float) -> list[Claimed]:
        """Up to ``limit`` due deliveries of an enabled endpoint, oldest first, leased
        for ``lease_s`` (invisible to other workers until then): one statement."""
        rows = await self._fast.fetch(
            f"""
            WITH ep AS (
                SELECT {_ENDPOINT_COLUMNS} FROM endpoints WHERE id = $1 AND enabled
            ), next AS (
                SELECT d.id FROM deliveries d
                WHERE d.endpoint_id = $1 AND d.status = 'pending' AND d.next_attempt_at <= now()
                  AND EXISTS (SELECT 1 FROM ep)
                ORDER BY d.next_attempt_at, d.id
                LIMIT $3
                FOR UPDATE SKIP LOCKED
            ), leased AS (
                UPDATE deliveries d
                SET attempts = d.attempts + 1,
                    next_attempt_at = now() + make_interval(secs => $2)
                FROM next WHERE d.id = next.id
                RETURNING d.id, d.event_id, d.attempts, d.window_start
            )
            SELECT leased.id AS delivery_id, leased.event_id, leased.attempts,
                   leased.window_start, ev.type AS event_type,
                   CASE WHEN ep.format = 'meta' THEN ev.meta_body_enc
                        ELSE ev.body_enc END AS body_enc,
                   CASE WHEN ep.format = 'meta' THEN ev.meta_body::text
                        ELSE ev.body::text END AS body,
                   ep.*
            FROM leased JOIN events ev ON ev.id = leased.event_id CROSS JOIN ep
            ORDER BY leased.id
            """,  # noqa: S608 - constant columns
            endpoint_id,
            lease_s,
            limit,
        )
        if not rows:
            return []
        endpoint = self._endpoint(rows[0])
        return [
            Claimed(
                delivery_id=r["delivery_id"],
                endpoint=endpoint,
                event_id=r["event_id"],
                event_type=r["event_type"],
                attempt=r["attempts"],
                window_start=r["window_start"],
                body=self._body(r["body_enc"], r["body"]),
            )
            for r in rows
        ]

    async def record(self, outcomes: list[Outcome], *, disable_after_s: float) -> list[Disabled]:
        """Record a batch of attempts in one transaction (a statement per kind, whatever
        the batch's size): deliveries finished or rescheduled, the attempts logged, the
        endpoints' failing clocks moved. The endpoints disabled now, with the reason."""
        if not outcomes:
            return []
        delivered = [o for o in outcomes if o.delivered]
        failed = [o for o in outcomes if not o.delivered]
        succeeded = {o.claimed.endpoint.id for o in delivered}
        # per failing endpoint: disabled at once (410) or not; one that also delivered in
        # this batch is not failing everything (only a 410 still disables it)
        failing: dict[str, str | None] = {}
        for o in failed:
            eid = o.claimed.endpoint.id
            if eid in succeeded and o.disable is None:
                continue
            failing[eid] = o.disable or failing.get(eid)
        disabled: list[Disabled] = []
        async with self._fast.acquire() as conn, conn.transaction():
            if failing:
                # endpoint rows first, in id order: replicas' batches queue, never deadlock
                ids = sorted(failing)
                rows = await conn.fetch(
                    """
                    WITH input AS (
                        SELECT * FROM unnest($1::text[], $2::text[]) AS i(id, disable)
                    ), old AS MATERIALIZED (
                        SELECT e.id, e.enabled AS was FROM endpoints e JOIN input USING (id)
                        ORDER BY e.id FOR NO KEY UPDATE OF e
                    )
                    UPDATE endpoints e SET
                        failing_since = coalesce(e.failing_since, now()),
                        enabled = CASE
                            WHEN input.disable IS NOT NULL THEN false
                            WHEN now() - coalesce(e.failing_since, now())
                                 >= make_interval(secs => $3) THEN false
                            ELSE e.enabled END,
                        disabled_reason = CASE
                            WHEN input.disable IS NOT NULL THEN input.disable
                            WHEN now() - coalesce(e.failing_since, now())
                                 >= make_interval(secs => $3) THEN 'failing'
                            ELSE e.disabled_reason END
                    FROM input, old
                    WHERE e.id = input.id AND old.id = e.id
                    RETURNING e.id, now() AS at, CASE WHEN old.was AND NOT e.enabled
                                         THEN e.disabled_reason END AS reason
                    """,
                    ids,
                    [failing[i] for i in ids],
                    disable_after_s,
                )
                disabled = [
                    Disabled(r["id"], r["reason"], r["at"]) for r in rows if r["reason"] is not None
                ]
            if succeeded:
                await conn.execute(
                    "UPDATE endpoints SET failing_since = NULL "
                    "WHERE id = ANY($1::text[]) AND failing_since IS NOT NULL",
                    sorted(succeeded),
                )
            done = [o for o in outcomes if o.delivered or o.next_attempt_at is None]
            if done:
                await conn.execute(
                    """
                    UPDATE deliveries d SET status = u.status, finished_at = now()
                    FROM unnest($1::bigint[], $2::text[]) AS u(id, status)
                    WHERE d.id = u.id
                    """,
                    [o.claimed.delivery_id for o in done],
                    ["delivered" if o.delivered else "failed" for o in done],
                )
            later = [o for o in failed if o.next_attempt_at is not None]
            if later:
                await conn.execute(
                    """
                    UPDATE deliveries d SET next_attempt_at = u.at
                    FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, at)
                    WHERE d.id = u.id
                    """,
                    [o.claimed.delivery_id for o in later],
                    [o.next_attempt_at for o in later],
                )
            # endpoints (and their deliveries) deleted while an attempt ran: no log
            await conn.execute(
                """
                INSERT INTO attempts (delivery_id, endpoint_id, event_id, event_type, attempt,
                                      status_code, error, latency_ms, response_enc, outcome)
                SELECT u.* FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],
                                       $5::int[], $6::int[], $7::text[], $8::int[],
                                       $9::bytea[], $10::text[])
                    AS u(delivery_id, endpoint_id, event_id, event_type, attempt,
                         status_code, error, latency_ms, response_enc, outcome)
                WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.id = u.delivery_id)
                ORDER BY u.delivery_id
                """,
                [o.claimed.delivery_id for o in outcomes],
                [o.claimed.endpoint.id for o in outcomes],
                [o.claimed.event_id for o in outcomes],
                [o.claimed.event_type for o in outcomes],
                [o.claimed.attempt for o in outcomes],
                [o.result.status for o in outcomes],
                [o.result.error for o in outcomes],
                [round(o.result.latency_s * 1000) for o in outcomes],
                [
                    self._box.encrypt(o.result.response) if o.result.response else None
                    for o in outcomes
                ],
                [o.outcome for o in outcomes],
            )
        return disabled

    async def attempts(
        self, tenant_id: str, endpoint_id: str, *, before: int | None, limit: int
    ) -> list[Attempt]:
        rows = await self._pool.fetch(
            """
            SELECT a.* FROM attempts a JOIN endpoints e ON e.id = a.endpoint_id
            WHERE e.tenant_id = $1 AND a.endpoint_id = $2 AND ($3::bigint IS NULL OR a.id < $3)
            ORDER BY a.id DESC LIMIT $4
            """,
            tenant_id,
            endpoint_id,
            before,
            limit,
        )
        return [
            Attempt(
                id=r["id"],
                delivery_id=r["delivery_id"],
                event_id=r["event_id"],
                event_type=r["event_type"],
                attempt=r["attempt"],
                status_code=r["status_code"],
                error=r["error"],
                latency_ms=r["latency_ms"],
                response=self._open_response(r["response_enc"], r["response"]),
                outcome=r["outcome"],
                at=r["at"],
            )
            for r in rows
        ]

    async def replay_delivery(self, tenant_id: str, endpoint_id: str, delivery_id: int) -> bool:
        done = await self._pool.execute(
            """
            UPDATE deliveries d SET status = 'pending', next_attempt_at = now(),
                window_start = now(), finished_at = NULL
            FROM endpoints e
            WHERE d.id = $3 AND d.endpoint_id = $2 AND e.id = d.endpoint_id AND e.tenant_id = $1
            """,
            tenant_id,
            endpoint_id,
            delivery_id,
        )
        return bool(done.endswith(" 1"))

    async def replay_failed(self, tenant_id: str, endpoint_id: str, since: datetime) -> int:
        done = await self._pool.execute(
            """
            UPDATE deliveries d SET status = 'pending', next_attempt_at = now(),
                window_start = now(), finished_at = NULL
            FROM endpoints e
            WHERE d.endpoint_id = $2 AND e.id = d.endpoint_id AND e.tenant_id = $1
              AND d.status = 'failed' AND d.created_at >= $3
            """,
            tenant_id,
            endpoint_id,
            since,
        )
        return int(done.rsplit(" ", 1)[-1])

    async def oldest_pending(self) -> dict[str, float]:
        rows = await self._pool.fetch(
            """
            SELECT endpoint_id, extract(epoch FROM now() - min(created_at))::float8 AS age
            FROM deliveries WHERE status = 'pending' GROUP BY endpoint_id
            """
        )
        return {r["endpoint_id"]: float(r["age"]) for r in rows}
