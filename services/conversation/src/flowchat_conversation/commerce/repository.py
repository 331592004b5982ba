"""PostgreSQL access (asyncpg) for the ``conversation`` schema."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from flowchat_contracts import CustomerIdentity
from flowchat_conversation.commerce import bot
from flowchat_conversation.commerce.domain import (
    BotSettings,
    ContactSeen,
    ConversationKey,
    OrderTemplate,
    Product,
    Totals,
    compute_totals,
    round_money,
    short_id,
    totals_for,
)
from flowchat_conversation.commerce.orders import (
    CancelledBy,
    CreditNote,
    DiscountCode,
    Invoice,
    InvoiceStatus,
    Order,
    OrderLine,
    OrderStatus,
    document_number,
    invoice_id_for,
)
from flowchat_conversation.commerce.ports import Arrival
from flowchat_conversation.customers import Customer
from flowchat_conversation.outreach.reminders import NewReminder
from flowchat_conversation.outreach.repository import (
    ADDRESS_SQL,
    KEY_ID_SQL,
    RESOLVE_WITH,
    RESOLVED_IDS,
    cancel_reminders,
    customer_keys,
    insert_reminder,
    open_address,
    relink_customer,
    resolve_args,
    resolve_customer,
    resolved,
)
from flowchat_conversation.sealing import Identities
from flowchat_platform.privacy import is_sealed

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"
#: The lock, then the inbound message's dedupe row, in one statement (one round trip):
#: the row is inserted only once the lock is held (it is selected from the lock's
#: CTE); ``ON CONFLICT`` sees rows committed while it waited, whatever the statement's
#: snapshot. Answers 1 when the row is new, nothing when it was there.
_LOCK_AND_HANDLE = """
WITH locked AS (SELECT pg_advisory_xact_lock(hashtextextended($1, 0)))
INSERT INTO handled_messages (tenant_id, provider_message_id, conversation)
SELECT $2, $3, $4 FROM locked
ON CONFLICT ON CONSTRAINT handled_messages_unique DO NOTHING
RETURNING 1
"""

_DRAFT_SQL = (
    "SELECT order_id, discount_code FROM orders WHERE tenant_id = $1 "
    "AND account_id = $2 AND customer_wa_id = $3 AND status = 'draft'"
)
_CODE_SQL = "SELECT * FROM discount_codes WHERE tenant_id = $1 AND code = $2"

_PRODUCT_COLUMNS = (
    "sku, name, description, price, currency, category, stock, available, translations::text, "
    "catalog_id, retailer_id"
)
_CATALOG_SQL = (
    f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE tenant_id = $1 AND available "  # noqa: S608
    "ORDER BY category, name"
)
#: An inbound message's contact seen (created, or seen again): the end of an ``INSERT``.
_CONTACT_SEEN = """
    ON CONFLICT (tenant_id, customer_wa_id) DO UPDATE
      SET name_enc = COALESCE(EXCLUDED.name_enc, contacts.name_enc),
          name = CASE WHEN EXCLUDED.name_enc IS NULL THEN contacts.name END,
          last_seen_at = now()
    RETURNING (xmax = 0) AS inserted, status, locale
"""
#: Whether an operator has the conversation of ``{key}`` (tenant ``$1``, account ``{account}``).
_HANDOFF_OPEN = (
    "EXISTS (SELECT 1 FROM handoffs h WHERE h.tenant_id = $1 AND h.account_id = {account} "
    "AND h.customer_wa_id = {key} AND h.released_at IS NULL)"
)
#: Record an inbound message's contact and say whether an operator has the conversation.
_TOUCH_SQL = f"""
WITH c AS (
    INSERT INTO contacts (tenant_id, customer_wa_id, name_enc) VALUES ($1, $2, $3)
    {_CONTACT_SEEN}
)
SELECT c.inserted, c.status, c.locale,
    {_HANDOFF_OPEN.format(account="$4", key="$2")} AS handoff_open
FROM c
"""  # noqa: S608
#: An inbound message's arrival in one statement (one round trip):
#:
#: - its customer resolved, ids linked (``RESOLVE_WITH``: ``$1`` to ``$5``);
#: - the contact touched (name token ``$6``) with its hand-off state (account ``$7``),
#:   when the customer is keyed by ``$8``, the conversation locked (else nothing: the
#:   caller takes the customer's own conversation's lock first);
#: - the tenant's settings (``bot_settings``' columns, all NULL when none) and its
#:   catalog (rows of :data:`_PRODUCT_COLUMNS`).
_ARRIVE_SQL = f"""{RESOLVE_WITH}, touched AS (
    INSERT INTO contacts (tenant_id, customer_wa_id, name_enc)
    SELECT $1, c.key, $6::bytea FROM chosen c WHERE c.key = $8::text
    {_CONTACT_SEEN}
)
SELECT c.key AS customer_key, {RESOLVED_IDS} AS customer_ids,
    t.inserted AS contact_inserted, t.status AS contact_status,
    t.locale AS contact_locale, {_HANDOFF_OPEN.format(account="$7", key="c.key")} AS handoff_open,
    s.*, ARRAY(
        SELECT ROW({_PRODUCT_COLUMNS}) FROM products p
        WHERE p.tenant_id = $1 AND p.available ORDER BY p.category, p.name) AS catalog
