"""PostgreSQL adapter of the relay's stores (asyncpg).

Due deliveries are leased with ``FOR UPDATE SKIP LOCKED`` and a lease time
(``next_attempt_at`` moved past the attempt), so replicas share the work and a
delivery whose worker died is due again when its lease ends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from flowchat_relay.ports import (
    Attempt,
    Claimed,
    Endpoint,
    EndpointChanges,
    PostResult,
    StoredEvent,
)

#: Outcomes and leases commit without waiting for the disk: a crash may lose the last
#: few, which means a delivery made once more (at least once) or a lease ended early;
#: events themselves (save_event) are durable before the broker ack.
_NO_FSYNC = "SET LOCAL synchronous_commit = off"

_ENDPOINT_COLUMNS = (
    "id, tenant_id, url, description, event_types, format, enabled, disabled_reason, "
    "secret, previous_secret, previous_secret_until, created_at, updated_at"
)


def _endpoint(row: asyncpg.Record | dict[str, Any]) -> Endpoint:
    return Endpoint(
        id=row["id"],
        tenant_id=row["tenant_id"],
        url=row["url"],
        description=row["description"],
        event_types=tuple(row["event_types"]),
        format=row["format"],
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        secret=row["secret"],
        previous_secret=row["previous_secret"],
        previous_secret_until=row["previous_secret_until"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class Repository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

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
            endpoint.secret,
            endpoint.previous_secret,
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
        return _endpoint(row) if row else None

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
        return [_endpoint(r) for r in rows]

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
        return _endpoint(row) if row else None

    async def rotate_secret(
        self, tenant_id: str, endpoint_id: str, secret: str, previous_until: datetime
    ) -> Endpoint | None:
        row = await self._pool.fetchrow(
            f"""
            UPDATE endpoints SET previous_secret = secret, secret = $3,
                previous_secret_until = $4, updated_at = now()
            WHERE tenant_id = $1 AND id = $2
            RETURNING {_ENDPOINT_COLUMNS}
            """,  # noqa: S608 - constant columns
            tenant_id,
            endpoint_id,
            secret,
            previous_until,
        )
        return _endpoint(row) if row else None

    async def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> bool:
        done = await self._pool.execute(
            "DELETE FROM endpoints WHERE tenant_id = $1 AND id = $2", tenant_id, endpoint_id
        )
        return bool(done.endswith(" 1"))

    async def subscribed(self, tenant_id: str, event_type: str) -> list[Endpoint]:
        rows = await self._pool.fetch(
            f"SELECT {_ENDPOINT_COLUMNS} FROM endpoints "  # noqa: S608 - constant columns
            "WHERE tenant_id = $1 AND enabled AND $2 = ANY(event_types)",
            tenant_id,
            event_type,
        )
        return [_endpoint(r) for r in rows]

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
                    event.conversation,
                )
            inserted = await conn.fetchval(
                """
                INSERT INTO events (id, type, tenant_id, account_id, body, meta_body)
                VALUES ($1, $2, $3, $4,
                        CASE WHEN $6::bigint IS NULL THEN $5::jsonb
                             ELSE jsonb_set($5::jsonb, '{sequence}', to_jsonb($6::bigint)) END,
                        $7::jsonb)
                ON CONFLICT (id) DO NOTHING
                RETURNING id
                """,
                event.id,
                event.type,
                event.tenant_id,
                event.account_id,
                event.body.decode(),
                sequence,
                event.meta_body.decode() if event.meta_body is not None else None,
            )
            if inserted is None:
                return False
            await conn.executemany(
                "INSERT INTO deliveries (event_id, endpoint_id) VALUES ($1, $2) "
                "ON CONFLICT DO NOTHING",
                [(event.id, e) for e in event.endpoint_ids],
            )
            return True

    async def due_endpoints(self) -> list[str]:
        rows = await self._pool.fetch(
            """
            SELECT DISTINCT d.endpoint_id FROM deliveries d
            JOIN endpoints e ON e.id = d.endpoint_id
            WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND e.enabled
            """
        )
        return [r["endpoint_id"] for r in rows]

    async def claim(self, endpoint_id: str, lease_s: float) -> Claimed | None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_NO_FSYNC)
            row = await conn.fetchrow(
                f"""
                WITH next AS (
                    SELECT d.id FROM deliveries d
                    WHERE d.endpoint_id = $1 AND d.status = 'pending' AND d.next_attempt_at <= now()
                    ORDER BY d.next_attempt_at, d.id
                    LIMIT 1
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
                       CASE WHEN e.format = 'meta' THEN ev.meta_body::text
                            ELSE ev.body::text END AS body,
                       {", ".join("e." + c.strip() for c in _ENDPOINT_COLUMNS.split(","))}
                FROM leased
                JOIN events ev ON ev.id = leased.event_id
                JOIN endpoints e ON e.id = $1 AND e.enabled
                """,  # noqa: S608 - constant columns
                endpoint_id,
                lease_s,
            )
        if row is None or row["body"] is None:
            return None
        return Claimed(
            delivery_id=row["delivery_id"],
            endpoint=_endpoint(row),
            event_id=row["event_id"],
            event_type=row["event_type"],
            attempt=row["attempts"],
            window_start=row["window_start"],
            body=row["body"].encode(),
        )

    async def _log(self, conn: Any, claimed: Claimed, result: PostResult, outcome: str) -> None:
        await conn.execute(
            """
            INSERT INTO attempts (delivery_id, endpoint_id, event_id, event_type, attempt,
                                  status_code, error, latency_ms, response, outcome)
            SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
            WHERE EXISTS (SELECT 1 FROM deliveries WHERE id = $1)
            """,  # the endpoint (and its deliveries) deleted while this attempt ran: no log
            claimed.delivery_id,
            claimed.endpoint.id,
            claimed.event_id,
            claimed.event_type,
            claimed.attempt,
            result.status,
            result.error,
            round(result.latency_s * 1000),
            result.response.replace("\x00", ""),
            outcome,
        )

    async def delivered(self, claimed: Claimed, result: PostResult) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_NO_FSYNC)
            await conn.execute(
                "UPDATE deliveries SET status = 'delivered', finished_at = now() WHERE id = $1",
                claimed.delivery_id,
            )
            await conn.execute(
                "UPDATE endpoints SET failing_since = NULL "
                "WHERE id = $1 AND failing_since IS NOT NULL",
                claimed.endpoint.id,
            )
            await self._log(conn, claimed, result, "delivered")

    async def failed_attempt(
        self,
        claimed: Claimed,
        result: PostResult,
        *,
        outcome: str,
        next_attempt_at: datetime | None,
        disable: str | None,
        disable_after_s: float,
    ) -> str | None:
        """Record a failed attempt; the reason the endpoint was disabled now, if it was."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_NO_FSYNC)
            # the endpoint row first: lanes of one endpoint queue here, never deadlock
            reason = await conn.fetchval(
                """
                UPDATE endpoints e SET
                    failing_since = coalesce(e.failing_since, now()),
                    enabled = CASE
                        WHEN $2::text IS NOT NULL THEN false
                        WHEN now() - coalesce(e.failing_since, now())
                             >= make_interval(secs => $3) THEN false
                        ELSE e.enabled END,
                    disabled_reason = CASE
                        WHEN $2::text IS NOT NULL THEN $2
                        WHEN now() - coalesce(e.failing_since, now())
                             >= make_interval(secs => $3) THEN 'failing'
                        ELSE e.disabled_reason END
                FROM (SELECT enabled AS was FROM endpoints WHERE id = $1 FOR NO KEY UPDATE) old
                WHERE e.id = $1
                RETURNING CASE WHEN old.was AND NOT e.enabled THEN e.disabled_reason END
                """,
                claimed.endpoint.id,
                disable,
                disable_after_s,
            )
            if next_attempt_at is None:
                await conn.execute(
                    "UPDATE deliveries SET status = 'failed', finished_at = now() WHERE id = $1",
                    claimed.delivery_id,
                )
            else:
                await conn.execute(
                    "UPDATE deliveries SET next_attempt_at = $2 WHERE id = $1",
                    claimed.delivery_id,
                    next_attempt_at,
                )
            await self._log(conn, claimed, result, outcome)
            return str(reason) if reason is not None else None

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
                response=r["response"],
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
