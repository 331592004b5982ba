"""Orders, invoices and payments as plain values and rules (no I/O).

Order lifecycle (tenant API ``POST /v1/tenants/{t}/orders/{id}/status``)::

    draft ──▶ confirmed ──▶ processing ──▶ shipped ──▶ delivered
      │           │             │
      └───────────┴─────────────┴──▶ cancelled (with a reason; stock goes back)

A conversation's open cart is mirrored by its one *draft* order (visible through the
API); when the customer confirms, the draft becomes the *confirmed* order with the
same id (stock reserved, invoice issued in the same transaction); a draft is never
confirmed through the API. Payment is tracked apart from the status: an invoice is
*unpaid* until payments add up to its total (*paid*), *void* once its order is
cancelled unpaid, *credited* (with a credit note for what was paid) once cancelled
after payments, and *overdue* while unpaid past its due time
(``payment_timeout_hours`` after issue). Invoices and credit notes are numbered per
tenant without gaps (``INV-000001``, ``CN-000001``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from flowchat_conversation.commerce.domain import round_money, short_id
from flowchat_conversation.commerce.i18n import Tr, tr


class OrderStatus(StrEnum):
    DRAFT = "draft"
    CONFIRMED = "confirmed"
    PROCESSING = "processing"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.DRAFT: frozenset({OrderStatus.CONFIRMED, OrderStatus.CANCELLED}),
    OrderStatus.CONFIRMED: frozenset({OrderStatus.PROCESSING, OrderStatus.CANCELLED}),
    OrderStatus.PROCESSING: frozenset({OrderStatus.SHIPPED, OrderStatus.CANCELLED}),
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED}),
    OrderStatus.DELIVERED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}

#: Statuses whose stock is reserved (a cancellation from them puts it back).
RESERVED = frozenset({OrderStatus.CONFIRMED, OrderStatus.PROCESSING})


def can_move(current: OrderStatus, target: OrderStatus) -> bool:
    return target in TRANSITIONS[current]


class InvoiceStatus(StrEnum):
    UNPAID = "unpaid"
    PAID = "paid"
    VOID = "void"
    #: Cancelled after payments: a credit note gives the amount paid back.
    CREDITED = "credited"


#: Who cancelled an order.
CancelledBy = Literal["customer", "tenant", "system"]


@dataclass(frozen=True)
class CreditNote:
    credit_note_id: str
    number: str
    invoice_id: str
    order_id: str
    currency: str
    amount: Decimal
    reason: str | None
    issued_at: datetime


@dataclass(frozen=True)
class OrderLine:
    sku: str
    name: str
    unit_price: Decimal
    quantity: int
    line_total: Decimal


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    number: str
    status: InvoiceStatus
    currency: str
    subtotal: Decimal
    discount: Decimal
    tax_rate: Decimal
    tax: Decimal
    total: Decimal
    amount_paid: Decimal
    issued_at: datetime
    due_at: datetime
    paid_at: datetime | None = None
    #: The provider's payment page for this invoice (None: no provider, or not made yet).
    payment_link: str | None = None
    credit_note: CreditNote | None = None

    @property
    def balance(self) -> Decimal:
        return max(self.total - self.amount_paid, Decimal(0))

    def overdue(self, now: datetime) -> bool:
        return self.status is InvoiceStatus.UNPAID and now >= self.due_at


@dataclass(frozen=True)
class Order:
    order_id: str
    tenant_id: str
    account_id: str
    customer_wa_id: str
    status: OrderStatus
    currency: str
    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    total: Decimal
    payment_reference: str
    payment_status: str
    customer_payment_ref: str | None
    cancel_reason: str | None
    created_at: datetime
    updated_at: datetime
    lines: list[OrderLine] = field(default_factory=list)
    invoice: Invoice | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    cancelled_by: CancelledBy | None = None
    discount_code: str | None = None
    #: The answer of the delivery-address WhatsApp Flow (``nfm_reply``), as sent.
    delivery_address: dict[str, Any] | None = None
    #: The customer's id (phone number or BSUID) in clear, for display:
    #: ``customer_wa_id`` is the customer key as stored (a keyed digest).
    customer_id: str | None = None


@dataclass(frozen=True)
class DiscountCode:
    """A code a customer's order can carry: a rate off the subtotal, used at most
    ``max_uses`` times (counted when an order with it is confirmed), until ``expires_at``."""

    code: str
    rate: Decimal
    max_uses: int | None
    uses: int
    min_subtotal: Decimal | None
    expires_at: datetime | None
    created_at: datetime

    def refusal(self, now: datetime, subtotal: Decimal | None = None) -> str | None:
        """Why the code cannot be used now (None: it can)."""
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        if self.max_uses is not None and self.uses >= self.max_uses:
            return "used_up"
        if subtotal is not None and self.min_subtotal is not None and subtotal < self.min_subtotal:
            return "below_minimum"
        return None


def document_number(prefix: str, sequence: int) -> str:
    """A tenant's printed document number: ``INV-000042``, ``CN-000007``."""
    return f"{prefix}-{sequence:06d}"


def invoice_id_for(order_id: str) -> str:
    """An order's invoice id (one invoice per order), also its printed number."""
    return "INV-" + order_id.removeprefix("ORD-")


# --------------------------------------------------------------------- links


