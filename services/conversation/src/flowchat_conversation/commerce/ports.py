"""The ports the commerce services work through, and the values that cross them.

Implemented by the adapters the app wires in: :class:`ConversationStore`,
:class:`OrderStore` and :class:`CatalogStore` by
:class:`~flowchat_conversation.commerce.repository.Repository` (asyncpg),
:class:`SessionStore` by
:class:`~flowchat_conversation.commerce.redis_sessions.RedisSessionStore`; the outbox
is :class:`~flowchat_conversation.outbox.Outbox`, shared with outreach.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol

from flowchat_contracts import CustomerIdentity
from flowchat_conversation import metrics
from flowchat_conversation.commerce import bot
from flowchat_conversation.commerce.domain import BotSettings, ContactSeen, ConversationKey, Product
from flowchat_conversation.commerce.orders import (
    CancelledBy,
    DiscountCode,
    Invoice,
    Order,
    OrderStatus,
)
from flowchat_conversation.customers import Customer
from flowchat_conversation.outreach.reminders import NewReminder

#: What became of a customer notification: sent as a session message, sent as the
#: tenant's order-update template (outside the 24 h window), not sent for want of one.
Notification = Literal["sent", "template", "needs_template", "none"]


@dataclass(frozen=True)
class StoredSession:
    session: bot.Session | None
    version: int
    #: The inbound message whose handling saved ``session`` (None: not known).
    message_id: str | None = None
    #: The session before that message.
    previous: bot.Session | None = None


@dataclass(frozen=True)
class Arrival:
    """What an inbound message's transaction learns first, in one round trip."""

    customer: Customer
    #: The contact touched (as ``touch_contact``); None when the customer is keyed by
    #: another conversation than the one locked (its lock is taken then, the contact
    #: not touched yet).
    seen: ContactSeen | None
    settings: BotSettings
    catalog: list[Product]


class SessionStore(Protocol):
    async def load(self, key: ConversationKey) -> StoredSession: ...

    async def save(
        self,
        key: ConversationKey,
        session: bot.Session,
        *,
        expected_version: int,
        message_id: str | None = None,
        previous: bot.Session | None = None,
    ) -> bool: ...


class ConversationTx(Protocol):
    """The database side of one message, inside one transaction holding the lock."""

    #: Opened for an inbound message (``ConversationStore.conversation(handling=…)``):
    #: it had been recorded as handled before (a redelivery), in which case it is not
    #: recorded again.
    duplicate: bool

    async def mark_handled(self, tenant_id: str, provider_message_id: str, key: str) -> bool:
        """Record the message; False when it was handled before."""

    async def resolve_customer(self, key: ConversationKey, identity: CustomerIdentity) -> Customer:
        """The customer ``identity`` names, by any of its ids (created when new; ids not
        linked yet are linked to it). ``key`` is the conversation locked so far (keyed by
        ``identity.key``); a customer known under another key gets that lock too."""

    async def arrive(
        self, key: ConversationKey, identity: CustomerIdentity, name: str | None
    ) -> Arrival:
        """An inbound message's customer resolved (as ``resolve_customer``), its contact
        touched (as ``touch_contact``, with ``name``), the tenant's settings and catalog:
        one round trip where the customer is keyed by ``key``."""

    async def relink_customer(
        self, tenant_id: str, previous: CustomerIdentity, current: CustomerIdentity
    ) -> Customer:
        """Meta's id change: ``current``'s ids join the customer who owned ``previous``'s."""

    async def address(self, tenant_id: str, customer_key: str) -> str:
        """Where to send to the customer: the phone number when known, else the BSUID."""

    async def bot_settings(self, tenant_id: str) -> BotSettings: ...

    async def catalog(self, tenant_id: str) -> list[Product]: ...

    async def touch_contact(self, key: ConversationKey, name: str | None) -> ContactSeen:
        """Upsert the contact: had the customer written before, is the contact blocked,
        does an operator have the conversation (an open hand-off)."""

    async def set_marketing_opt_in(self, key: ConversationKey, opt_in: bool) -> None: ...

    async def set_contact_locale(self, key: ConversationKey, locale: str) -> None:
        """Remember the language the customer chose."""

    async def contact_locale(self, key: ConversationKey) -> str | None:
        """The language the customer chose (None: not chosen, or no contact yet)."""

    async def place_order(
        self,
        *,
        key: ConversationKey,
        order_id: str,
        payment_reference: str,
        lines: Sequence[bot.CartLine],
        settings: BotSettings,
        source_message_id: str,
    ) -> bot.OrderResult: ...

    async def claim_payment(self, tenant_id: str, order_id: str, reference: str) -> None: ...

    async def sync_draft(
        self,
        key: ConversationKey,
        lines: Sequence[bot.CartLine],
        settings: BotSettings,
        message_id: str,
    ) -> str:
        """Mirror the cart into the conversation's draft order (created when none); its id."""

    async def drop_draft(self, key: ConversationKey, reason: str) -> str | None:
        """Cancel the conversation's draft order (the cart is gone); its id, if any."""

    async def set_discount_code(
        self, key: ConversationKey, order_id: str, code: str | None, settings: BotSettings
    ) -> None: ...

    async def set_payment_link(self, invoice_id: str, url: str, link_id: str) -> None: ...

    async def set_delivery_address(
        self, key: ConversationKey, answer: dict[str, Any], *, flow_token: str | None = None
    ) -> str | None:
        """Store a delivery-address Flow answer on the customer's open order; its id."""

    async def cancel_order(self, tenant_id: str, order_id: str, reason: str) -> None: ...

    async def start_handoff(self, key: ConversationKey) -> None: ...

    async def handoff_open(self, key: ConversationKey) -> bool: ...

    async def last_order(self, key: ConversationKey) -> tuple[tuple[str, int], ...]:
        """``(sku, quantity)`` of the customer's newest order that was not cancelled."""

    # -- used by the order API (same locked transaction) --

    async def lock_order(self, tenant_id: str, order_id: str) -> Order | None:
        """The order with its invoice, row-locked until the transaction ends."""

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
        """A cancellation voids an unpaid invoice, or credits what was paid (a credit note)."""

    async def record_event(
        self,
        tenant_id: str,
        order_id: str,
        *,
        from_status: str | None,
        to_status: str,
        reason: str | None,
        notification: Notification,
    ) -> None: ...

    async def add_payment(
        self, tenant_id: str, order_id: str, reference: str, amount: Decimal, currency: str
    ) -> Literal["added", "duplicate", "conflict"]:
        """Record a payment; the same reference again for the same order and amount is
        a duplicate, for anything else a conflict."""

    async def set_amount_paid(
        self, tenant_id: str, order_id: str, amount_paid: Decimal, *, paid: bool
    ) -> None: ...

    async def last_inbound(self, key: ConversationKey) -> datetime | None:
        """When the customer last wrote (the start of the 24 h service window)."""

    async def schedule_reminder(self, reminder: NewReminder, *, replace: bool = False) -> bool:
        """Schedule in this transaction. ``replace``: cancel the customer's pending one of
        the same kind and reference first; otherwise none is added while one is pending
        (or when its dedupe key was used). True when added."""

    async def cancel_reminders(
        self, tenant_id: str, kind: str, reference: str, *, wa_id: str | None = None
    ) -> int:
        """Cancel the pending reminders of ``kind`` about ``reference`` (the reason is gone)."""

    async def release_handoff(self, key: ConversationKey) -> bool: ...


