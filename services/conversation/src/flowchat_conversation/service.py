"""The conversation service's business logic (no aio-pika, FastAPI or asyncpg here).

Handling one inbound message
----------------------------
1. **In-process order**: a per-conversation FIFO lock (:class:`KeyedLocks`), taken
   before the first ``await``; RabbitMQ delivers a queue's messages to a consumer in
   order and each delivery's task starts in that order, so one replica handles one
   conversation's messages one at a time and in arrival order.
2. **Across replicas**: the transaction takes a PostgreSQL advisory transaction lock
   on the conversation (``pg_advisory_xact_lock``). Chosen over a Redis ``SET NX``
   lock because it cannot expire while the holder is still working (no fencing
   needed) and it is released by the server the moment a killed replica's connection
   drops. Within the lock the session is read and written with a version check
   (Redis check-and-set), so a write based on a stale read is refused, never lost.
   The session remembers the newest inbound timestamp and message id; a message
   older than the last one handled (two replicas racing) is still answered, against
   the current state, which the state machine validates (an outdated button gets
   "that option has expired"). Strict cross-replica arrival order would need a
   consistent-hash exchange with single-active-consumer queues in the topology.
3. **Dedupe**: ``(tenant, provider_message_id)`` is inserted into ``handled_messages``
   (unique constraint) in the same transaction as the effects (orders, contacts); a
   redelivery finds the row and is dropped.
4. **Replies** are published with publisher confirms *before* the session is saved
   and the transaction commits; each has the deterministic idempotency key
   ``reply:<provider_message_id>:<n>``. If the commit fails after the publish, the
   redelivery runs again: when the saved session already records this message it
   only commits the dedupe row; otherwise it recomputes the same replies with the same
   keys, which the sender drops as duplicates.

All replies answer a customer message that just arrived, so they are session
messages inside WhatsApp's 24 h window; the bot never starts a conversation.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Literal, Protocol

from flowchat_contracts import InboundMessage, OutboundCommand, OutboundContent
from flowchat_conversation import bot, metrics
from flowchat_conversation.catalog import ParsedCsv, RejectedRow, parse_csv
from flowchat_conversation.contacts import OptOutMirror
from flowchat_conversation.domain import (
    BotSettings,
    ContactSeen,
    ConversationKey,
    Product,
    ProductIn,
    format_money,
    round_money,
    within_window,
)
from flowchat_conversation.domain import resolve_product as _resolve
from flowchat_conversation.errors import (
    CatalogError,
    InvalidTransition,
    NoHandoff,
    OrderNotFound,
    PaymentRejected,
    SessionConflict,
)
from flowchat_conversation.invoice_pdf import render_invoice_pdf
from flowchat_conversation.orders import (
    RESERVED,
    InvoiceLinks,
    InvoiceStatus,
    Order,
    OrderStatus,
    can_move,
    paid_text,
    status_text,
)
from flowchat_conversation.reminders import BotReminders, NewReminder, cart_reference
from flowchat_conversation.sessions import StoredSession
from flowchat_platform.logs import get_logger

log = get_logger(__name__)

Notification = Literal["sent", "needs_template", "none"]
#: States in which a non-empty cart is still being filled (an abandoned cart if left).
CART_STATES = frozenset(
    {
        bot.State.BROWSING_PRODUCTS,
        bot.State.ADDING_TO_CART,
        bot.State.COLLECTING_QUANTITY,
        bot.State.CONFIRMING_ITEMS,
        bot.State.REVIEWING_ORDER,
        bot.State.GREETING,
    }
)

Outcome = Literal["handled", "duplicate", "replayed"]


# --------------------------------------------------------------------- ports


class Outbox(Protocol):
    async def send(self, command: OutboundCommand) -> None:
        """Publish one command and return once the broker confirmed it."""


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

    async def mark_handled(self, tenant_id: str, provider_message_id: str, key: str) -> bool:
        """Record the message; False when it was handled before."""

    async def bot_settings(self, tenant_id: str) -> BotSettings: ...

    async def catalog(self, tenant_id: str) -> list[Product]: ...

    async def touch_contact(self, key: ConversationKey, name: str | None) -> ContactSeen:
        """Upsert the contact: had the customer written before, is the contact blocked."""

    async def set_marketing_opt_in(self, key: ConversationKey, opt_in: bool) -> None: ...

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
    ) -> None: ...

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
    def conversation(self, key: ConversationKey) -> AbstractAsyncContextManager[ConversationTx]:
        """A transaction holding the conversation's advisory lock."""


