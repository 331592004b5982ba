"""HTTP edge: invoices as a resource (JSON and PDF), discount codes, payment links and
the payment provider's signed webhook."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from flowchat_conversation.commerce.orders import DiscountCode, InvoiceStatus, Order
from flowchat_conversation.commerce.routes.orders import InvoiceOut as InvoiceBody
from flowchat_conversation.commerce.routes.orders import OrderId, OrderOut, _invoice_out, _order_out
from flowchat_conversation.deps import Orders, TenantAdmin
from flowchat_platform.http import PageCursor, PageLimit
from flowchat_platform.pagination import Page, decode_cursor, page_of

router = APIRouter(prefix="/v1/tenants/{tenant_id}")
public = APIRouter()

InvoiceId = Annotated[str, Path(min_length=1, max_length=64)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]


class InvoiceOut(InvoiceBody):
    """An invoice with its order's id and customer."""

    order_id: str
    customer_wa_id: str
    order_status: str


class InvoicePage(Page[InvoiceOut]):
    """Invoices, newest first."""


class DiscountCodeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"rate": "0.1", "max_uses": 100, "expires_at": "2027-01-31T23:59:59Z"}]
        },
    )

    #: The share off the subtotal (0.1 = 10 %).
    rate: Annotated[Decimal, Field(gt=0, lt=1, max_digits=7, decimal_places=6)]
    max_uses: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    min_subtotal: Annotated[Decimal, Field(ge=0, le=Decimal("1e12"))] | None = None
    expires_at: datetime | None = None


class DiscountCodeOut(BaseModel):
    code: str
    rate: Decimal
    max_uses: int | None
    uses: int
    min_subtotal: Decimal | None
    expires_at: datetime | None
    created_at: datetime


class DiscountCodePage(Page[DiscountCodeOut]):
    """Discount codes, by code."""


class ApplyCodeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"code": "SPRING10"}]}
    )

    #: None takes the code off.
    code: Code | None


class WebhookOut(BaseModel):
    result: Literal["added", "duplicate", "ignored"]


def _code_out(code: DiscountCode) -> DiscountCodeOut:
    return DiscountCodeOut(
        code=code.code,
        rate=code.rate,
        max_uses=code.max_uses,
        uses=code.uses,
        min_subtotal=code.min_subtotal,
        expires_at=code.expires_at,
        created_at=code.created_at,
    )


def _full_invoice(order: Order, orders: Orders) -> InvoiceOut:
    assert order.invoice is not None
    body = _invoice_out(order.invoice, orders)
    return InvoiceOut(
        **body.model_dump(),
        order_id=order.order_id,
        customer_wa_id=order.customer_id or order.customer_wa_id,
        order_status=order.status.value,
    )


@router.get("/invoices", tags=["invoices"])
async def list_invoices(
    tenant_id: TenantAdmin,
    orders: Orders,
    status: InvoiceStatus | None = None,
    overdue: bool = False,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> InvoicePage:
    """Newest first; ``overdue=true``: unpaid past their due time."""
    key = decode_cursor(cursor, datetime, str)
    after = (key[0], key[1]) if key else None
    found = await orders.list_invoices(
        tenant_id, status=status, overdue=overdue, limit=limit + 1, after=after
    )
    items, next_cursor = page_of(found, limit, lambda o: (o.created_at, o.order_id))
    return InvoicePage(items=[_full_invoice(o, orders) for o in items], next_cursor=next_cursor)


@router.get("/invoices/{invoice_id}", tags=["invoices"])
async def get_invoice(tenant_id: TenantAdmin, orders: Orders, invoice_id: InvoiceId) -> InvoiceOut:
    """An invoice by id or printed number (``INV-000042``)."""
    return _full_invoice(await orders.get_invoice(tenant_id, invoice_id), orders)


@router.get(
    "/invoices/{invoice_id}/pdf",
    tags=["invoices"],
    response_class=Response,
    responses={
        200: {
            "description": "The invoice as a PDF document (rendered on demand)",
            "content": {
                "application/pdf": {
                    "schema": {"type": "string", "format": "binary"},
                    "example": "%PDF-1.4 ...",
                }
            },
        }
    },
)
async def invoice_pdf(tenant_id: TenantAdmin, orders: Orders, invoice_id: InvoiceId) -> Response:
    filename, pdf = await orders.tenant_invoice_pdf(tenant_id, invoice_id)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{filename}"'},
    )


@router.put("/discount-codes/{code}", tags=["invoices"])
async def put_discount_code(
    tenant_id: TenantAdmin,
    orders: Orders,
    code: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")],
    body: DiscountCodeIn,
) -> DiscountCodeOut:
    """Create or change a discount code (its use count is kept)."""
    stored = await orders.put_discount_code(
        tenant_id,
        DiscountCode(
            code=code,
            rate=body.rate,
            max_uses=body.max_uses,
            uses=0,
            min_subtotal=body.min_subtotal,
            expires_at=body.expires_at,
            created_at=datetime.now(UTC),
        ),
    )
    return _code_out(stored)