FROM chosen c LEFT JOIN touched t ON true LEFT JOIN bot_settings s ON s.tenant_id = $1
"""  # noqa: S608


def _product(row: Any) -> Product:
    """A product from a row of :data:`_PRODUCT_COLUMNS` (a record, or a tuple in order)."""
    return Product(
        sku=row[0],
        name=row[1],
        description=row[2],
        price=row[3],
        currency=row[4],
        category=row[5],
        stock=row[6],
        available=row[7],
        translations=orjson.loads(row[8] or "{}"),
        catalog_id=row[9],
        retailer_id=row[10],
    )


def _discount_code(row: Any) -> DiscountCode:
    minimum = row["min_subtotal"]
    return DiscountCode(
        code=row["code"],
        rate=row["rate"].normalize(),
        max_uses=row["max_uses"],
        uses=row["uses"],
        min_subtotal=minimum.normalize() if minimum is not None else None,
        expires_at=row["expires_at"],
        created_at=row["created_at"],
    )


#: The columns of ``bot_settings`` that :func:`_settings` reads.
_SETTINGS_COLUMNS = (
    "business_name",
    "currency",
    "tax_rate",
    "locale",
    "welcome_text",
    "payment_instructions",
    "payment_timeout_hours",
    "discount_rate",
    "discount_min_subtotal",
    "inbound_limit_per_minute",
    "order_template_name",
    "order_template_language",
    "online_payments",
    "address_flow_id",
)


def _settings(row: Any) -> BotSettings:
    """The settings of a ``bot_settings`` row: built once per distinct row (every turn
    reads them; ``BotSettings`` is frozen, so the same one is shared)."""
    return _settings_of(tuple(row[c] for c in _SETTINGS_COLUMNS))


@lru_cache(maxsize=1024)
def _settings_of(values: tuple[Any, ...]) -> BotSettings:
    row = dict(zip(_SETTINGS_COLUMNS, values, strict=True))
    minimum = row["discount_min_subtotal"]
    return BotSettings(
        business_name=row["business_name"],
        currency=row["currency"],
        tax_rate=row["tax_rate"].normalize(),
        locale=row["locale"],
        welcome_text=row["welcome_text"],
        payment_instructions=row["payment_instructions"],
        payment_timeout_hours=row["payment_timeout_hours"],
        discount_rate=row["discount_rate"].normalize(),
        discount_min_subtotal=minimum.normalize() if minimum is not None else None,
        inbound_limit_per_minute=row["inbound_limit_per_minute"],
        order_update_template=(
            OrderTemplate(
                name=row["order_template_name"], language=row["order_template_language"] or "en"
            )
            if row["order_template_name"]
            else None
        ),
        online_payments=row["online_payments"],
        address_flow_id=row["address_flow_id"],
    )


class Catalogs:
    """Each tenant's catalog as last read, built into products once: a turn that reads
    the same rows (every column equal) gets the same products again (frozen), instead
    of building them anew. At most ``tenants`` tenants kept (the one read least
    recently goes)."""

    def __init__(self, tenants: int = 256) -> None:
        self._tenants = tenants
        self._last: dict[str, tuple[tuple[Any, ...], list[Product]]] = {}

    def products(self, tenant_id: str, rows: Sequence[Any]) -> list[Product]:
        key = tuple(rows)
        last = self._last.pop(tenant_id, None)
        if last is None or last[0] != key:
            last = (key, [_product(r) for r in rows])
            if len(self._last) >= self._tenants:
                self._last.pop(next(iter(self._last)))
        self._last[tenant_id] = last  # the most recent last
        return list(last[1])


def _credit_note(row: Any) -> CreditNote:
    return CreditNote(
        credit_note_id=row["credit_note_id"],
        number=row["number"],
        invoice_id=row["invoice_id"],
        order_id=row["order_id"],
        currency=row["currency"],
        amount=row["amount"],
        reason=row["reason"],
        issued_at=row["issued_at"],
    )


def _invoice(row: Any, credit: CreditNote | None = None) -> Invoice:
    return Invoice(
        invoice_id=row["invoice_id"],
        number=row["number"],
        status=InvoiceStatus(row["status"]),
        currency=row["currency"],
        subtotal=row["subtotal"],
        discount=row["discount"],
        tax_rate=row["tax_rate"].normalize(),
        tax=row["tax"],
        total=row["total"],
        amount_paid=row["amount_paid"],
        issued_at=row["issued_at"],
        due_at=row["due_at"],
        paid_at=row["paid_at"],
        payment_link=row["payment_link"],
        credit_note=credit,
    )


async def _next_number(conn: Any, tenant_id: str, kind: str) -> int:
    """The tenant's next number of ``kind``, inside the caller's transaction: the
    counter row stays locked until it ends, so numbers are issued one at a time and a
    rollback gives the number back (no gaps)."""
    value = await conn.fetchval(
        """
        INSERT INTO document_counters (tenant_id, kind, last_value) VALUES ($1, $2, 1)
        ON CONFLICT (tenant_id, kind)
        DO UPDATE SET last_value = document_counters.last_value + 1
        RETURNING last_value
        """,
        tenant_id,
        kind,
    )
    return int(value)


_ORDER_KEY_ID = KEY_ID_SQL.format(tenant="o.tenant_id", key="o.customer_wa_id")


async def _orders(
    conn: Any,
    sealed: Identities,
    where: str,
    args: Sequence[Any],
    *,
    suffix: str = "",
    lock: bool = False,
) -> list[Order]:
    """Orders matching ``where`` with their lines and invoices (3 queries); the
    customer's id and the delivery address decrypted."""
    rows = await conn.fetch(
        f"SELECT o.*, {_ORDER_KEY_ID} AS key_enc FROM orders o "  # noqa: S608
        f"WHERE {where} {suffix}{' FOR UPDATE OF o' if lock else ''}",
        *args,
    )
    if not rows:
        return []
    ids = [r["order_id"] for r in rows]
    lines: dict[str, list[OrderLine]] = {i: [] for i in ids}
    for r in await conn.fetch(
        "SELECT * FROM order_lines WHERE order_id = ANY($1::text[]) ORDER BY order_id, line_no",
        ids,
    ):
        lines[r["order_id"]].append(
            OrderLine(
                sku=r["sku"],
                name=r["name"],
                unit_price=r["unit_price"],
                quantity=r["quantity"],
                line_total=r["line_total"],
            )
        )
    credits = {
        r["order_id"]: _credit_note(r)
        for r in await conn.fetch(
            "SELECT * FROM credit_notes WHERE order_id = ANY($1::text[])", ids
        )
    }
    invoices = {
        r["order_id"]: _invoice(r, credits.get(r["order_id"]))
        for r in await conn.fetch("SELECT * FROM invoices WHERE order_id = ANY($1::text[])", ids)
    }
    return [
        Order(
            order_id=r["order_id"],
            tenant_id=r["tenant_id"],
            account_id=r["account_id"],
            customer_wa_id=r["customer_wa_id"],
            status=OrderStatus(r["status"]),
            currency=r["currency"],
            subtotal=r["subtotal"],
            discount=r["discount"],
            tax=r["tax"],
            total=r["total"],
            payment_reference=r["payment_reference"],
            payment_status=r["payment_status"],
            customer_payment_ref=r["customer_payment_ref"],
            cancel_reason=r["cancel_reason"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            lines=lines[r["order_id"]],
            invoice=invoices.get(r["order_id"]),
            tracking_number=r["tracking_number"],
            tracking_url=r["tracking_url"],
            cancelled_by=r["cancelled_by"],
            discount_code=r["discount_code"],
            delivery_address=sealed.open_json(r["delivery_address_enc"], r["delivery_address"]),
            customer_id=sealed.open(r["key_enc"], r["customer_wa_id"]),
        )
        for r in rows
    ]


async def _get_settings(conn: Any, tenant_id: str) -> BotSettings | None:
    row = await conn.fetchrow("SELECT * FROM bot_settings WHERE tenant_id = $1", tenant_id)
    return _settings(row) if row else None


class PgConversationTx:
    def __init__(
        self,
        conn: PoolConnectionProxy[asyncpg.Record],
        ids: Identities,
        catalogs: Catalogs | None = None,
    ) -> None:
        self._conn = conn
        self._ids = ids
        self._catalogs = catalogs or Catalogs(tenants=1)
        self.duplicate = False

    async def _insert_lines(
        self, order_id: str, priced: list[tuple[bot.CartLine, Decimal]], currency: str
    ) -> None:
        """The order's lines, numbered from 1, at the prices given."""
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

    async def resolve_customer(self, key: ConversationKey, identity: CustomerIdentity) -> Customer:
        customer = await resolve_customer(self._conn, self._ids, key.tenant_id, identity)
        await self._lock_customer(key, customer)
        return customer

    async def _lock_customer(self, key: ConversationKey, customer: Customer) -> None:
        if customer.key != key.customer_wa_id:
            # Known under another key (a phone number before BSUIDs): hold that
            # conversation's lock too, as the order API does.
            resolved = ConversationKey(key.tenant_id, key.account_id, customer.key)
            await self._conn.execute(_LOCK, f"conversation:{resolved}")

    async def arrive(
        self, key: ConversationKey, identity: CustomerIdentity, name: str | None
    ) -> Arrival:
        args = await resolve_args(self._conn, self._ids, key.tenant_id, identity)
        row = await self._conn.fetchrow(
            _ARRIVE_SQL, *args, self._ids.encrypt(name), key.account_id, key.customer_wa_id
        )
        assert row is not None
        customer = resolved(self._ids, key.tenant_id, row["customer_key"], row["customer_ids"])
        await self._lock_customer(key, customer)
        seen = (
            ContactSeen(
                returning=not row["contact_inserted"],
                blocked=row["contact_status"] == "blocked",
                locale=row["contact_locale"],
                handoff_open=row["handoff_open"],
            )
            if row["contact_inserted"] is not None
            else None
        )
        return Arrival(
            customer=customer,
            seen=seen,
            settings=_settings(row) if row["tenant_id"] is not None else BotSettings(),
            catalog=self._catalogs.products(key.tenant_id, row["catalog"]),
        )

    async def relink_customer(
        self, tenant_id: str, previous: CustomerIdentity, current: CustomerIdentity
    ) -> Customer:
        return await relink_customer(self._conn, self._ids, tenant_id, previous, current)

    async def address(self, tenant_id: str, customer_key: str) -> str:
        sql = ADDRESS_SQL.format(tenant="$1", key="$2::text")
        token = await self._conn.fetchval(f"SELECT {sql}", tenant_id, customer_key)
        return open_address(self._ids, token, customer_key)

    async def bot_settings(self, tenant_id: str) -> BotSettings:
        return await _get_settings(self._conn, tenant_id) or BotSettings()

    async def catalog(self, tenant_id: str) -> list[Product]:
        return [_product(r) for r in await self._conn.fetch(_CATALOG_SQL, tenant_id)]

    async def touch_contact(self, key: ConversationKey, name: str | None) -> ContactSeen:
        row = await self._conn.fetchrow(
            _TOUCH_SQL,
            key.tenant_id,
            key.customer_wa_id,
            self._ids.encrypt(name),
            key.account_id,
        )
        assert row is not None
        return ContactSeen(
            returning=not row["inserted"],
            blocked=row["status"] == "blocked",
            locale=row["locale"],
            handoff_open=row["handoff_open"],
        )

    async def set_contact_locale(self, key: ConversationKey, locale: str) -> None:
        await self._conn.execute(
            "UPDATE contacts SET locale = $3 WHERE tenant_id = $1 AND customer_wa_id = $2",
            key.tenant_id,
            key.customer_wa_id,
            locale,
        )

    async def contact_locale(self, key: ConversationKey) -> str | None:
        locale: str | None = await self._conn.fetchval(
            "SELECT locale FROM contacts WHERE tenant_id = $1 AND customer_wa_id = $2",
            key.tenant_id,
            key.customer_wa_id,
        )
        return locale

    async def schedule_reminder(self, reminder: NewReminder, *, replace: bool = False) -> bool:
        if replace and reminder.reference is not None:
            await cancel_reminders(
                self._conn,
                reminder.tenant_id,
                reminder.kind,
                reminder.reference,
                wa_id=reminder.wa_id,
                outcome="replaced",
            )
        row = await insert_reminder(self._conn, reminder, unless_pending=not replace)
        return row is not None

    async def cancel_reminders(
        self, tenant_id: str, kind: str, reference: str, *, wa_id: str | None = None
    ) -> int:
        return await cancel_reminders(
            self._conn, tenant_id, kind, reference, wa_id=wa_id, outcome="resolved"
        )

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
            draft = await self._draft(key, lock=True)
            if draft is not None:  # the cart's draft order becomes the confirmed order
                order_id = draft["order_id"]
            invoice_id = invoice_id_for(order_id)
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
            price_lines = [(price, line.quantity) for line, price in priced]
            code = draft["discount_code"] if draft is not None else None
            totals, code = await self._totals(
                key.tenant_id, price_lines, settings, code, consume=True
            )
            if draft is not None:
                await self._conn.execute(
                    """
                    UPDATE orders SET status = 'confirmed', currency = $2, subtotal = $3,
                        tax = $4, total = $5, payment_reference = $6, source_message_id = $7,
                        discount = $8, discount_code = $9, updated_at = now()
                    WHERE order_id = $1
                    """,
                    order_id,
                    currency,
                    totals.subtotal,
                    totals.tax,
                    totals.total,
                    payment_reference,
                    source_message_id,
                    totals.discount,
                    code,
                )
                await self._conn.execute("DELETE FROM order_lines WHERE order_id = $1", order_id)
            else:
                await self._conn.execute(
                    """
                    INSERT INTO orders (order_id, tenant_id, account_id, customer_wa_id, status,
                        currency, subtotal, tax, total, payment_reference, source_message_id,
                        discount)
                    VALUES ($1, $2, $3, $4, 'confirmed', $5, $6, $7, $8, $9, $10, $11)
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
                    totals.discount,
                )
            await self._insert_lines(order_id, priced, currency)
            sequence = await _next_number(self._conn, key.tenant_id, "invoice")
            number = document_number("INV", sequence)
            due_at = await self._conn.fetchval(
                """
                INSERT INTO invoices (invoice_id, tenant_id, order_id, number, currency,
                    subtotal, discount, tax_rate, tax, total, due_at, sequence)
                VALUES ($1, $2, $3, $11, $4, $5, $6, $7, $8, $9,
                        now() + make_interval(hours => $10), $12)
                RETURNING due_at
                """,
                invoice_id,
                key.tenant_id,
                order_id,
                currency,
                totals.subtotal,
                totals.discount,
                settings.tax_rate,
                totals.tax,
                totals.total,
                settings.payment_timeout_hours,
                number,
                sequence,
            )
            await self._event(
                key.tenant_id, order_id, "draft" if draft else None, "confirmed", None, "none"
            )
        return bot.OrderPlaced(
            order_id=order_id,
            payment_reference=payment_reference,
            totals=totals,
            lines=tuple((line.name, line.quantity, price) for line, price in priced),
            invoice_id=invoice_id,
            due_at=due_at,
            invoice_number=number,
        )

    # -- draft orders: one per open cart --

    async def _draft(self, key: ConversationKey, *, lock: bool = False) -> Any:
        return await self._conn.fetchrow(
            _DRAFT_SQL + (" FOR UPDATE" if lock else ""),
            key.tenant_id,
            key.account_id,
            key.customer_wa_id,
        )

    async def _totals(
        self,
        tenant_id: str,
        lines: list[tuple[Decimal, int]],
        settings: BotSettings,
        code: str | None,
        *,
        consume: bool,
    ) -> tuple[Totals, str | None]:
        """The totals with the discount code ``code`` when it can be used (its rate, or
        the tenant's automatic discount when that is larger); ``consume``: count the use
        (the code's row is locked until the transaction ends). The code kept (None when
        it cannot be used)."""
        base = totals_for(lines, settings)
        if code is None:
            return base, None
        row = await self._conn.fetchrow(
            _CODE_SQL + (" FOR UPDATE" if consume else ""),
            tenant_id,
            code,
        )
        if row is None or _discount_code(row).refusal(datetime.now(UTC), base.subtotal):
            return base, None
        if row["rate"] <= settings.discount_rate and base.discount > 0:
            return base, None
        totals = compute_totals(
            lines,
            tax_rate=settings.tax_rate,
            currency=settings.currency,
            discount_rate=row["rate"],
        )
        if consume:
            await self._conn.execute(
                "UPDATE discount_codes SET uses = uses + 1 WHERE tenant_id = $1 AND code = $2",
                tenant_id,
                code,
            )
        return totals, code

    async def sync_draft(
        self,
        key: ConversationKey,
        lines: Sequence[bot.CartLine],
        settings: BotSettings,
        message_id: str,
    ) -> str:
        """The conversation's draft order mirrors its cart (created by the first line;
        prices from the catalog now). Its id."""
        prices = {
            r["sku"]: r["price"]
            for r in await self._conn.fetch(
                "SELECT sku, price FROM products WHERE tenant_id = $1 AND sku = ANY($2::text[])",
                key.tenant_id,
                [line.sku for line in lines],
            )
        }
        priced = [(line, prices.get(line.sku, line.unit_price)) for line in lines]
        draft = await self._draft(key, lock=True)
        code = draft["discount_code"] if draft is not None else None
        totals, code = await self._totals(
            key.tenant_id, [(p, line.quantity) for line, p in priced], settings, code, consume=False
        )
        if draft is None:
            order_id = short_id("ORD-", key.tenant_id, "draft", message_id)
            await self._conn.execute(
                """
                INSERT INTO orders (order_id, tenant_id, account_id, customer_wa_id, status,
                    currency, subtotal, tax, total, payment_reference, source_message_id,
                    discount)
                VALUES ($1, $2, $3, $4, 'draft', $5, $6, $7, $8, $9, $10, $11)
                """,
                order_id,
                key.tenant_id,
                key.account_id,
                key.customer_wa_id,
                settings.currency,
                totals.subtotal,
                totals.tax,
                totals.total,
                short_id("DRF-", key.tenant_id, message_id),
                f"draft:{message_id}",
                totals.discount,
            )
            await self._event(key.tenant_id, order_id, None, "draft", None, "none")
        else:
            order_id = draft["order_id"]
            await self._conn.execute(
                """
                UPDATE orders SET currency = $2, subtotal = $3, tax = $4, total = $5,
                    discount = $6, discount_code = $7, updated_at = now()
                WHERE order_id = $1
                """,
                order_id,
                settings.currency,
                totals.subtotal,
                totals.tax,
                totals.total,
                totals.discount,
                code,
            )
            await self._conn.execute("DELETE FROM order_lines WHERE order_id = $1", order_id)
        await self._insert_lines(order_id, priced, settings.currency)
        return str(order_id)

    async def drop_draft(self, key: ConversationKey, reason: str) -> str | None:
        """The cart was emptied or cleared: its draft order is cancelled by the customer."""
        order_id = await self._conn.fetchval(
            """
            UPDATE orders SET status = 'cancelled', cancel_reason = $4,
                cancelled_by = 'customer', updated_at = now()
            WHERE tenant_id = $1 AND account_id = $2 AND customer_wa_id = $3
              AND status = 'draft'
            RETURNING order_id
            """,
            key.tenant_id,
            key.account_id,
            key.customer_wa_id,
            reason,
        )
        if order_id is not None:
            await self._event(key.tenant_id, order_id, "draft", "cancelled", reason, "none")
        return str(order_id) if order_id is not None else None

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
        """The customer cancels an order still waiting for payment (confirmed, unpaid)."""
        order = await self.lock_order(tenant_id, order_id)
        if order is None or order.status is not OrderStatus.CONFIRMED:
            return
        if order.payment_status == "paid":
            return
        await self.set_order_status(
            tenant_id,
            order_id,
            OrderStatus.CANCELLED,
            reason=reason,
            restock=True,
            cancelled_by="customer",
        )
        await self._event(tenant_id, order_id, order.status, "cancelled", reason, "none")

    async def start_handoff(self, key: ConversationKey) -> None:
        await self._conn.execute(
            """
            INSERT INTO handoffs (tenant_id, account_id, customer_wa_id) VALUES ($1, $2, $3)
            ON CONFLICT (tenant_id, account_id, customer_wa_id)
            DO UPDATE SET started_at = now(), released_at = NULL
            """,
            key.tenant_id,
            key.account_id,
            key.customer_wa_id,
        )

    async def handoff_open(self, key: ConversationKey) -> bool:
        return bool(
            await self._conn.fetchval(
                "SELECT 1 FROM handoffs WHERE tenant_id = $1 AND account_id = $2 "
                "AND customer_wa_id = $3 AND released_at IS NULL",
                key.tenant_id,
                key.account_id,
                key.customer_wa_id,
            )
        )

    async def release_handoff(self, key: ConversationKey) -> bool:
        done = await self._conn.fetchval(
            "UPDATE handoffs SET released_at = now() WHERE tenant_id = $1 AND account_id = $2 "
            "AND customer_wa_id = $3 AND released_at IS NULL RETURNING 1",
            key.tenant_id,
            key.account_id,
            key.customer_wa_id,
        )
        return done is not None

    async def last_order(self, key: ConversationKey) -> tuple[tuple[str, int], ...]:
        rows = await self._conn.fetch(
            """
            SELECT l.sku, l.quantity FROM order_lines l
            WHERE l.order_id = (
                SELECT order_id FROM orders
                WHERE tenant_id = $1 AND customer_wa_id = $2
                  AND status NOT IN ('cancelled', 'draft')
                ORDER BY created_at DESC LIMIT 1)
            ORDER BY l.line_no
            """,
            key.tenant_id,
            key.customer_wa_id,
        )
        return tuple((r["sku"], r["quantity"]) for r in rows)

    async def set_discount_code(
        self, key: ConversationKey, order_id: str, code: str | None, settings: BotSettings
    ) -> None:
        """Put ``code`` on the draft order ``order_id`` and price it again."""
        await self._conn.execute(
            "UPDATE orders SET discount_code = $2 WHERE order_id = $1 AND status = 'draft'",
            order_id,
            code,
        )
        rows = await self._conn.fetch(
            "SELECT unit_price, quantity FROM order_lines WHERE order_id = $1", order_id
        )
        totals, _ = await self._totals(
            key.tenant_id,
            [(r["unit_price"], r["quantity"]) for r in rows],
            settings,
            code,
            consume=False,
        )
        await self._conn.execute(
            "UPDATE orders SET subtotal = $2, tax = $3, total = $4, discount = $5, "
            "updated_at = now() WHERE order_id = $1",
            order_id,
            totals.subtotal,
            totals.tax,
            totals.total,
            totals.discount,
        )

    async def set_delivery_address(
        self, key: ConversationKey, answer: dict[str, Any], *, flow_token: str | None = None
    ) -> str | None:
        """Store a delivery-address Flow answer on the customer's order the Flow was sent
        for (``flow_token`` is its id), else the newest open one (the draft first); its
        id."""
        order_id = await self._conn.fetchval(
            """
            UPDATE orders SET delivery_address_enc = $4, delivery_address = NULL,
                updated_at = now()
            WHERE order_id = (
                SELECT order_id FROM orders WHERE tenant_id = $1 AND account_id = $2
                  AND customer_wa_id = $3
                  AND status IN ('draft', 'confirmed', 'processing', 'shipped')
                ORDER BY (order_id = $5) DESC NULLS LAST, (status = 'draft') DESC,
                    created_at DESC
                LIMIT 1)
            RETURNING order_id
            """,
            key.tenant_id,
            key.account_id,
            key.customer_wa_id,
            self._ids.seal_json(answer),
            flow_token,
        )
        return str(order_id) if order_id is not None else None

    async def set_payment_link(self, invoice_id: str, url: str, link_id: str) -> None:
        await self._conn.execute(
            "UPDATE invoices SET payment_link = $2, payment_link_id = $3 WHERE invoice_id = $1",
            invoice_id,
            url,
            link_id,
        )

    async def lock_order(self, tenant_id: str, order_id: str) -> Order | None:
        found = await _orders(
            self._conn,
            self._ids,
            "tenant_id = $1 AND order_id = $2",
            (tenant_id, order_id),
            lock=True,
        )
        return found[0] if found else None

    async def set_order_status(
        self,
        tenant_id: str,
        order_id: str,
        status: OrderStatus,
        *,
        reason: str | None,
        restock: bool,
        cancelled_by: CancelledBy = "tenant",
        tracking_number: str | None = None,
        tracking_url: str | None = None,
    ) -> None:
        await self._conn.execute(
            """
            UPDATE orders SET status = $3, updated_at = now(),
                cancel_reason = CASE WHEN $3 = 'cancelled' THEN $4 ELSE cancel_reason END,
                cancelled_by = CASE WHEN $3 = 'cancelled' THEN $5 ELSE cancelled_by END,
                tracking_number = COALESCE($6, tracking_number),
                tracking_url = COALESCE($7, tracking_url)
            WHERE tenant_id = $1 AND order_id = $2
            """,
            tenant_id,
            order_id,
            status.value,
            reason,
            cancelled_by,
            tracking_number,
            tracking_url,
        )
        if status is OrderStatus.CANCELLED:
            await self._conn.execute(
                "UPDATE invoices SET status = 'void' WHERE order_id = $1 AND status = 'unpaid' "
                "AND amount_paid = 0",
                order_id,
            )
            await self._credit(tenant_id, order_id, reason)
        if restock:
            await self._conn.execute(
                """
                UPDATE products p SET stock = p.stock + l.quantity, updated_at = now()
                FROM order_lines l
                WHERE l.order_id = $2 AND p.tenant_id = $1 AND p.sku = l.sku
                """,
                tenant_id,
                order_id,
            )

    async def _credit(self, tenant_id: str, order_id: str, reason: str | None) -> None:
        """A credit note for what was paid on a cancelled order's invoice (once)."""
        invoice = await self._conn.fetchrow(
            "UPDATE invoices SET status = 'credited' WHERE order_id = $1 "
            "AND status IN ('unpaid', 'paid') AND amount_paid > 0 "
            "RETURNING invoice_id, currency, amount_paid",
            order_id,
        )
        if invoice is None:
            return
        sequence = await _next_number(self._conn, tenant_id, "credit_note")
        await self._conn.execute(
            """
            INSERT INTO credit_notes (credit_note_id, tenant_id, invoice_id, order_id, number,
                sequence, currency, amount, reason)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            """,
            "CN-" + invoice["invoice_id"].removeprefix("INV-"),
            tenant_id,
            invoice["invoice_id"],
            order_id,
            document_number("CN", sequence),
            sequence,
            invoice["currency"],
            invoice["amount_paid"],
            reason,
        )

    async def record_event(
        self,
        tenant_id: str,
        order_id: str,
        *,
        from_status: str | None,
        to_status: str,
        reason: str | None,
        notification: str,
    ) -> None:
        await self._event(tenant_id, order_id, from_status, to_status, reason, notification)

    async def _event(
        self,
        tenant_id: str,
        order_id: str,
        from_status: str | None,
        to_status: str,
        reason: str | None,
        notification: str,
    ) -> None:
        await self._conn.execute(
            """
            INSERT INTO order_events (tenant_id, order_id, from_status, to_status, reason,
                notification) VALUES ($1, $2, $3, $4, $5, $6)
            """,
            tenant_id,
            order_id,
            from_status,
            to_status,
            reason,
            notification,
        )

    async def add_payment(
        self, tenant_id: str, order_id: str, reference: str, amount: Decimal, currency: str
    ) -> Literal["added", "duplicate", "conflict"]:
        inserted = await self._conn.fetchval(
            """
            INSERT INTO payments (tenant_id, reference, order_id, amount, currency)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (tenant_id, reference) DO NOTHING RETURNING 1
            """,
            tenant_id,
            reference,
            order_id,
            amount,
            currency,
        )
        if inserted is not None:
            return "added"
        row = await self._conn.fetchrow(
            "SELECT order_id, amount FROM payments WHERE tenant_id = $1 AND reference = $2",
            tenant_id,
            reference,
        )
        same = row is not None and row["order_id"] == order_id and row["amount"] == amount
        return "duplicate" if same else "conflict"

    async def set_amount_paid(
        self, tenant_id: str, order_id: str, amount_paid: Decimal, *, paid: bool
    ) -> None:
        await self._conn.execute(
            """
            UPDATE invoices SET amount_paid = $3,
                status = CASE WHEN $4 THEN 'paid' ELSE status END,
                paid_at = CASE WHEN $4 THEN now() ELSE paid_at END
            WHERE tenant_id = $1 AND order_id = $2
            """,
            tenant_id,
            order_id,
            amount_paid,
            paid,
        )
        if paid:
            await self._conn.execute(
                "UPDATE orders SET payment_status = 'paid', paid_at = now(), updated_at = now() "
                "WHERE tenant_id = $1 AND order_id = $2",
                tenant_id,
                order_id,
            )

    async def last_inbound(self, key: ConversationKey) -> datetime | None:
        value: datetime | None = await self._conn.fetchval(
            "SELECT last_seen_at FROM contacts WHERE tenant_id = $1 AND customer_wa_id = $2",
            key.tenant_id,
            key.customer_wa_id,
        )
        return value


class _Rollback(Exception):
    def __init__(self, shortages: tuple[tuple[str, str, int], ...]) -> None:
        super().__init__("stock shortage")
        self.shortages = shortages


class Repository:
    """The pool-level store: conversations (locked transactions) and the catalog."""

    def __init__(self, pool: asyncpg.Pool, ids: Identities) -> None:
        self._pool = pool
        self._ids = ids
        self._catalogs = Catalogs()

    # ---------------------------------------------------------------- orders

    async def get_order(self, tenant_id: str, order_id: str) -> Order | None:
        async with self._pool.acquire() as conn:
            found = await _orders(
                conn, self._ids, "tenant_id = $1 AND order_id = $2", (tenant_id, order_id)
            )
        return found[0] if found else None

    async def list_orders(
        self,
        tenant_id: str,
        *,
        status: OrderStatus | None,
        customer_wa_id: str | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[Order]:
        async with self._pool.acquire() as conn:
            return await _orders(
                conn,
                self._ids,
                "tenant_id = $1 AND ($2::text IS NULL OR status = $2) "
                "AND ($3::text IS NULL OR customer_wa_id = $3) "
                "AND ($5::timestamptz IS NULL OR (created_at, order_id) < ($5, $6::text))",
                (tenant_id, status.value if status else None, customer_wa_id, limit)
                + (after or (None, None)),
                suffix="ORDER BY created_at DESC, order_id DESC LIMIT $4",
            )

    async def overdue_orders(
        self,
        tenant_id: str | None,
        *,
        now: datetime,
        limit: int,
        confirmed_only: bool = False,
        after: tuple[datetime, str] | None = None,
    ) -> list[Order]:
        statuses = ["confirmed"] if confirmed_only else ["confirmed", "processing"]
        async with self._pool.acquire() as conn:
            return await _orders(
                conn,
                self._ids,
                "($1::text IS NULL OR o.tenant_id = $1) AND o.status = ANY($4::text[]) "
                "AND EXISTS (SELECT 1 FROM invoices i WHERE i.order_id = "
                "o.order_id AND i.status = 'unpaid' AND i.due_at <= $2) "
                "AND ($5::timestamptz IS NULL OR (o.created_at, o.order_id) > ($5, $6::text))",
                (tenant_id, now, limit, statuses) + (after or (None, None)),
                suffix="ORDER BY created_at, order_id LIMIT $3",
            )

    async def invoice_document(self, invoice_id: str) -> tuple[Order, BotSettings] | None:
        async with self._pool.acquire() as conn:
            found = await _orders(
                conn,
                self._ids,
                "order_id = (SELECT order_id FROM invoices WHERE invoice_id = $1)",
                (invoice_id,),
            )
            if not found:
                return None
            settings = await _get_settings(conn, found[0].tenant_id) or BotSettings()
        return found[0], settings

    async def get_invoice(self, tenant_id: str, invoice_id: str) -> Order | None:
        """The order of the tenant's invoice ``invoice_id`` (by id or printed number)."""
        async with self._pool.acquire() as conn:
            found = await _orders(
                conn,
                self._ids,
                "tenant_id = $1 AND order_id = (SELECT order_id FROM invoices "
                "WHERE tenant_id = $1 AND (invoice_id = $2 OR number = $2))",
                (tenant_id, invoice_id),
            )
        return found[0] if found else None

    async def list_invoices(
        self,
        tenant_id: str,
        *,
        status: str | None,
        overdue_at: datetime | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[Order]:
        """Orders with invoices, newest invoice first."""
        async with self._pool.acquire() as conn:
            return await _orders(
                conn,
                self._ids,
                "o.tenant_id = $1 AND EXISTS (SELECT 1 FROM invoices i WHERE i.order_id = "
                "o.order_id AND ($2::text IS NULL OR i.status = $2) AND ($3::timestamptz IS "
                "NULL OR (i.status = 'unpaid' AND i.due_at <= $3))) "
                "AND ($5::timestamptz IS NULL OR (o.created_at, o.order_id) < ($5, $6::text))",
                (tenant_id, status, overdue_at, limit) + (after or (None, None)),
                suffix="ORDER BY created_at DESC, order_id DESC LIMIT $4",
            )

    async def order_of_invoice(self, invoice_id: str) -> Order | None:
        """Any tenant's order by its invoice id (the payment provider's webhook)."""
        async with self._pool.acquire() as conn:
            found = await _orders(
                conn,
                self._ids,
                "order_id = (SELECT order_id FROM invoices WHERE invoice_id = $1)",
                (invoice_id,),
            )
        return found[0] if found else None

    async def set_payment_link(self, invoice_id: str, url: str, link_id: str) -> None:
        await self._pool.execute(
            "UPDATE invoices SET payment_link = $2, payment_link_id = $3 WHERE invoice_id = $1",
            invoice_id,
            url,
            link_id,
        )

    async def put_discount_code(self, tenant_id: str, code: DiscountCode) -> DiscountCode:
        row = await self._pool.fetchrow(
            """
            INSERT INTO discount_codes (tenant_id, code, rate, max_uses, min_subtotal,
                expires_at)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (tenant_id, code) DO UPDATE SET rate = EXCLUDED.rate,
                max_uses = EXCLUDED.max_uses, min_subtotal = EXCLUDED.min_subtotal,
                expires_at = EXCLUDED.expires_at
            RETURNING *
            """,
            tenant_id,
            code.code,
            code.rate,
            code.max_uses,
            code.min_subtotal,
            code.expires_at,
        )
        return _discount_code(row)

    async def get_discount_code(self, tenant_id: str, code: str) -> DiscountCode | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM discount_codes WHERE tenant_id = $1 AND code = $2", tenant_id, code
        )
        return _discount_code(row) if row else None

    async def list_discount_codes(
        self, tenant_id: str, *, limit: int, after: str | None
    ) -> list[DiscountCode]:
        rows = await self._pool.fetch(
            "SELECT * FROM discount_codes WHERE tenant_id = $1 "
            "AND ($3::text IS NULL OR code > $3) ORDER BY code LIMIT $2",
            tenant_id,
            limit,
            after,
        )
        return [_discount_code(r) for r in rows]

    async def customer_key(self, tenant_id: str, customer_id: str) -> str:
        if is_sealed(customer_id):  # a stored key already
            return customer_id
        keys = await customer_keys(self._pool, self._ids, tenant_id, [customer_id])
        return keys.get(customer_id) or self._ids.key(tenant_id, customer_id)

    async def open_handoffs(self, tenant_id: str, customer_wa_id: str) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT account_id FROM handoffs WHERE tenant_id = $1 AND customer_wa_id = $2 "
            "AND released_at IS NULL ORDER BY account_id",
            tenant_id,
            customer_wa_id,
        )
        return [r["account_id"] for r in rows]

    async def purge_handled(self, *, older_than_s: int, batch: int) -> int:
        """Delete up to ``batch`` dedupe rows older than ``older_than_s`` seconds."""
        status = await self._pool.execute(
            """
            DELETE FROM handled_messages WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM handled_messages
                WHERE handled_at < now() - make_interval(secs => $1)
                LIMIT $2))
            """,
            float(older_than_s),
            batch,
        )
        return int(status.split()[-1])

    @asynccontextmanager
    async def conversation(
        self, key: ConversationKey, *, handling: str | None = None
    ) -> AsyncIterator[PgConversationTx]:
        async with self._pool.acquire() as conn, conn.transaction():
            tx = PgConversationTx(conn, self._ids, self._catalogs)
            if handling is None:
                await conn.execute(_LOCK, f"conversation:{key}")
            else:
                new = await conn.fetchval(
                    _LOCK_AND_HANDLE, f"conversation:{key}", key.tenant_id, handling, str(key)
                )
                tx.duplicate = new is None
            yield tx

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
                welcome_text, payment_instructions, payment_timeout_hours, discount_rate,
                discount_min_subtotal, inbound_limit_per_minute, order_template_name,
                order_template_language, online_payments, address_flow_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
            ON CONFLICT (tenant_id) DO UPDATE SET business_name = EXCLUDED.business_name,
                currency = EXCLUDED.currency, tax_rate = EXCLUDED.tax_rate,
                locale = EXCLUDED.locale, welcome_text = EXCLUDED.welcome_text,
                payment_instructions = EXCLUDED.payment_instructions,
                payment_timeout_hours = EXCLUDED.payment_timeout_hours,
                discount_rate = EXCLUDED.discount_rate,
                discount_min_subtotal = EXCLUDED.discount_min_subtotal,
                inbound_limit_per_minute = EXCLUDED.inbound_limit_per_minute,
                order_template_name = EXCLUDED.order_template_name,
                order_template_language = EXCLUDED.order_template_language,
                online_payments = EXCLUDED.online_payments,
                address_flow_id = EXCLUDED.address_flow_id, updated_at = now()
            """,
            tenant_id,
            settings.business_name,
            settings.currency,
            settings.tax_rate,
            settings.locale,
            settings.welcome_text,
            settings.payment_instructions,
            settings.payment_timeout_hours,
            settings.discount_rate,
            settings.discount_min_subtotal,
            settings.inbound_limit_per_minute,
            settings.order_update_template.name if settings.order_update_template else None,
            settings.order_update_template.language if settings.order_update_template else None,
            settings.online_payments,
            settings.address_flow_id,
        )

    async def upsert_products(self, tenant_id: str, products: Sequence[Product]) -> tuple[int, int]:
        """Insert or replace by (tenant, sku) in one transaction; (created, updated)."""
        created = updated = 0
        async with self._pool.acquire() as conn, conn.transaction():
            for p in products:
                inserted = await conn.fetchval(
                    """
                    INSERT INTO products (tenant_id, sku, name, description, price, currency,
                        category, stock, available, translations, catalog_id, retailer_id)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12)
                    ON CONFLICT (tenant_id, sku) DO UPDATE SET name = EXCLUDED.name,
                        description = EXCLUDED.description, price = EXCLUDED.price,
                        currency = EXCLUDED.currency, category = EXCLUDED.category,
                        stock = EXCLUDED.stock, available = EXCLUDED.available,
                        translations = EXCLUDED.translations,
                        catalog_id = EXCLUDED.catalog_id, retailer_id = EXCLUDED.retailer_id,
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
                    orjson.dumps(p.translations).decode(),
                    p.catalog_id,
                    p.retailer_id,
                )
                if inserted:
                    created += 1
                else:
                    updated += 1
        return created, updated

    async def list_products(
        self,
        tenant_id: str,
        *,
        category: str | None,
        limit: int,
        after: tuple[str, str, str] | None,
    ) -> list[Product]:
        rows = await self._pool.fetch(
            f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE tenant_id = $1 "  # noqa: S608
            "AND ($2::text IS NULL OR category = $2) "
            "AND ($4::text IS NULL OR (category, name, sku) > ($4, $5::text, $6::text)) "
            "ORDER BY category, name, sku LIMIT $3",
            tenant_id,
            category,
            limit,
            *(after or (None, None, None)),
        )
        return [_product(r) for r in rows]