class OrderStore(ConversationStore, Protocol):
    async def get_order(self, tenant_id: str, order_id: str) -> Order | None: ...

    async def list_orders(
        self,
        tenant_id: str,
        *,
        status: OrderStatus | None,
        customer_wa_id: str | None,
        limit: int,
        offset: int,
    ) -> list[Order]: ...

    async def overdue_orders(
        self, tenant_id: str | None, *, now: datetime, limit: int, confirmed_only: bool = False
    ) -> list[Order]: ...

    async def invoice_document(self, invoice_id: str) -> tuple[Order, BotSettings] | None: ...

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
        self, tenant_id: str, *, category: str | None, limit: int, offset: int
    ) -> list[Product]: ...


# --------------------------------------------------------------------- locks


class KeyedLocks:
    """FIFO asyncio locks per key, forgotten when nobody holds or waits for them."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


def _short_id(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256(":".join(parts).encode()).digest()
    return prefix + base64.b32encode(digest).decode()[:10]


def order_ids(tenant_id: str, provider_message_id: str) -> tuple[str, str]:
    """Deterministic order id and payment reference for the message that confirmed an order
    (a re-run after a failed commit produces the same ones, so the same reply text)."""
    return (
        _short_id("ORD-", tenant_id, provider_message_id),
        _short_id("PAY-", "payment", tenant_id, provider_message_id),
    )


# --------------------------------------------------------------------- conversations


@dataclass
class ConversationService:
    store: ConversationStore
    sessions: SessionStore
    outbox: Outbox
    links: InvoiceLinks | None = None
    #: The Redis opt-out set the sender reads (STOP / START keep it in step).
    optouts: OptOutMirror | None = None
    #: The reminders the bot schedules (None: none).
    reminders: BotReminders | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        self._locks = KeyedLocks()

    async def handle_inbound(self, message: InboundMessage) -> Outcome:
        key = ConversationKey(message.tenant_id, message.account_id, message.customer_wa_id)
        started = time.perf_counter()
        opted_in: dict[str, bool] = {}
        async with self._locks.hold(str(key)), self.store.conversation(key) as tx:
            outcome = await self._handle_locked(tx, key, message, opted_in)
        if opted_in and self.optouts is not None:
            # An opt-in leaves the opt-out set only once it is committed (an opt-out
            # joined it before the commit): a crash in between keeps the customer out.
            try:
                await self.optouts.mirror(key.tenant_id, opted_in)
            except Exception:  # the message is handled; the next rebuild repairs the set
                log.exception("opt-in not mirrored to the opt-out set", conversation=str(key))
        metrics.INBOUND.labels(outcome).inc()
        metrics.HANDLE_SECONDS.observe(time.perf_counter() - started)
        return outcome

    async def _context(
        self,
        tx: ConversationTx,
        key: ConversationKey,
        message: InboundMessage,
        previous: bot.Session | None,
    ) -> tuple[bot.Session | None, bot.BotContext]:
        settings = await tx.bot_settings(message.tenant_id)
        catalog = await tx.catalog(message.tenant_id)
        seen = await tx.touch_contact(key, message.customer_name)
        returning = seen.returning
        fresh = previous is None or previous.state is bot.State.GREETING
        # A new or expired session: an operator may still have the conversation.
        if fresh and await tx.handoff_open(key):
            previous = (previous or bot.Session()).model_copy(update={"handoff": True})
        reorder = message.reply is not None and message.reply.id == "reorder"
        ctx = bot.BotContext(
            settings=settings,
            catalog=catalog,
            customer_name=message.customer_name,
            returning=returning,
            last_order=await tx.last_order(key) if returning and (fresh or reorder) else (),
            blocked=seen.blocked,
            restock_alerts=self.reminders is not None and self.reminders.restock,
        )
        return previous, ctx

    async def _act(
        self,
        tx: ConversationTx,
        key: ConversationKey,
        message: InboundMessage,
        action: bot.Action,
        session: bot.Session,
        ctx: bot.BotContext,
        opted_in: dict[str, bool],
    ) -> bot.Decision | None:
        """Carry out one of the bot's actions; a decision when it has more to say."""
        if isinstance(action, bot.PlaceOrder):
            order_id, reference = order_ids(message.tenant_id, message.provider_message_id)
            result = await tx.place_order(
                key=key,
                order_id=order_id,
                payment_reference=reference,
                lines=action.lines,
                settings=ctx.settings,
                source_message_id=message.provider_message_id,
            )
            placed = isinstance(result, bot.OrderPlaced)
            metrics.ORDERS.labels("placed" if placed else "rejected").inc()
            if isinstance(result, bot.OrderPlaced):
                await self._payment_due(tx, key, result)
                if result.invoice_id and self.links:
                    result = _replace(result, invoice_url=self.links.url(result.invoice_id))
            return bot.after_order(session, result, ctx)
        if isinstance(action, bot.OptOut):
            await tx.set_marketing_opt_in(key, False)
            if self.optouts is not None:  # before the commit: never a window without it
                await self.optouts.mirror(key.tenant_id, {key.customer_wa_id: False})
        elif isinstance(action, bot.OptIn):
            await tx.set_marketing_opt_in(key, True)
            opted_in[key.customer_wa_id] = True
        elif isinstance(action, bot.ClaimPayment):
            await tx.claim_payment(message.tenant_id, action.order_id, action.reference)
        elif isinstance(action, bot.CancelOrder):
            await tx.cancel_order(message.tenant_id, action.order_id, action.reason)
            await tx.cancel_reminders(message.tenant_id, "payment_due", action.order_id)
        elif isinstance(action, bot.WatchRestock):
            await self._restock(tx, key, action)
        elif isinstance(action, bot.Handoff):
            await tx.start_handoff(key)
            metrics.HANDOFFS.labels("started").inc()
        return None

    # ---- reminders the bot schedules (in the conversation's transaction)

    async def _payment_due(
        self, tx: ConversationTx, key: ConversationKey, placed: bot.OrderPlaced
    ) -> None:
        if self.reminders is None or placed.due_at is None:
            return
        reminder = self.reminders.payment_due(
            tenant_id=key.tenant_id,
            account_id=key.account_id,
            wa_id=key.customer_wa_id,
            order_id=placed.order_id,
            payment_reference=placed.payment_reference,
            due_at=placed.due_at,
            now=self.clock(),
        )
        await _schedule(tx, reminder)

    async def _restock(
        self, tx: ConversationTx, key: ConversationKey, watch: bot.WatchRestock
    ) -> None:
        if self.reminders is None:
            return
        reminder = self.reminders.restock_alert(
            tenant_id=key.tenant_id,
            account_id=key.account_id,
            wa_id=key.customer_wa_id,
            sku=watch.sku,
            product_name=watch.name,
            now=self.clock(),
        )
        await _schedule(tx, reminder)

    async def _abandoned_cart(
        self, tx: ConversationTx, key: ConversationKey, session: bot.Session, *, had_cart: bool
    ) -> None:
        """A cart left as it is after this message: remind after a while of inactivity
        (each message moves the reminder); no cart any more (ordered, emptied): cancel."""
        if self.reminders is None or self.reminders.abandoned_cart_after is None:
            return
        items = len(session.cart) if session.state in CART_STATES else 0
        if items:
            reminder = self.reminders.abandoned_cart(
                tenant_id=key.tenant_id,
                account_id=key.account_id,
                wa_id=key.customer_wa_id,
                items=items,
                now=self.clock(),
            )
            if reminder is not None:
                await tx.schedule_reminder(reminder, replace=True)
        elif had_cart:
            await tx.cancel_reminders(
                key.tenant_id,
                "abandoned_cart",
                cart_reference(key.account_id, key.customer_wa_id),
                wa_id=key.customer_wa_id,
            )

    async def _handle_locked(
        self,
        tx: ConversationTx,
        key: ConversationKey,
        message: InboundMessage,
        opted_in: dict[str, bool],
    ) -> Outcome:
        if not await tx.mark_handled(message.tenant_id, message.provider_message_id, str(key)):
            return "duplicate"
        stored = await self.sessions.load(key)
        if stored.session and stored.session.last_message_id == message.provider_message_id:
            if stored.message_id != message.provider_message_id:
                # Replies confirmed and the session saved, only the commit was lost, and
                # nothing kept to run it again from.
                return "replayed"
            # The commit was lost after the replies and the session: handle the message
            # again from the session before it, so its effects (an order, a contact) are
            # written this time. The replies keep their idempotency keys: the sender
            # drops them as duplicates.
            stored = StoredSession(stored.previous, stored.version)
        previous, ctx = await self._context(tx, key, message, stored.session)
        decision = bot.handle(previous, message, ctx)
        replies = list(decision.replies)
        session = decision.session
        for action in decision.actions:
            follow = await self._act(tx, key, message, action, session, ctx, opted_in)
            if follow is not None:
                session = follow.session
                replies.extend(follow.replies)
                for watch in follow.actions:
                    if isinstance(watch, bot.WatchRestock):
                        await self._restock(tx, key, watch)
        if not ctx.blocked:
            had_cart = bool(stored.session and stored.session.cart)
            await self._abandoned_cart(tx, key, session, had_cart=had_cart)
        before = stored.session.state if stored.session else bot.State.GREETING
        if before is not session.state:
            metrics.TRANSITIONS.labels(before.value, session.state.value).inc()
        for n, content in enumerate(replies):
            command = OutboundCommand(
                tenant_id=message.tenant_id,
                account_id=message.account_id,
                correlation_id=message.correlation_id,
                idempotency_key=f"reply:{message.provider_message_id}:{n}",
                message_id=_short_id(
                    "msg-", message.tenant_id, message.provider_message_id, str(n)
                ),
                to=message.customer_wa_id,
                category="service",
                reply_to=message.provider_message_id,
                content=content,
            )
            await self.outbox.send(command)
            metrics.REPLIES.labels(content.type).inc()
        saved = await self.sessions.save(
            key,
            session,
            expected_version=stored.version,
            message_id=message.provider_message_id,
            previous=stored.session,
        )
        if not saved:
            raise SessionConflict(str(key), expected_version=stored.version)
        return "handled"


