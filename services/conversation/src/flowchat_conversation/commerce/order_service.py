"""The tenant side of orders: statuses, payments, invoices, hand-off release (no I/O)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Literal

from flowchat_contracts import (
    CatalogContent,
    CtaUrlContent,
    FlowContent,
    OutboundCommand,
    OutboundContent,
    ProductContent,
    ProductListContent,
    ProductSection,
    TemplateComponent,
    TemplateContent,
    TemplateParameter,
)
from flowchat_contracts.tenant_events import OrderChange, OrderData
from flowchat_conversation import metrics
from flowchat_conversation.commerce import bot, render
from flowchat_conversation.commerce.domain import (
    BotSettings,
    ConversationKey,
    round_money,
    short_id,
    within_window,
)
from flowchat_conversation.commerce.i18n import Tr, tr
from flowchat_conversation.commerce.orders import (
    RESERVED,
    CancelledBy,
    DiscountCode,
    Invoice,
    InvoiceLinks,
    InvoiceStatus,
    Order,
    OrderStatus,
    can_move,
    credit_text,
    paid_text,
    part_paid_text,
    status_text,
)
from flowchat_conversation.commerce.payments import PaymentProvider, parse_event, verify
from flowchat_conversation.commerce.ports import (
    ConversationTx,
    InvoiceRenderer,
    Notification,
    OrderStore,
    SessionStore,
    schedule_reminder,
)
from flowchat_conversation.customers import identity_for
from flowchat_conversation.errors import (
    BadSignature,
    CatalogNotConnected,
    DiscountRejected,
    InvalidAmount,
    InvalidTransition,
    InvoiceNotFound,
    NoHandoff,
    NoPaymentProvider,
    OrderNotFound,
    PaymentRejected,
    SessionConflict,
)
from flowchat_conversation.facts import Facts
from flowchat_conversation.outbox import Outbox
from flowchat_conversation.outreach.reminders import BotReminders


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
    #: Order facts for the relay's subscribers (None: none published).
    facts: Facts | None = None
    #: Renders invoice PDFs (None: in this process, the PDF library imported on first use).
    renderer: InvoiceRenderer | None = None
    #: The payment provider (payment links, signed webhooks); None: the manual
    #: confirmation-number path only.
    payments: PaymentProvider | None = None
    #: The secret the provider signs its webhooks with.
    payment_webhook_secret: bytes | None = None

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
        after: tuple[datetime, str] | None = None,
    ) -> list[Order]:
        """Newest first; ``after``: the (created_at, order_id) of the last seen."""
        if customer_wa_id is not None:  # a phone number or a BSUID of the customer
            customer_wa_id = await self.store.customer_key(tenant_id, customer_wa_id.lstrip("+"))
        return await self.store.list_orders(
            tenant_id, status=status, customer_wa_id=customer_wa_id, limit=limit, after=after
        )

    async def overdue(
        self,
        tenant_id: str | None,
        *,
        now: datetime | None = None,
        limit: int = 100,
        after: tuple[datetime, str] | None = None,
    ) -> list[Order]:
        """Confirmed or processing orders whose invoice is unpaid past its due time, oldest
        first (``tenant_id=None``: every tenant's, for the reminder scheduler)."""
        return await self.store.overdue_orders(
            tenant_id, now=now or datetime.now(UTC), limit=limit, after=after
        )

    async def change_status(
        self,
        tenant_id: str,
        order_id: str,
        target: OrderStatus,
        *,
        reason: str | None = None,
        by: CancelledBy = "tenant",
        tracking_number: str | None = None,
        tracking_url: str | None = None,
    ) -> Order:
        """Move an order along its lifecycle and tell the customer (a session message
        inside the 24 h window, the tenant's order-update template outside it).

        A draft is confirmed by the customer (the bot reserves the stock and issues the
        invoice), not here. A cancellation after payments issues a credit note. Raises
        :class:`OrderNotFound`, :class:`InvalidTransition`. Setting the status it already
        has is a no-op (a retried request).
        """
        async with self._locked_order(tenant_id, order_id) as (tx, key, current):
            if current.status is target:
                return current
            draft_confirm = current.status is OrderStatus.DRAFT and target is not (
                OrderStatus.CANCELLED
            )
            if draft_confirm or not can_move(current.status, target):
                raise InvalidTransition(order_id, current=current.status, target=target)
            await tx.set_order_status(
                tenant_id,
                order_id,
                target,
                reason=reason,
                restock=target is OrderStatus.CANCELLED and current.status in RESERVED,
                cancelled_by=by,
                tracking_number=tracking_number,
                tracking_url=tracking_url,
            )
            await self._reminders_on_status(tx, key, order_id, target)
            settings = await tx.bot_settings(tenant_id)
            t = await self._tr(tx, key, settings)
            tracking = tracking_url or tracking_number
            text = status_text(
                target, order_id, settings.business_name, reason, tracking=tracking, t=t
            )
            template = (order_id, target.value)
            if target is OrderStatus.CANCELLED:
                after = await tx.lock_order(tenant_id, order_id)
                credit = after.invoice.credit_note if after and after.invoice else None
                if credit is not None:
                    text += "\n" + credit_text(
                        order_id, credit.number, credit.amount, credit.currency, t
                    )
                fate = await self._notify(
                    tx,
                    key,
                    f"order:{order_id}:{target}",
                    lambda s: bot.order_cancelled(s, order_id, text),
                    template=template,
                )
            elif target is OrderStatus.SHIPPED and tracking_url:
                cta = CtaUrlContent(body=text, display_text=t("Track order"), url=tracking_url)
                fate = await self._notify(
                    tx,
                    key,
                    f"order:{order_id}:{target}",
                    lambda s: bot.Decision(s or bot.Session(), [cta]),
                    template=template,
                )
            else:
                fate = await self._notify(
                    tx,
                    key,
                    f"order:{order_id}:{target}",
                    partial(bot.notice, text=text),
                    template=template,
                )
            await tx.record_event(
                tenant_id,
                order_id,
                from_status=current.status.value,
                to_status=target.value,
                reason=reason,
                notification=fate,
            )
            await self._fact(
                "status_changed",
                key,
                current,
                status=target.value,
                previous=current.status,
                reason=reason,
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
                tenant_id, order_id, OrderStatus.CANCELLED, reason=reason, by="system"
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
            await schedule_reminder(tx, reminder)

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
                raise InvalidAmount(
                    f"amount must be positive with at most the decimals of {invoice.currency}"
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
            t = await self._tr(tx, key)
            if paid:
                await tx.cancel_reminders(tenant_id, "payment_due", order_id)
                text = paid_text(order_id, paid_total, invoice.currency, t)
                fate = await self._notify(
                    tx,
                    key,
                    f"order:{order_id}:paid",
                    lambda s: bot.payment_confirmed(s, order_id, text),
                    template=(order_id, "paid"),
                )
            else:
                balance = invoice.total - paid_total
                text = part_paid_text(order_id, amount, balance, invoice.currency, t)
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
            if paid:
                await self._fact(
                    "paid",
                    key,
                    current,
                    status=current.status.value,
                    previous=current.status,
                    amount_paid=paid_total,
                )
            metrics.PAYMENTS.labels("paid" if paid else "partial").inc()
        return PaymentOutcome(await self.get(tenant_id, order_id), "added", fate)

    async def release(
        self, tenant_id: str, customer_wa_id: str, *, account_id: str | None = None
    ) -> list[str]:
        """End the operator hand-off of the customer's conversation(s); the bot speaks
        again. Returns the accounts released; raises :class:`NoHandoff` when none was open."""
        customer_wa_id = await self.store.customer_key(tenant_id, customer_wa_id)
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
                    short_id("release:", str(key), datetime.now(UTC).isoformat()),
                    partial(bot.released, business_name=settings.business_name),
                    save_new=True,
                )
                released.append(account)
                metrics.HANDOFFS.labels("released").inc()
        return released

    async def take_over(self, tenant_id: str, account_id: str, customer_id: str) -> bool:
        """An agent took the customer's conversation on ``account_id`` over in the inbox:
        the hand-off opens and the bot goes quiet, with no message. False when one was
        open already (the bot's own hand-off, or a redelivery)."""
        key = ConversationKey(
            tenant_id, account_id, await self.store.customer_key(tenant_id, customer_id)
        )
        async with self.store.conversation(key) as tx:
            if await tx.handoff_open(key):
                return False
            await tx.start_handoff(key)
            await self._notify(tx, key, f"takeover:{key}", bot.taken_over)
        metrics.HANDOFFS.labels("taken_over").inc()
        return True

    async def invoice_pdf(self, invoice_id: str, token: str) -> tuple[str, bytes] | None:
        """``(filename, PDF bytes)`` when ``token`` is the invoice's link token."""
        if self.links is None or not self.links.verify(invoice_id, token):
            return None
        found = await self.store.invoice_document(invoice_id)
        if found is None or found[0].invoice is None:
            return None
        order, settings = found
        assert order.invoice is not None
        pdf = await self._render(order, order.invoice, settings.business_name)
        return f"{order.invoice.number}.pdf", pdf

    async def _render(self, order: Order, invoice: Invoice, business_name: str) -> bytes:
        if self.renderer is not None:
            return await self.renderer.render(order, invoice, business_name=business_name)
        # the PDF library only when an invoice is first rendered
        from flowchat_conversation.commerce.invoice_pdf import render_invoice_pdf

        return render_invoice_pdf(order, invoice, business_name=business_name)

    # ---------------------------------------------------------------- invoices

    async def get_invoice(self, tenant_id: str, invoice_id: str) -> Order:
        """The order of the tenant's invoice (by invoice id or printed number)."""
        order = await self.store.get_invoice(tenant_id, invoice_id)
        if order is None or order.invoice is None:
            raise InvoiceNotFound(invoice_id)
        return order

    async def list_invoices(
        self,
        tenant_id: str,
        *,
        status: InvoiceStatus | None = None,
        overdue: bool = False,
        limit: int = 50,
        after: tuple[datetime, str] | None = None,
    ) -> list[Order]:
        """Orders with invoices, newest first; ``overdue``: unpaid past their due time."""
        return await self.store.list_invoices(
            tenant_id,
            status=status.value if status else None,
            overdue_at=datetime.now(UTC) if overdue else None,
            limit=limit,
            after=after,
        )

    async def tenant_invoice_pdf(self, tenant_id: str, invoice_id: str) -> tuple[str, bytes]:
        """``(filename, PDF bytes)`` of the tenant's invoice (rendered on demand)."""
        order = await self.get_invoice(tenant_id, invoice_id)
        settings = await self.store.get_settings(tenant_id)
        assert order.invoice is not None
        name = settings.business_name if settings else BotSettings().business_name
        pdf = await self._render(order, order.invoice, name)
        return f"{order.invoice.number}.pdf", pdf

    # ---------------------------------------------------------------- discount codes

    async def put_discount_code(self, tenant_id: str, code: DiscountCode) -> DiscountCode:
        return await self.store.put_discount_code(tenant_id, code)

    async def list_discount_codes(
        self, tenant_id: str, *, limit: int, after: str | None
    ) -> list[DiscountCode]:
        return await self.store.list_discount_codes(tenant_id, limit=limit, after=after)

    async def apply_discount_code(self, tenant_id: str, order_id: str, code: str | None) -> Order:
        """Put a discount code on a draft order (None: take it off); it is counted
        against its limit when the customer confirms. Raises :class:`DiscountRejected`."""
        async with self._locked_order(tenant_id, order_id) as (tx, key, current):
            if current.status is not OrderStatus.DRAFT:
                raise DiscountRejected(
                    f"order {order_id} is {current.status.value}: codes go on drafts",
                    code="not_draft",
                )
            if code is not None:
                found = await self.store.get_discount_code(tenant_id, code)
                if found is None:
                    raise DiscountRejected(f"no discount code {code}", code="unknown_code")
                refusal = found.refusal(datetime.now(UTC), current.subtotal)
                if refusal:
                    raise DiscountRejected(f"discount code {code}: {refusal}", code=refusal)
            await tx.set_discount_code(key, order_id, code, await tx.bot_settings(tenant_id))
        return await self.get(tenant_id, order_id)

    # ---------------------------------------------------------------- native commerce

    async def send_products(
        self,
        tenant_id: str,
        account_id: str,
        customer_id: str,
        skus: Sequence[str] | None,
        *,
        body: str,
        header: str | None = None,
    ) -> Notification:
        """WhatsApp's own commerce messages from the tenant's connected catalog: one
        SKU → a single-product message, several → a multi-product message (sections by
        category), none → the catalog message. Inside the 24 h window only (session
        messages). Raises :class:`CatalogNotConnected`."""
        key = ConversationKey(
            tenant_id, account_id, await self.store.customer_key(tenant_id, customer_id)
        )
        async with self.store.conversation(key) as tx:
            connected = [p for p in await tx.catalog(tenant_id) if p.catalog_id and p.retailer_id]
            if not connected:
                raise CatalogNotConnected("no product of the catalog is in a Meta catalog")
            t = await self._tr(tx, key)
            content: OutboundContent
            if not skus:
                content = CatalogContent(
                    body=body, thumbnail_product_retailer_id=str(connected[0].retailer_id)
                )
            else:
                by_sku = {p.sku: p for p in connected}
                missing = [sku for sku in skus if sku not in by_sku]
                if missing:
                    raise CatalogNotConnected(
                        f"not in a connected catalog (or unavailable): {', '.join(missing)}"
                    )
                chosen = [by_sku[sku] for sku in dict.fromkeys(skus)]
                catalog_id = str(chosen[0].catalog_id)
                if len(chosen) == 1:
                    content = ProductContent(
                        catalog_id=catalog_id,
                        product_retailer_id=str(chosen[0].retailer_id),
                        body=body,
                    )
                else:
                    sections: dict[str, list[str]] = {}
                    for p in chosen:
                        sections.setdefault(p.category[:24], []).append(str(p.retailer_id))
                    content = ProductListContent(
                        catalog_id=catalog_id,
                        header=header or t("Our products"),
                        body=body,
                        sections=[
                            ProductSection(title=t, product_retailer_ids=ids)
                            for t, ids in sections.items()
                        ],
                    )
            return await self._notify(
                tx,
                key,
                short_id("native:", str(key), datetime.now(UTC).isoformat()),
                lambda s: bot.Decision(s or bot.Session(), [content]),
            )

    async def send_address_flow(self, tenant_id: str, order_id: str) -> Notification:
        """The tenant's delivery-address WhatsApp Flow for an order (``flow_token`` is
        the order id: the answer is stored on it)."""
        async with self._locked_order(tenant_id, order_id) as (tx, key, current):
            settings = await tx.bot_settings(tenant_id)
            if settings.address_flow_id is None:
                raise CatalogNotConnected("no address_flow_id in the bot settings")
            if current.status in (OrderStatus.DELIVERED, OrderStatus.CANCELLED):
                raise InvalidTransition(order_id, current=current.status, target="address")
            t = await self._tr(tx, key, settings)
            content = FlowContent(
                flow_id=settings.address_flow_id,
                flow_token=order_id,
                flow_cta=t("Add address"),
                body=t("Where should we deliver order {order}?", order=order_id),
            )
            return await self._notify(
                tx,
                key,
                short_id("flow:", order_id, datetime.now(UTC).isoformat()),
                lambda s: bot.Decision(s or bot.Session(), [content]),
            )

    # ---------------------------------------------------------------- payments

    async def payment_link(self, tenant_id: str, order_id: str) -> Order:
        """Make (or find) the invoice's payment link and send it to the customer as a
        CTA-URL button (inside the 24 h window)."""
        if self.payments is None:
            raise NoPaymentProvider()
        async with self._locked_order(tenant_id, order_id) as (tx, key, current):
            invoice = current.invoice
            if invoice is None or invoice.status is not InvoiceStatus.UNPAID:
                raise PaymentRejected("not_payable", f"order {order_id} has nothing to pay")
            url = await self.attach_payment_link(tx, tenant_id, order_id, invoice)
            content = payment_button(order_id, invoice, url, await self._tr(tx, key))
            await self._notify(
                tx,
                key,
                f"paylink:{invoice.invoice_id}",
                lambda s: bot.Decision(s or bot.Session(), [content]),
            )
        return await self.get(tenant_id, order_id)

    async def attach_payment_link(
        self, tx: ConversationTx, tenant_id: str, order_id: str, invoice: Invoice
    ) -> str:
        if invoice.payment_link:
            return invoice.payment_link
        assert self.payments is not None
        link = await self.payments.create_link(
            tenant_id=tenant_id,
            invoice_id=invoice.invoice_id,
            amount=invoice.balance,
            currency=invoice.currency,
            description=f"Invoice {invoice.number} (order {order_id})",
        )
        await tx.set_payment_link(invoice.invoice_id, link.url, link.link_id)
        return link.url

    async def provider_webhook(
        self, body: bytes, signature: str | None, *, now: float
    ) -> Literal["added", "duplicate", "ignored"]:
        """The provider's signed event: a succeeded payment marks the invoice paid
        (its payment id is the reference: a redelivery is a duplicate). Raises
        :class:`BadSignature`."""
        secret = self.payment_webhook_secret
        if secret is None or not verify(secret, body, signature, now=now):
            raise BadSignature()
        event = parse_event(body)
        if event is None or event.type != "payment.succeeded":
            return "ignored"
        order = await self.store.order_of_invoice(event.invoice_id)
        if order is None:
            return "ignored"
        if event.currency != order.currency:
            raise PaymentRejected(
                "currency_mismatch",
                f"the payment is in {event.currency}, the invoice in {order.currency}",
            )
        outcome = await self.record_payment(
            order.tenant_id, order.order_id, reference=event.payment_id, amount=event.amount
        )
        metrics.PAYMENT_WEBHOOKS.labels(outcome.result).inc()
        return outcome.result

    async def purge_handled(self, *, older_than_s: int, batch: int) -> int:
        """Delete dedupe rows older than ``older_than_s``, ``batch`` rows per statement,
        until none is left; returns how many went."""
        total = 0
        while True:
            n = await self.store.purge_handled(older_than_s=older_than_s, batch=batch)
            total += n
            if n < batch:
                return total

    async def _fact(
        self,
        change: OrderChange,
        key: ConversationKey,
        order: Order,
        *,
        status: str,
        previous: OrderStatus,
        reason: str | None = None,
        amount_paid: Decimal | None = None,
    ) -> None:
        """The order's change for the relay, inside the order's locked transaction (a
        retried request publishes the same event id again; stored once)."""
        if self.facts is None:
            return
        await self.facts.order(
            change,
            tenant_id=key.tenant_id,
            account_id=key.account_id,
            event_id=short_id(f"order-{change}-", key.tenant_id, order.order_id, status),
            order=OrderData(
                order_id=order.order_id,
                customer=identity_for(order.customer_id or order.customer_wa_id),
                status=status,
                previous_status=previous.value,
                reason=reason,
                currency=order.currency,
                total=str(round_money(order.total, order.currency)),
                amount_paid=(
                    None if amount_paid is None else str(round_money(amount_paid, order.currency))
                ),
                payment_reference=order.payment_reference,
            ),
        )

    async def _tr(
        self, tx: ConversationTx, key: ConversationKey, settings: BotSettings | None = None
    ) -> Tr:
        """The customer's language: the one they chose, else the tenant's default."""
        chosen = await tx.contact_locale(key)
        if chosen:
            return tr(chosen)
        return tr((settings or await tx.bot_settings(key.tenant_id)).locale)

    async def _notify(
        self,
        tx: ConversationTx,
        key: ConversationKey,
        event_key: str,
        decide: Callable[[bot.Session | None], bot.Decision],
        *,
        save_new: bool = False,
        template: tuple[str, str] | None = None,
    ) -> Notification:
        """Tell the customer: ``decide``'s replies inside the 24 h window; outside it
        the tenant's order-update template with ``template`` (order id, status) as its
        body parameters, when the tenant chose one."""
        stored = await self.sessions.load(key)
        decision = decide(stored.session)
        fate: Notification = "none"
        if decision.replies:
            if within_window(await tx.last_inbound(key), datetime.now(UTC)):
                to = await tx.address(key.tenant_id, key.customer_wa_id)
                # as the customer's channel shows them (a link button as text on Twilio)
                channel = stored.session.channel if stored.session else "meta"
                replies = [render.for_channel(r, channel) for r in decision.replies]
                await self._send(key, event_key, replies, to=to)
                fate = "sent"
            elif template is not None and (
                chosen := (await tx.bot_settings(key.tenant_id)).order_update_template
            ):
                to = await tx.address(key.tenant_id, key.customer_wa_id)
                content = TemplateContent(
                    name=chosen.name,
                    language=chosen.language,
                    components=[
                        TemplateComponent(
                            type="body",
                            parameters=[TemplateParameter(type="text", text=v) for v in template],
                        )
                    ],
                )
                await self._send(key, event_key, [content], to=to, category="utility")
                fate = "template"
            else:
                fate = "needs_template"
        keep = stored.session is not None or save_new
        if keep and not await self.sessions.save(
            key, decision.session, expected_version=stored.version
        ):
            raise SessionConflict(str(key), expected_version=stored.version)
        return fate

    async def _send(
        self,
        key: ConversationKey,
        event_key: str,
        replies: Sequence[OutboundContent],
        *,
        to: str,
        category: Literal["service", "utility"] = "service",
    ) -> None:
        for n, content in enumerate(replies):
            await self.outbox.send(
                OutboundCommand(
                    tenant_id=key.tenant_id,
                    account_id=key.account_id,
                    idempotency_key=f"{event_key}:{n}",
                    message_id=short_id("msg-", key.tenant_id, event_key, str(n)),
                    to=to,
                    category=category,
                    content=content,
                )
            )
            metrics.REPLIES.labels(content.type).inc()


def payment_button(order_id: str, invoice: Invoice, url: str, t: Tr | None = None) -> CtaUrlContent:
    """The payment link as a CTA-URL button, in ``t``'s language."""
    t = t or tr()
    return CtaUrlContent(
        body=t(
            "Pay invoice {number} for order {order} online: {amount}.",
            number=invoice.number,
            order=order_id,
            amount=t.money(invoice.balance, invoice.currency),
        ),
        display_text=t("Pay now"),
        url=url,
    )