class InvoiceLinks:
    """Unguessable invoice PDF URLs: ``<base>/v1/invoices/<id>.pdf?token=<hmac>``.

    The token is an HMAC of the invoice id under the service's link secret, so it is
    the same on every replica and for a re-run of the same message (nothing to store);
    rotating the secret invalidates the links already sent.
    """

    def __init__(self, base_url: str, secret: bytes) -> None:
        self.base_url = base_url.rstrip("/")
        self._secret = secret

    def token(self, invoice_id: str) -> str:
        mac = hmac.new(self._secret, f"invoice:{invoice_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")

    def url(self, invoice_id: str) -> str:
        return f"{self.base_url}/v1/invoices/{invoice_id}.pdf?token={self.token(invoice_id)}"

    def verify(self, invoice_id: str, token: str) -> bool:
        return hmac.compare_digest(self.token(invoice_id).encode(), token.encode())


# --------------------------------------------------------------------- customer texts


def invoice_text(
    *,
    business_name: str,
    order_id: str,
    invoice_number: str,
    lines: list[tuple[str, int, Decimal]],
    subtotal: Decimal,
    discount: Decimal,
    tax_rate: Decimal,
    tax: Decimal,
    total: Decimal,
    currency: str,
    payment_reference: str,
    due_at: datetime,
    payment_instructions: str | None,
    tr: Tr | None = None,
) -> str:
    """The invoice as a WhatsApp text (``lines`` are ``(name, quantity, unit price)``),
    in the customer's language with its formats (``tr``; English by default)."""
    t = tr or Tr()

    def money(amount: Decimal) -> str:
        return t.money(round_money(amount, currency), currency)

    body = "\n".join(
        f"• {t.number(qty)} x {name} @ {money(price)} = {money(price * qty)}"
        for name, qty, price in lines
    )
    rate = t.number((tax_rate * 100).normalize())
    parts = [
        "✅ " + t("Order {order} confirmed.", order=order_id),
        "🧾 *" + t("Invoice {invoice}", invoice=invoice_number) + f"* — {business_name}",
        body,
        t("Subtotal: {amount}", amount=money(subtotal)),
    ]
    if discount:
        parts.append(t("Discount: -{amount}", amount=money(discount)))
    if tax:
        parts.append(t("Tax ({rate}%): {amount}", rate=rate, amount=money(tax)))
    due = (
        f"{due_at:%Y-%m-%d %H:%M} UTC"
        if t.lang == "en"
        else t.datetime(due_at.astimezone(UTC)) + " UTC"
    )
    parts += [
        "*" + t("Total: {amount}", amount=money(total)) + "*",
        "",
        t("Payment reference: {reference}", reference=payment_reference),
        t("Please pay by {due}.", due=due),
    ]
    if payment_instructions:
        parts.append(payment_instructions)
    parts.append(t("When you have paid, send us your payment confirmation number here."))
    return "\n".join(parts)


def status_text(
    status: OrderStatus,
    order_id: str,
    business_name: str,
    reason: str | None = None,
    *,
    tracking: str | None = None,
    t: Tr | None = None,
) -> str:
    """The customer's notice of an order's new status, in ``t``'s language."""
    t = t or tr()
    if status is OrderStatus.PROCESSING:
        return t("📦 Your order {order} is being prepared.", order=order_id)
    if status is OrderStatus.SHIPPED:
        track = " " + t("Tracking: {tracking}.", tracking=tracking) if tracking else ""
        return t("🚚 Your order {order} is on its way.", order=order_id) + track
    if status is OrderStatus.DELIVERED:
        return t(
            "✅ Your order {order} was delivered. "
            "Thank you for shopping with {business}! Type menu to order again.",
            order=order_id,
            business=business_name,
        )
    if status is OrderStatus.CANCELLED:
        why = " " + t("Reason: {reason}.", reason=reason) if reason else ""
        return (
            t("❌ Your order {order} was cancelled.", order=order_id)
            + why
            + " "
            + t("Type menu to shop again.")
        )
    return t("Your order {order} is now {status}.", order=order_id, status=status.value)


def credit_text(
    order_id: str, number: str, amount: Decimal, currency: str, t: Tr | None = None
) -> str:
    t = t or tr()
    return t(
        "💳 Credit note {number}: {amount} you paid for order {order} will be refunded.",
        number=number,
        amount=t.money(amount, currency),
        order=order_id,
    )


def paid_text(order_id: str, amount: Decimal, currency: str, t: Tr | None = None) -> str:
    t = t or tr()
    return t(
        "💰 We received your payment of {amount} for order {order}. "
        "Thank you! We'll let you know when it ships.",
        amount=t.money(amount, currency),
        order=order_id,
    )


def part_paid_text(
    order_id: str, amount: Decimal, balance: Decimal, currency: str, t: Tr | None = None
) -> str:
    t = t or tr()
    return t(
        "💰 We received {amount} for order {order}. Still to pay: {balance}.",
        amount=t.money(amount, currency),
        order=order_id,
        balance=t.money(balance, currency),
    )


def order_ids(tenant_id: str, provider_message_id: str) -> tuple[str, str]:
    """Deterministic order id and payment reference for the message that confirmed an order
    (a re-run after a failed commit produces the same ones, so the same reply text)."""
    return (
        short_id("ORD-", tenant_id, provider_message_id),
        short_id("PAY-", "payment", tenant_id, provider_message_id),
    )