# --------------------------------------------------------------------- orders


@dataclass(frozen=True)
class PaymentOutcome:
    order: Order
    #: "added" (a new payment), "duplicate" (this reference was recorded before).
    result: Literal["added", "duplicate"]
    notification: Notification


@dataclass
class OrderService:
    """The tenant side of orders: statuses, payments, invoices, hand-off release.

    Every change to a conversation's order runs in the conversation's locked
    transaction (the advisory lock the inbound handler takes), so it is ordered with
    the customer's own messages, and updates the bot session with a version check.
    Customer notifications are session messages and go out only inside the 24 h
    service window (from the contact's last inbound message); outside it nothing
    free-form is sent and the event records ``needs_template``.
    """

    store: OrderStore
    sessions: SessionStore
    outbox: Outbox
    links: InvoiceLinks | None = None
    #: The reminders orders schedule and cancel (None: none).
    reminders: BotReminders | None = None

    async def get(self, tenant_id: str, order_id: str) -> Order:
        order = await self.store.get_order(tenant_id, order_id)
        if order is None:
            raise OrderNotFound(order_id)
        return order

    @asynccontextmanager
    async def _locked_order(
        self, tenant_id: str, order_id: str
    ) -> AsyncIterator[tuple[ConversationTx, ConversationKey, Order]]:
        """The order's conversation transaction (advisory lock) with the order row locked."""
        order = await self.get(tenant_id, order_id)
        key = ConversationKey(tenant_id, order.account_id, order.customer_wa_id)
        async with self.store.conversation(key) as tx:
            current = await tx.lock_order(tenant_id, order_id)
            if current is None:
                raise OrderNotFound(order_id)
            yield tx, key, current

    async def list_orders(
        self,
        tenant_id: str,
        *,
        status: OrderStatus | None = None,
        customer_wa_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Order]:
        return await self.store.list_orders(
            tenant_id, status=status, customer_wa_id=customer_wa_id, limit=limit, offset=offset
        )

    async def overdue(
        self, tenant_id: str | None, *, now: datetime | None = None, limit: int = 100
    ) -> list[Order]:
        """Confirmed or processing orders whose invoice is unpaid past its due time
        (``tenant_id=None``: every tenant's, for the reminder scheduler)."""
        return await self.store.overdue_orders(tenant_id, now=now or datetime.now(UTC), limit=limit)

    async def change_status(
        self, tenant_id: str, order_id: str, target: OrderStatus, *, reason: str | None = None
    ) -> Order:
        """Move an order along its lifecycle and tell the customer.

        Raises :class:`OrderNotFound`, :class:`InvalidTransition`. Setting the status
        it already has is a no-op (a retried request).
        """
        async with self._locked_order(tenant_id, order_id) as (tx, key, current):
            if current.status is target:
                return current
            if not can_move(current.status, target):
                raise InvalidTransition(order_id, current=current.status, target=target)
            await tx.set_order_status(
                tenant_id,
                order_id,
                target,
                reason=reason,
                restock=target is OrderStatus.CANCELLED and current.status in RESERVED,
            )
            await self._reminders_on_status(tx, key, order_id, target)
            settings = await tx.bot_settings(tenant_id)
            text = status_text(target, order_id, settings.business_name, reason)
            if target is OrderStatus.CANCELLED:
                fate = await self._notify(
                    tx,
                    key,
                    f"order:{order_id}:{target}",
                    lambda s: bot.order_cancelled(s, order_id, text),
                )
            else:
                fate = await self._notify(
                    tx,
                    key,
                    f"order:{order_id}:{target}",
                    partial(bot.notice, text=text),
                )
            await tx.record_event(
                tenant_id,
                order_id,
                from_status=current.status.value,
                to_status=target.value,
                reason=reason,
                notification=fate,
            )
            metrics.ORDER_STATUS.labels(target.value, fate).inc()
        return await self.get(tenant_id, order_id)

    async def cancel_unpaid(
        self,
        tenant_id: str,
        order_id: str,
        *,
        reason: str = "not paid in time",
        now: datetime | None = None,
    ) -> bool:
        """Cancel an order whose invoice is still unpaid past its due time; puts the
        stock back and tells the customer (inside the window). For the reminder
        scheduler: True when it cancelled, False when the order is paid, not yet due,
        already moved on or unknown (safe to call again)."""
        order = await self.store.get_order(tenant_id, order_id)
        if order is None or order.invoice is None:
            return False
        if order.status is not OrderStatus.CONFIRMED or order.payment_status == "paid":
            return False
        if not order.invoice.overdue(now or datetime.now(UTC)):
            return False
        try:
            done = await self.change_status(
                tenant_id, order_id, OrderStatus.CANCELLED, reason=reason
            )
        except InvalidTransition:
            return False
        return done.status is OrderStatus.CANCELLED and done.payment_status != "paid"

    async def cancel_overdue(self, *, limit: int = 100, now: datetime | None = None) -> int:
        """Cancel every tenant's confirmed orders still unpaid past their due time (the end
        of the ``payment_due`` reminder's story); safe on any number of replicas (each
        cancellation runs in the conversation's locked transaction and re-checks). The
        number cancelled."""
        at = now or datetime.now(UTC)
        cancelled = 0
        for order in await self.store.overdue_orders(
            None, now=at, limit=limit, confirmed_only=True
        ):
            if await self.cancel_unpaid(order.tenant_id, order.order_id, now=at):
                cancelled += 1
        return cancelled

    async def _reminders_on_status(
        self, tx: ConversationTx, key: ConversationKey, order_id: str, target: OrderStatus
    ) -> None:
        if target is OrderStatus.CANCELLED:
            await tx.cancel_reminders(key.tenant_id, "payment_due", order_id)
        elif target is OrderStatus.DELIVERED and self.reminders is not None:
            reminder = self.reminders.order_follow_up(
                tenant_id=key.tenant_id,
                account_id=key.account_id,
                wa_id=key.customer_wa_id,
                order_id=order_id,
                now=datetime.now(UTC),
            )
            await _schedule(tx, reminder)

    async def record_payment(
        self, tenant_id: str, order_id: str, *, reference: str, amount: Decimal
    ) -> PaymentOutcome:
        """A payment the tenant received for an order. When payments cover the invoice,
        the order is paid and the customer's conversation moves to ORDER_COMPLETE."""
        async with self._locked_order(tenant_id, order_id) as (tx, key, current):
            invoice = current.invoice
            if invoice is None:
                raise PaymentRejected("no_invoice", f"order {order_id} has no invoice")
            if round_money(amount, invoice.currency) != amount or amount <= 0:
                raise PaymentRejected(
                    "invalid_amount",
                    f"amount must be positive with at most the decimals of {invoice.currency}",
                    status=422,
                )
            added = await tx.add_payment(tenant_id, order_id, reference, amount, invoice.currency)
            if added == "conflict":
                raise PaymentRejected(
                    "reference_used", f"payment reference {reference} was used for another payment"
                )
            if added == "duplicate":
                return PaymentOutcome(current, "duplicate", "none")
            if current.status is OrderStatus.CANCELLED or invoice.status is InvoiceStatus.VOID:
                raise PaymentRejected("order_cancelled", f"order {order_id} is cancelled")
            if invoice.status is InvoiceStatus.PAID:
                raise PaymentRejected("already_paid", f"order {order_id} is paid already")
            paid_total = invoice.amount_paid + amount
            paid = paid_total >= invoice.total
            await tx.set_amount_paid(tenant_id, order_id, paid_total, paid=paid)
            if paid:
                await tx.cancel_reminders(tenant_id, "payment_due", order_id)
                text = paid_text(order_id, paid_total, invoice.currency)
                fate = await self._notify(
                    tx,
                    key,
                    f"order:{order_id}:paid",
                    lambda s: bot.payment_confirmed(s, order_id, text),
                )
            else:
                balance = invoice.total - paid_total
                text = (
                    f"💰 We received {format_money(amount, invoice.currency)} for order "
                    f"{order_id}. Still to pay: {format_money(balance, invoice.currency)}."
                )
                fate = await self._notify(
                    tx,
                    key,
                    f"payment:{order_id}:{reference}",
                    partial(bot.notice, text=text),
                )
            await tx.record_event(
                tenant_id,
                order_id,
                from_status=current.status.value,
                to_status="paid" if paid else "part_paid",
                reason=f"payment {reference}",
                notification=fate,
            )
            metrics.PAYMENTS.labels("paid" if paid else "partial").inc()
        return PaymentOutcome(await self.get(tenant_id, order_id), "added", fate)

    async def release(
        self, tenant_id: str, customer_wa_id: str, *, account_id: str | None = None
    ) -> list[str]:
        """End the operator hand-off of the customer's conversation(s); the bot speaks
        again. Returns the accounts released; raises :class:`NoHandoff` when none was open."""
        accounts = await self.store.open_handoffs(tenant_id, customer_wa_id)
        if account_id is not None:
            accounts = [a for a in accounts if a == account_id]
        if not accounts:
            raise NoHandoff(customer_wa_id)
        released: list[str] = []
        for account in accounts:
            key = ConversationKey(tenant_id, account, customer_wa_id)
            async with self.store.conversation(key) as tx:
                if not await tx.release_handoff(key):
                    continue  # released concurrently
                settings = await tx.bot_settings(tenant_id)
                await self._notify(
                    tx,
                    key,
                    _short_id("release:", str(key), datetime.now(UTC).isoformat()),
                    partial(bot.released, business_name=settings.business_name),
                    save_new=True,
                )
                released.append(account)
                metrics.HANDOFFS.labels("released").inc()
        return released

    async def invoice_pdf(self, invoice_id: str, token: str) -> tuple[str, bytes] | None:
        """``(filename, PDF bytes)`` when ``token`` is the invoice's link token."""
        if self.links is None or not self.links.verify(invoice_id, token):
            return None
        found = await self.store.invoice_document(invoice_id)
        if found is None or found[0].invoice is None:
            return None
        order, settings = found
        assert order.invoice is not None
        pdf = render_invoice_pdf(order, order.invoice, business_name=settings.business_name)
        return f"{order.invoice.number}.pdf", pdf

    async def purge_handled(self, *, older_than_s: int, batch: int) -> int:
        """Delete dedupe rows older than ``older_than_s``, ``batch`` rows per statement,
        until none is left; returns how many went."""
        total = 0
        while True:
            n = await self.store.purge_handled(older_than_s=older_than_s, batch=batch)
            total += n
            if n < batch:
                return total

    async def _notify(
        self,
        tx: ConversationTx,
        key: ConversationKey,
        event_key: str,
        decide: Callable[[bot.Session | None], bot.Decision],
        *,
        save_new: bool = False,
    ) -> Notification:
        stored = await self.sessions.load(key)
        decision = decide(stored.session)
        fate: Notification = "none"
        if decision.replies:
            if within_window(await tx.last_inbound(key), datetime.now(UTC)):
                await self._send(key, event_key, decision.replies)
                fate = "sent"
            else:
                fate = "needs_template"
        keep = stored.session is not None or save_new
        if keep and not await self.sessions.save(
            key, decision.session, expected_version=stored.version
        ):
            raise SessionConflict(str(key), expected_version=stored.version)
        return fate

    async def _send(
        self, key: ConversationKey, event_key: str, replies: Sequence[OutboundContent]
    ) -> None:
        for n, content in enumerate(replies):
            await self.outbox.send(
                OutboundCommand(
                    tenant_id=key.tenant_id,
                    account_id=key.account_id,
                    idempotency_key=f"{event_key}:{n}",
                    message_id=_short_id("msg-", key.tenant_id, event_key, str(n)),
                    to=key.customer_wa_id,
                    category="service",
                    content=content,
                )
            )
            metrics.REPLIES.labels(content.type).inc()


