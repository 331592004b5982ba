"""HTTP edge: orders, invoices, payments and hand-off release (tenant API), and the
invoice PDF download the customers' phones fetch (token in the URL, no auth header).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from flowchat_conversation.commerce.orders import Invoice, Order, OrderStatus
from flowchat_conversation.deps import Orders, TenantAdmin
from flowchat_platform.http import ApiError, PageCursor, PageLimit
from flowchat_platform.pagination import Page, decode_cursor, page_of

router = APIRouter(prefix="/v1/tenants/{tenant_id}")
public = APIRouter()

OrderId = Annotated[str, Path(min_length=1, max_length=64)]


class LineOut(BaseModel):
    sku: str
    name: str
    unit_price: Decimal
    quantity: int
    line_total: Decimal


class CreditNoteOut(BaseModel):
    credit_note_id: str
    number: str
    currency: str
    amount: Decimal
    reason: str | None
    issued_at: datetime


class InvoiceOut(BaseModel):
    invoice_id: str
    number: str
    status: str
    currency: str
    subtotal: Decimal
    discount: Decimal
    tax_rate: Decimal
    tax: Decimal
    total: Decimal
    amount_paid: Decimal
    balance: Decimal
    issued_at: datetime
    due_at: datetime
    paid_at: datetime | None
    overdue: bool
    pdf_url: str | None = None
    #: The provider's payment page (when a provider is configured).
    payment_link: str | None = None
    #: Issued when the order was cancelled after payments.
    credit_note: CreditNoteOut | None = None


class OrderOut(BaseModel):
    order_id: str
    account_id: str
    customer_wa_id: str
    status: str
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
    lines: list[LineOut]
    invoice: InvoiceOut | None
    tracking_number: str | None = None
    tracking_url: str | None = None
    #: Who cancelled: ``customer``, ``tenant`` or ``system`` (unpaid in time).
    cancelled_by: str | None = None
    discount_code: str | None = None
    #: The delivery-address WhatsApp Flow's answer (``nfm_reply``), as the customer sent it.
    delivery_address: dict[str, Any] | None = None


class OrderPage(Page[OrderOut]):
    """Orders, newest first (overdue ones: oldest first)."""


TrackingNumber = Annotated[str, StringConstraints(strip_whitespace=True, max_length=128)]
TrackingUrl = Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2000)]


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: OrderStatus
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None
    #: With ``shipped``: the carrier's tracking number and page (sent to the customer,
    #: the page as a CTA-URL button).
    tracking_number: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=128)] | None
    ) = None
    tracking_url: (
        Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2000)] | None
    ) = None


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)
    ]
    amount: Annotated[Decimal, Field(gt=0, le=Decimal("1e12"), allow_inf_nan=False)]


class PaymentOut(BaseModel):
    result: Literal["added", "duplicate"]
    notification: str
    order: OrderOut


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None


class ReleaseOut(BaseModel):
    released: list[str]


def _invoice_out(invoice: Invoice, orders: Orders) -> InvoiceOut:
    return InvoiceOut(
        invoice_id=invoice.invoice_id,
        number=invoice.number,
        status=invoice.status.value,
        currency=invoice.currency,
        subtotal=invoice.subtotal,
        discount=invoice.discount,
        tax_rate=invoice.tax_rate,
        tax=invoice.tax,
        total=invoice.total,
        amount_paid=invoice.amount_paid,
        balance=invoice.balance,
        issued_at=invoice.issued_at,
        due_at=invoice.due_at,
        paid_at=invoice.paid_at,
        overdue=invoice.overdue(datetime.now(UTC)),
        pdf_url=orders.links.url(invoice.invoice_id) if orders.links else None,
        payment_link=invoice.payment_link,
        credit_note=(
            CreditNoteOut(
                credit_note_id=invoice.credit_note.credit_note_id,
                number=invoice.credit_note.number,
                currency=invoice.credit_note.currency,
                amount=invoice.credit_note.amount,
                reason=invoice.credit_note.reason,
                issued_at=invoice.credit_note.issued_at,
            )
            if invoice.credit_note
            else None
        ),
    )


def _order_out(order: Order, orders: Orders) -> OrderOut:
    return OrderOut(
        order_id=order.order_id,
        account_id=order.account_id,
        customer_wa_id=order.customer_id or order.customer_wa_id,
        status=order.status.value,
        currency=order.currency,
        subtotal=order.subtotal,
        discount=order.discount,
        tax=order.tax,
        total=order.total,
        payment_reference=order.payment_reference,
        payment_status=order.payment_status,
        customer_payment_ref=order.customer_payment_ref,
        cancel_reason=order.cancel_reason,
        created_at=order.created_at,
        updated_at=order.updated_at,
        lines=[
            LineOut(
                sku=line.sku,
                name=line.name,
                unit_price=line.unit_price,
                quantity=line.quantity,
                line_total=line.line_total,
            )
            for line in order.lines
        ],
        invoice=_invoice_out(order.invoice, orders) if order.invoice else None,
        tracking_number=order.tracking_number,
        tracking_url=order.tracking_url,
        cancelled_by=order.cancelled_by,
        discount_code=order.discount_code,
        delivery_address=order.delivery_address,
    )


@router.get("/orders", tags=["orders"])
async def list_orders(
    tenant_id: TenantAdmin,
    orders: Orders,
    status: OrderStatus | None = None,
    customer: Annotated[str | None, Query(max_length=140)] = None,
    overdue: bool = False,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> OrderPage:
    """Newest first (drafts included: one per open cart); ``overdue=true``: unpaid
    invoices past their due time (oldest first)."""
    key = decode_cursor(cursor, datetime, str)
    after = (key[0], key[1]) if key else None
    if overdue:
        found = await orders.overdue(tenant_id, limit=limit + 1, after=after)
    else:
        found = await orders.list_orders(
            tenant_id, status=status, customer_wa_id=customer, limit=limit + 1, after=after
        )
    items, next_cursor = page_of(found, limit, lambda o: (o.created_at, o.order_id))
    return OrderPage(items=[_order_out(o, orders) for o in items], next_cursor=next_cursor)


@router.get("/orders/{order_id}", tags=["orders"])
async def get_order(tenant_id: TenantAdmin, orders: Orders, order_id: OrderId) -> OrderOut:
    return _order_out(await orders.get(tenant_id, order_id), orders)


@router.post(
    "/orders/{order_id}/status",
    tags=["orders"],
    responses={409: {"description": "The order cannot go to that status"}},
)
async def change_status(
    tenant_id: TenantAdmin, orders: Orders, order_id: OrderId, body: StatusIn
) -> OrderOut:
    if body.status is OrderStatus.CANCELLED and not body.reason:
        raise ApiError(422, "reason_required", "a cancellation needs a reason")
    order = await orders.change_status(
        tenant_id,
        order_id,
        body.status,
        reason=body.reason,
        tracking_number=body.tracking_number,
        tracking_url=body.tracking_url,
    )
    return _order_out(order, orders)


@router.post(
    "/orders/{order_id}/payments",
    tags=["orders"],
    responses={409: {"description": "The payment does not fit the order"}},
)
async def record_payment(
    tenant_id: TenantAdmin, orders: Orders, order_id: OrderId, body: PaymentIn
) -> PaymentOut:
    outcome = await orders.record_payment(
        tenant_id, order_id, reference=body.reference, amount=body.amount
    )
    return PaymentOut(
        result=outcome.result,
        notification=outcome.notification,
        order=_order_out(outcome.order, orders),
    )


@router.post("/conversations/{wa_id}/release", tags=["conversations"])
async def release_conversation(
    tenant_id: TenantAdmin,
    orders: Orders,
    wa_id: Annotated[
        str, Path(pattern=r"^(\+?[1-9][0-9]{6,14}|[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128})$")
    ],
    body: ReleaseIn | None = None,
) -> ReleaseOut:
    """End the operator hand-off with a customer: the bot speaks again."""
    released = await orders.release(
        tenant_id, wa_id.lstrip("+"), account_id=body.account_id if body else None
    )
    return ReleaseOut(released=released)


@public.get(
    "/v1/invoices/{invoice_id}.pdf",
    tags=["invoices"],
    response_class=Response,
    responses={
        200: {
            "description": "The invoice as a PDF document",
            "content": {
                "application/pdf": {
                    "schema": {"type": "string", "format": "binary"},
                    "example": "%PDF-1.4 ...",
                }
            },
        }
    },
)
async def invoice_pdf(
    orders: Orders,
    invoice_id: Annotated[str, Path(min_length=1, max_length=64)],
    token: Annotated[str, Query(min_length=1, max_length=128)],
) -> Response:
    """The invoice PDF; the token (from the link sent to the customer) is the only key."""
    found = await orders.invoice_pdf(invoice_id, token)
    if found is None:
        raise ApiError(404, "not_found", "no such invoice")
    filename, pdf = found
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="{filename}"',
            "Cache-Control": "private, max-age=300",
        },
    )