@router.get("/discount-codes", tags=["invoices"])
async def list_discount_codes(
    tenant_id: TenantAdmin, orders: Orders, limit: PageLimit = 50, cursor: PageCursor = None
) -> DiscountCodePage:
    key = decode_cursor(cursor, str)
    found = await orders.list_discount_codes(
        tenant_id, limit=limit + 1, after=key[0] if key else None
    )
    items, next_cursor = page_of(found, limit, lambda c: (c.code,))
    return DiscountCodePage(items=[_code_out(c) for c in items], next_cursor=next_cursor)


@router.post(
    "/orders/{order_id}/discount-code",
    tags=["orders"],
    responses={409: {"description": "Unknown, expired or used-up code, or not a draft"}},
)
async def apply_discount_code(
    tenant_id: TenantAdmin, orders: Orders, order_id: OrderId, body: ApplyCodeIn
) -> OrderOut:
    """Put a discount code on a draft order (counted when the customer confirms)."""
    return _order_out(await orders.apply_discount_code(tenant_id, order_id, body.code), orders)


@router.post(
    "/orders/{order_id}/payment-link",
    tags=["orders"],
    responses={409: {"description": "No payment provider, or nothing to pay"}},
)
async def payment_link(tenant_id: TenantAdmin, orders: Orders, order_id: OrderId) -> OrderOut:
    """Make the invoice's payment link (once) and send it to the customer as a CTA-URL
    button (inside the 24 h window)."""
    return _order_out(await orders.payment_link(tenant_id, order_id), orders)


@public.post(
    "/v1/payments/webhook",
    tags=["payments"],
    responses={401: {"description": "Missing or wrong signature"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object"},
                    "example": {
                        "id": "evt_1",
                        "type": "payment.succeeded",
                        "data": {
                            "payment_id": "pay_1",
                            "invoice_id": "INV-ABCDEFGHIJ",
                            "amount": "102.13",
                            "currency": "USD",
                        },
                    },
                }
            },
        }
    },
)
async def payment_webhook(
    request: Request,
    orders: Orders,
    x_payment_signature: Annotated[str | None, Header()] = None,
) -> WebhookOut:
    """The payment provider's event, signed ``t=<unix>,v1=<hex HMAC-SHA256(secret,
    "<t>.<body>")>``: a succeeded payment marks the invoice paid (idempotent)."""
    body = await request.body()
    result = await orders.provider_webhook(body, x_payment_signature, now=time.time())
    return WebhookOut(result=result)


# ---------------------------------------------------------------- native commerce


class ProductsIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "account_id": "acc_1",
                    "skus": ["CEM-50", "NAIL-1"],
                    "body": "Our best sellers this week",
                }
            ]
        },
    )

    account_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    #: One SKU: a single-product message; several (up to 30): a multi-product message;
    #: none: the catalog message.
    skus: Annotated[
        list[Annotated[str, StringConstraints(max_length=64)]], Field(max_length=30)
    ] = []
    body: Annotated[str, StringConstraints(min_length=1, max_length=1024)] = "Have a look:"
    header: Annotated[str, StringConstraints(min_length=1, max_length=60)] | None = None


class SentOut(BaseModel):
    #: ``sent``, or ``needs_template`` outside the customer's 24 h window (not sent).
    notification: str


CustomerId = Annotated[
    str, Path(pattern=r"^(\+?[1-9][0-9]{6,14}|[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128})$")
]


@router.post(
    "/conversations/{wa_id}/products",
    tags=["conversations"],
    responses={409: {"description": "The products are not in a connected Meta catalog"}},
)
async def send_products(
    tenant_id: TenantAdmin, orders: Orders, wa_id: CustomerId, body: ProductsIn
) -> SentOut:
    """Send WhatsApp's own product messages from the connected catalog (products with
    ``catalog_id`` and ``retailer_id``)."""
    fate = await orders.send_products(
        tenant_id,
        body.account_id,
        wa_id.lstrip("+"),
        body.skus,
        body=body.body,
        header=body.header,
    )
    return SentOut(notification=fate)


@router.post(
    "/orders/{order_id}/address-flow",
    tags=["orders"],
    responses={409: {"description": "No address Flow configured, or the order is closed"}},
)
async def send_address_flow(tenant_id: TenantAdmin, orders: Orders, order_id: OrderId) -> SentOut:
    """Ask the customer for the delivery address with the tenant's WhatsApp Flow
    (``address_flow_id``); the answer is stored on the order (``delivery_address``)."""
    return SentOut(notification=await orders.send_address_flow(tenant_id, order_id))