# --------------------------------------------------------------------- catalog


@dataclass(frozen=True)
class ImportReport:
    received: int
    created: int
    updated: int
    rejected: list[RejectedRow]


@dataclass
class CatalogService:
    store: CatalogStore

    async def settings(self, tenant_id: str) -> BotSettings:
        return await self.store.get_settings(tenant_id) or BotSettings()

    async def put_settings(self, tenant_id: str, settings: BotSettings) -> BotSettings:
        await self.store.put_settings(tenant_id, settings)
        return settings

    async def add_products(
        self, tenant_id: str, items: Sequence[ProductIn]
    ) -> tuple[list[Product], int, int]:
        """Create or replace products by sku; every item must be valid (else nothing)."""
        settings = await self.settings(tenant_id)
        products: list[Product] = []
        seen: set[str] = set()
        for n, item in enumerate(items):
            if item.sku in seen:
                raise CatalogError(f"item {n}: duplicate sku {item.sku}", code="duplicate_sku")
            seen.add(item.sku)
            try:
                products.append(_resolve(item, settings.currency))
            except ValueError as exc:
                raise CatalogError(f"item {n}: {exc}") from exc
        created, updated = await self.store.upsert_products(tenant_id, products)
        return products, created, updated

    async def list_products(
        self, tenant_id: str, *, category: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Product]:
        return await self.store.list_products(
            tenant_id, category=category, limit=limit, offset=offset
        )

    async def import_csv(self, tenant_id: str, text: str) -> ImportReport:
        settings = await self.settings(tenant_id)
        parsed: ParsedCsv = parse_csv(text, default_currency=settings.currency)
        created = updated = 0
        if parsed.products:
            created, updated = await self.store.upsert_products(
                tenant_id, [p for _, p in parsed.products]
            )
        metrics.IMPORT_ROWS.labels("accepted").inc(len(parsed.products))
        metrics.IMPORT_ROWS.labels("rejected").inc(len(parsed.rejected))
        return ImportReport(
            received=len(parsed.products) + len(parsed.rejected),
            created=created,
            updated=updated,
            rejected=parsed.rejected,
        )


async def _schedule(tx: ConversationTx, reminder: NewReminder | None) -> None:
    """Schedule a reminder the bot asked for in the conversation's transaction (none
    when the kind is switched off), counting what was added."""
    if reminder is not None and await tx.schedule_reminder(reminder):
        metrics.REMINDERS.labels(reminder.kind, "scheduled").inc()
