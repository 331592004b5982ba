"""PostgreSQL access (asyncpg) for the ``conversation`` schema."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from flowchat_conversation import bot
from flowchat_conversation.domain import (
    BotSettings,
    ConversationKey,
    Product,
    compute_totals,
    round_money,
)

_PRODUCT_COLUMNS = "sku, name, description, price, currency, category, stock, available"


def _product(row: Any) -> Product:
    return Product(
        sku=row["sku"],
        name=row["name"],
        description=row["description"],
        price=row["price"],
        currency=row["currency"],
        category=row["category"],
        stock=row["stock"],
        available=row["available"],
    )


def _settings(row: Any) -> BotSettings:
    return BotSettings(
        business_name=row["business_name"],
        currency=row["currency"],
        tax_rate=row["tax_rate"].normalize(),
        locale=row["locale"],
        welcome_text=row["welcome_text"],
        payment_instructions=row["payment_instructions"],
    )


async def _get_settings(conn: Any, tenant_id: str) -> BotSettings | None:
    row = await conn.fetchrow("SELECT * FROM bot_settings WHERE tenant_id = $1", tenant_id)
    return _settings(row) if row else None


class PgConversationTx:
    def __init__(self, conn: PoolConnectionProxy[asyncpg.Record]) -> None:
        self._conn = conn

    async def mark_handled(self, tenant_id: str, provider_message_id: str, key: str) -> bool:
        row = await self._conn.fetchval(
            """
            INSERT INTO handled_messages (tenant_id, provider_message_id, conversation)
            VALUES ($1, $2, $3)
            ON CONFLICT ON CONSTRAINT handled_messages_unique DO NOTHING
            RETURNING 1
            """,
            tenant_id,
            provider_message_id,
            key,
        )
        return row is not None

    async def bot_settings(self, tenant_id: str) -> BotSettings:
        return await _get_settings(self._conn, tenant_id) or BotSettings()

    async def catalog(self, tenant_id: str) -> list[Product]:
        rows = await self._conn.fetch(
            f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE tenant_id = $1 AND available "  # noqa: S608
            "ORDER BY category, name",
            tenant_id,
        )
        return [_product(r) for r in rows]

    async def touch_contact(self, key: ConversationKey, name: str | None) -> bool:
        inserted = await self._conn.fetchval(
            """
            INSERT INTO contacts (tenant_id, customer_wa_id, name) VALUES ($1, $2, $3)
            ON CONFLICT (tenant_id, customer_wa_id) DO UPDATE
              SET name = COALESCE(EXCLUDED.name, contacts.name), last_seen_at = now()
            RETURNING (xmax = 0)
            """,
            key.tenant_id,
            key.customer_wa_id,
            name,
        )
        return not inserted

    async def set_marketing_opt_in(self, key: ConversationKey, opt_in: bool) -> None:
        await self._conn.execute(
            """
            UPDATE contacts SET marketing_opt_in = $3,
                   opted_out_at = CASE WHEN $3 THEN NULL ELSE now() END
            WHERE tenant_id = $1 AND customer_wa_id = $2
            """,
            key.tenant_id,
            key.customer_wa_id,
            opt_in,
        )

    async def place_order(
        self,
        *,
        key: ConversationKey,
        order_id: str,
        payment_reference: str,
        lines: Sequence[bot.CartLine],
        settings: BotSettings,
        source_message_id: str,
    ) -> bot.OrderResult:
        try:
            return await self._place_order(
                key, order_id, payment_reference, lines, settings, source_message_id
            )
        except _Rollback as exc:
            return bot.OrderRejected(shortages=exc.shortages)

    async def _place_order(
        self,
        key: ConversationKey,
        order_id: str,
        payment_reference: str,
        lines: Sequence[bot.CartLine],
        settings: BotSettings,
        source_message_id: str,
    ) -> bot.OrderPlaced:
        """Reserve stock for every line and record a confirmed order, all or nothing.

        Each reservation is a conditional ``UPDATE … WHERE stock >= qty``: concurrent
        orders for the last unit serialize on the row lock and the loser sees the
        updated stock, so nothing is oversold. Prices come from the catalog now, not
        from the cart.
        """
        shortages: list[tuple[str, str, int]] = []
        priced: list[tuple[bot.CartLine, Decimal]] = []
        currency = settings.currency
        async with self._conn.transaction():  # a savepoint inside the message's transaction
            for line in sorted(lines, key=lambda item: item.sku):  # fixed lock order
                row = await self._conn.fetchrow(
                    """
                    UPDATE products SET stock = stock - $3, updated_at = now()
                    WHERE tenant_id = $1 AND sku = $2 AND available AND stock >= $3
                    RETURNING price, currency
                    """,
                    key.tenant_id,
                    line.sku,
                    line.quantity,
                )
                if row is None:
                    left = await self._conn.fetchval(
                        "SELECT CASE WHEN available THEN stock ELSE 0 END FROM products "
                        "WHERE tenant_id = $1 AND sku = $2",
                        key.tenant_id,
                        line.sku,
                    )
                    shortages.append((line.sku, line.name, int(left or 0)))
                    continue
                priced.append((line, row["price"]))
            if shortages:
                # Undo the reservations made so far (leave the savepoint by raising).
                raise _Rollback(tuple(shortages))
            totals = compute_totals(
                [(price, line.quantity) for line, price in priced],
                tax_rate=settings.tax_rate,
                currency=currency,
            )
            await self._conn.execute(
                """
                INSERT INTO orders (order_id, tenant_id, account_id, customer_wa_id, status,
                    currency, subtotal, tax, total, payment_reference, source_message_id)
                VALUES ($1, $2, $3, $4, 'confirmed', $5, $6, $7, $8, $9, $10)
                """,
                order_id,
                key.tenant_id,
                key.account_id,
                key.customer_wa_id,
                currency,
                totals.subtotal,
                totals.tax,
                totals.total,
                payment_reference,
                source_message_id,
            )
            await self._conn.executemany(
                """
                INSERT INTO order_lines (order_id, line_no, sku, name, unit_price, quantity,
                    line_total) VALUES ($1, $2, $3, $4, $5, $6, $7)
                """,
                [
                    (
                        order_id,
                        n,
                        line.sku,
                        line.name,
                        price,
                        line.quantity,
                        round_money(price * line.quantity, currency),
                    )
                    for n, (line, price) in enumerate(priced, start=1)
                ],
            )
        return bot.OrderPlaced(
            order_id=order_id, payment_reference=payment_reference, totals=totals
        )

    async def claim_payment(self, tenant_id: str, order_id: str, reference: str) -> None:
        await self._conn.execute(
            """
            UPDATE orders SET payment_status = 'claimed', customer_payment_ref = $3,
                   updated_at = now()
            WHERE tenant_id = $1 AND order_id = $2 AND payment_status = 'unpaid'
            """,
            tenant_id,
            order_id,
            reference,
        )

    async def cancel_order(self, tenant_id: str, order_id: str, reason: str) -> None:
        """Cancel a confirmed, unshipped order and put its stock back."""
        status = await self._conn.fetchval(
            """
            UPDATE orders SET status = 'cancelled', cancel_reason = $3, updated_at = now()
            WHERE tenant_id = $1 AND order_id = $2 AND status IN ('draft', 'confirmed')
            RETURNING status
            """,
            tenant_id,
            order_id,
            reason,
        )
        if status is None:
            return
        await self._conn.execute(
            """
            UPDATE products p SET stock = p.stock + l.quantity, updated_at = now()
            FROM order_lines l
            WHERE l.order_id = $2 AND p.tenant_id = $1 AND p.sku = l.sku
            """,
            tenant_id,
            order_id,
        )


class _Rollback(Exception):
    def __init__(self, shortages: tuple[tuple[str, str, int], ...]) -> None:
        super().__init__("stock shortage")
        self.shortages = shortages


class Repository:
    """The pool-level store: conversations (locked transactions) and the catalog."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def conversation(self, key: ConversationKey) -> AsyncIterator[PgConversationTx]:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"conversation:{key}"
            )
            yield PgConversationTx(conn)

    async def ping(self) -> bool:
        return bool(await self._pool.fetchval("SELECT 1"))

    # ---------------------------------------------------------------- catalog

    async def get_settings(self, tenant_id: str) -> BotSettings | None:
        async with self._pool.acquire() as conn:
            return await _get_settings(conn, tenant_id)

    async def put_settings(self, tenant_id: str, settings: BotSettings) -> None:
        await self._pool.execute(
            """
            INSERT INTO bot_settings (tenant_id, business_name, currency, tax_rate, locale,
                welcome_text, payment_instructions)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (tenant_id) DO UPDATE SET business_name = EXCLUDED.business_name,
                currency = EXCLUDED.currency, tax_rate = EXCLUDED.tax_rate,
                locale = EXCLUDED.locale, welcome_text = EXCLUDED.welcome_text,
                payment_instructions = EXCLUDED.payment_instructions, updated_at = now()
            """,
            tenant_id,
            settings.business_name,
            settings.currency,
            settings.tax_rate,
            settings.locale,
            settings.welcome_text,
            settings.payment_instructions,
        )

    async def upsert_products(self, tenant_id: str, products: Sequence[Product]) -> tuple[int, int]:
        """Insert or replace by (tenant, sku) in one transaction; (created, updated)."""
        created = updated = 0
        async with self._pool.acquire() as conn, conn.transaction():
            for p in products:
                inserted = await conn.fetchval(
                    """
                    INSERT INTO products (tenant_id, sku, name, description, price, currency,
                        category, stock, available)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                    ON CONFLICT (tenant_id, sku) DO UPDATE SET name = EXCLUDED.name,
                        description = EXCLUDED.description, price = EXCLUDED.price,
                        currency = EXCLUDED.currency, category = EXCLUDED.category,
                        stock = EXCLUDED.stock, available = EXCLUDED.available,
                        updated_at = now()
                    RETURNING (xmax = 0)
                    """,
                    tenant_id,
                    p.sku,
                    p.name,
                    p.description,
                    p.price,
                    p.currency,
                    p.category,
                    p.stock,
                    p.available,
                )
                if inserted:
                    created += 1
                else:
                    updated += 1
        return created, updated

    async def list_products(
        self, tenant_id: str, *, category: str | None, limit: int, offset: int
    ) -> list[Product]:
        rows = await self._pool.fetch(
            f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE tenant_id = $1 "  # noqa: S608
            "AND ($2::text IS NULL OR category = $2) ORDER BY category, name, sku "
            "LIMIT $3 OFFSET $4",
            tenant_id,
            category,
            limit,
            offset,
        )
        return [_product(r) for r in rows]
