"""PostgreSQL side of erasure (asyncpg): ``erasures``, ``erasure_reports``,
``suppressions`` and the customer's rows in the commerce and outreach tables.

The customer's rows are found by their stored forms (:mod:`flowchat_conversation.sealing`):
the keyed digests of the ids, and the ids themselves for rows not sealed yet."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from flowchat_conversation.privacy.ports import ErasedHere, ErasureRecord
from flowchat_conversation.sealing import Identities
from flowchat_platform.privacy import is_sealed

#: ``(table, token column, column it stands for)``: what an export shows decrypted.
_SEALED_COLUMNS = (
    ("contacts", "name_enc", "name"),
    ("customer_aliases", "alias_enc", "alias"),
    ("orders", "delivery_address_enc", "delivery_address"),
    ("campaign_recipients", "components_enc", "components"),
)


class PrivacyRepository:
    def __init__(self, pool: asyncpg.Pool, ids: Identities) -> None:
        self._pool = pool
        self._ids = ids

    def _stored(self, tenant_id: str, ids: Sequence[str]) -> list[str]:
        """The forms the ids may be stored in: digests, and in clear (not sealed yet)."""
        return sorted({*ids, *(self._ids.key(tenant_id, i) for i in ids if not is_sealed(i))})

    async def linked_ids(self, tenant_id: str, customer_id: str) -> list[str]:
        """Every id (in clear) linked to the customer ``customer_id`` names."""
        rows = await self._pool.fetch(
            """
            WITH k AS (
                SELECT customer_key FROM customer_aliases
                WHERE tenant_id = $1 AND alias = ANY($2::text[])
                UNION SELECT unnest($2::text[])
            )
            SELECT alias AS id, alias_enc AS enc FROM customer_aliases
            WHERE tenant_id = $1 AND customer_key IN (SELECT customer_key FROM k)
            """,
            tenant_id,
            self._stored(tenant_id, [customer_id]),
        )
        found = {self._ids.open(r["enc"], r["id"]) for r in rows}
        return sorted(i for i in found if i is not None and not is_sealed(i))

    async def record_request(
        self,
        request_id: str,
        tenant_id: str,
        requested_by: str | None,
        services: Sequence[str],
    ) -> ErasureRecord:
        await self._pool.execute(
            """
            INSERT INTO erasures (request_id, tenant_id, requested_by, services)
            VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO NOTHING
            """,
            request_id,
            tenant_id,
            requested_by,
            list(services),
        )
        record = await self.get(tenant_id, request_id)
        assert record is not None
        return record

    async def get(self, tenant_id: str, request_id: str) -> ErasureRecord | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM erasures WHERE tenant_id = $1 AND request_id = $2",
            tenant_id,
            request_id,
        )
        if row is None:
            return None
        reports = await self._pool.fetch(
            "SELECT service, actions, completed_at FROM erasure_reports WHERE request_id = $1",
            request_id,
        )
        return ErasureRecord(
            request_id=row["request_id"],
            tenant_id=row["tenant_id"],
            requested_at=row["requested_at"],
            requested_by=row["requested_by"],
            services=tuple(row["services"]),
            reports={
                r["service"]: (orjson.loads(r["actions"]), r["completed_at"]) for r in reports
            },
        )

    async def record_report(
        self,
        request_id: str,
        tenant_id: str,
        service: str,
        actions: Mapping[str, int],
        completed_at: datetime,
    ) -> None:
        await self._pool.execute(
            """
            INSERT INTO erasure_reports (request_id, tenant_id, service, actions, completed_at)
            VALUES ($1, $2, $3, $4::jsonb, $5) ON CONFLICT (request_id, service) DO NOTHING
            """,
            request_id,
            tenant_id,
            service,
            orjson.dumps(dict(actions)).decode(),
            completed_at,
        )

    async def erase(
        self,
        tenant_id: str,
        request_id: str,
        ids: Sequence[str],
        digests: Mapping[str, str],
        pseudonym: str,
    ) -> ErasedHere:
        clear = list(ids)
        ids = self._stored(tenant_id, clear)
        async with self._pool.acquire() as conn, conn.transaction():
            opted_out = bool(
                await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM contacts WHERE tenant_id = $1 "
                    "AND customer_wa_id = ANY($2::text[]) AND NOT marketing_opt_in)",
                    tenant_id,
                    ids,
                )
            )
            reason = "opted_out" if opted_out else "erased"
            suppressed = await conn.fetch(
                """
                INSERT INTO suppressions (tenant_id, digest, reason, request_id)
                SELECT $1, d, $2, $3 FROM unnest($4::text[]) AS d
                ON CONFLICT (tenant_id, digest) DO NOTHING RETURNING 1
                """,
                tenant_id,
                reason,
                request_id,
                list(digests.values()),
            )
            actions = {"suppression_entries": len(suppressed)}

            async def run(name: str, sql: str, *args: object) -> None:
                status = await conn.execute(sql, tenant_id, ids, *args)
                actions[name] = int(status.rsplit(" ", 1)[-1])

            await run(
                "orders_pseudonymised",
                "UPDATE orders SET customer_wa_id = $3, customer_payment_ref = NULL, "
                "delivery_address = NULL, delivery_address_enc = NULL "
                "WHERE tenant_id = $1 AND customer_wa_id = ANY($2::text[])",
                pseudonym,
            )
            await run(
                "campaign_sends_pseudonymised",
                "UPDATE campaign_recipients SET wa_id = $3, components = NULL, "
                "components_enc = NULL "
                "WHERE tenant_id = $1 AND wa_id = ANY($2::text[])",
                pseudonym,
            )
            await run(
                "contacts_deleted",
                "DELETE FROM contacts WHERE tenant_id = $1 AND customer_wa_id = ANY($2::text[])",
            )
            await run(
                "aliases_deleted",
                "DELETE FROM customer_aliases WHERE tenant_id = $1 "
                "AND (alias = ANY($2::text[]) OR customer_key = ANY($2::text[]))",
            )
            await run(
                "handoffs_deleted",
                "DELETE FROM handoffs WHERE tenant_id = $1 AND customer_wa_id = ANY($2::text[])",
            )
            await run(
                "reminders_deleted",
                "DELETE FROM reminders WHERE tenant_id = $1 AND wa_id = ANY($2::text[])",
            )
            await run(
                "handled_messages_deleted",
                "DELETE FROM handled_messages WHERE tenant_id = $1 "
                "AND split_part(conversation, ':', 3) = ANY($2::text[])",
            )
        return ErasedHere(ids=tuple(clear), opted_out=opted_out, actions=actions)

    async def customer_data(self, tenant_id: str, ids: Sequence[str]) -> dict[str, list[Any]]:
        """Every row of this service about the customer ``ids`` name, by table (JSON-ready
        values; an order's lines, invoice, payments and events with it). Ids, names and
        addresses decrypted; stored keys shown as stored (digests)."""
        ids = self._stored(tenant_id, ids)

        async def rows(sql: str, *args: object) -> list[Any]:
            return [orjson.loads(r[0]) for r in await self._pool.fetch(sql, *args)]

        by_id = "WHERE t.tenant_id = $1 AND t.{c} = ANY($2::text[]) ORDER BY 1"
        out: dict[str, list[Any]] = {}
        for table, column in (
            ("contacts", "customer_wa_id"),
            ("customer_aliases", "alias"),
            ("campaign_recipients", "wa_id"),
            ("reminders", "wa_id"),
            ("handoffs", "customer_wa_id"),
        ):
            out[table] = await rows(
                f"SELECT to_jsonb(t)::text FROM {table} t " + by_id.format(c=column),  # noqa: S608
                tenant_id,
                ids,
            )
        out["orders"] = await rows(
            """
            SELECT (to_jsonb(o) || jsonb_build_object(
                'lines', (SELECT coalesce(jsonb_agg(to_jsonb(l)), '[]') FROM order_lines l
                          WHERE l.order_id = o.order_id),
                'invoice', (SELECT to_jsonb(i) FROM invoices i WHERE i.order_id = o.order_id),
                'payments', (SELECT coalesce(jsonb_agg(to_jsonb(p)), '[]') FROM payments p
                             WHERE p.order_id = o.order_id),
                'events', (SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.event_id), '[]')
                           FROM order_events e WHERE e.order_id = o.order_id)))::text
            FROM orders o WHERE o.tenant_id = $1 AND o.customer_wa_id = ANY($2::text[])
            ORDER BY o.created_at
            """,
            tenant_id,
            ids,
        )
        for table, token, column in _SEALED_COLUMNS:
            for row in out[table]:
                self._open(row, token, column)
        return out

    def _open(self, row: dict[str, Any], token: str, column: str) -> None:
        """``row[column]`` from its token (``\\x…`` hex in JSON); the token dropped."""
        raw = row.pop(token, None)
        if raw is None:
            return
        sealed = bytes.fromhex(raw[2:])
        if column in ("delivery_address", "components"):
            row[column] = self._ids.open_json(sealed)
        else:
            row[column] = self._ids.open(sealed)

    async def suppressed(self, tenant_id: str, digests: Sequence[str]) -> set[str]:
        rows = await self._pool.fetch(
            "SELECT digest FROM suppressions WHERE tenant_id = $1 AND digest = ANY($2::text[])",
            tenant_id,
            list(digests),
        )
        return {r["digest"] for r in rows}