class ConversationStore(Protocol):
    def conversation(
        self, key: ConversationKey, *, handling: str | None = None
    ) -> AbstractAsyncContextManager[ConversationTx]:
        """A transaction holding the conversation's advisory lock. With ``handling`` (an
        inbound message's provider id), the message is also recorded as handled (the
        dedupe row, in the same round trip as the lock); ``tx.duplicate`` tells whether
        it had been before."""


class OrderStore(ConversationStore, Protocol):
    async def get_order(self, tenant_id: str, order_id: str) -> Order | None: ...

    async def list_orders(
        self,
        tenant_id: str,
        *,
        status: OrderStatus | None,
        customer_wa_id: str | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[Order]: ...

    async def overdue_orders(
        self,
        tenant_id: str | None,
        *,
        now: datetime,
        limit: int,
        confirmed_only: bool = False,
        after: tuple[datetime, str] | None = None,
    ) -> list[Order]: ...

    async def invoice_document(self, invoice_id: str) -> tuple[Order, BotSettings] | None: ...

    async def get_invoice(self, tenant_id: str, invoice_id: str) -> Order | None: ...

    async def list_invoices(
        self,
        tenant_id: str,
        *,
        status: str | None,
        overdue_at: datetime | None,
        limit: int,
        after: tuple[datetime, str] | None,
    ) -> list[Order]: ...

    async def order_of_invoice(self, invoice_id: str) -> Order | None: ...

    async def set_payment_link(self, invoice_id: str, url: str, link_id: str) -> None: ...

    async def put_discount_code(self, tenant_id: str, code: DiscountCode) -> DiscountCode: ...

    async def get_discount_code(self, tenant_id: str, code: str) -> DiscountCode | None: ...

    async def list_discount_codes(
        self, tenant_id: str, *, limit: int, after: str | None
    ) -> list[DiscountCode]: ...

    async def get_settings(self, tenant_id: str) -> BotSettings | None: ...

    async def customer_key(self, tenant_id: str, customer_id: str) -> str:
        """The key of the customer ``customer_id`` (a phone number or a BSUID) names
        (itself when not linked)."""

    async def open_handoffs(self, tenant_id: str, customer_wa_id: str) -> list[str]:
        """The accounts whose conversation with the customer is with an operator."""

    async def purge_handled(self, *, older_than_s: int, batch: int) -> int: ...


class CatalogStore(Protocol):
    async def get_settings(self, tenant_id: str) -> BotSettings | None: ...

    async def put_settings(self, tenant_id: str, settings: BotSettings) -> None: ...

    async def upsert_products(
        self, tenant_id: str, products: Sequence[Product]
    ) -> tuple[int, int]: ...

    async def list_products(
        self,
        tenant_id: str,
        *,
        category: str | None,
        limit: int,
        after: tuple[str, str, str] | None,
    ) -> list[Product]: ...


async def schedule_reminder(tx: ConversationTx, reminder: NewReminder | None) -> None:
    """Schedule a reminder the bot asked for in the conversation's transaction (none
    when the kind is switched off), counting what was added."""
    if reminder is not None and await tx.schedule_reminder(reminder):
        metrics.REMINDERS.labels(reminder.kind, "scheduled").inc()


class InvoiceRenderer(Protocol):
    """Turns an invoice into its PDF (``commerce/pdf_process.py``: in a short-lived
    child process, so the service never carries the PDF library)."""

    async def render(self, order: Order, invoice: Invoice, *, business_name: str) -> bytes: ...

    def warm(self) -> None:
        """Get ready to render soon (an invoice was just issued); returns at once."""


class InboundLimiter(Protocol):
    """Counts each customer's messages per minute (``commerce/redis_limits.py``)."""

    async def hit(self, key: ConversationKey) -> int:
        """Count one message; how many the customer sent in the current window."""
