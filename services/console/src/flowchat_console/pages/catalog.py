"""Catalog and orders: products (create, edit, CSV import), orders with their status
changes, and each order's invoice PDF (fetched through the console: the browser talks
to the console only).

Upstream: the conversation service with the user's token (owners, admins, operators):
``/v1/tenants/{t}/products`` (GET, POST one, POST ``import``), ``/v1/tenants/{t}/orders``
(GET, POST ``{id}/status``) and ``/v1/invoices/{id}.pdf?token=``.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from flowchat_console.deps import CurrentUser, UpstreamDep
from flowchat_console.pages import _kit
from flowchat_console.pages.contacts import import_file
from flowchat_console.render import render
from flowchat_console.upstream import Upstream, error_of

router = APIRouter()
WRITE = "catalog.write"
#: Where an order may go next (the conversation service enforces the same table).
NEXT: dict[str, list[str]] = {
    "draft": ["confirmed", "cancelled"],
    "confirmed": ["processing", "cancelled"],
    "processing": ["shipped", "cancelled"],
    "shipped": ["delivered"],
}


async def _products(up: Upstream, tenant: str) -> dict[str, Any]:
    page: dict[str, Any] = await up.get(
        "conversation", f"/v1/tenants/{tenant}/products", {"limit": 100}
    )
    return page


@router.get("/catalog", include_in_schema=False)
async def catalog(
    request: Request, user: CurrentUser, up: UpstreamDep, edit: str | None = None
) -> HTMLResponse:
    _kit.need(user, WRITE)
    tenant = _kit.tenant_of(request, user)
    page = await _products(up, tenant)
    products = _kit.items(page)
    editing = next((p for p in products if p["sku"] == edit), None) if edit else None
    return render(
        request,
        "catalog/products.html",
        {"products": products, "editing": editing, "report": None},
    )


@router.post("/catalog/products", include_in_schema=False)
async def save_product(
    request: Request,
    user: CurrentUser,
    up: UpstreamDep,
    sku: Annotated[str, Form()],
    name: Annotated[str, Form()],
    price: Annotated[str, Form()],
    category: Annotated[str, Form()] = "General",
    stock: Annotated[int, Form()] = 0,
    description: Annotated[str, Form()] = "",
    available: Annotated[str, Form()] = "",
) -> Response:
    """Create a product, or change the one with this SKU."""
    _kit.need(user, WRITE)
    tenant = _kit.tenant_of(request, user)
    product = {
        "sku": sku,
        "name": name,
        "price": price,
        "category": category or "General",
        "stock": stock,
        "description": description,
        "available": bool(available),
    }
    await up.post("conversation", f"/v1/tenants/{tenant}/products", product)
    return _kit.back("/catalog")


@router.post("/catalog/import", include_in_schema=False)
async def import_products(
    request: Request, user: CurrentUser, up: UpstreamDep, file: Annotated[UploadFile, File()]
) -> HTMLResponse:
    _kit.need(user, WRITE)
    tenant = _kit.tenant_of(request, user)
    report = await import_file(up, f"/v1/tenants/{tenant}/products/import", file)
    page = await _products(up, tenant)
    return render(
        request,
        "catalog/products.html",
        {"products": _kit.items(page), "editing": None, "report": report},
    )


def _pdf_link(order: dict[str, Any]) -> str | None:
    """The console's own link to an order's invoice PDF (its token kept)."""
    invoice = order.get("invoice") or {}
    url = invoice.get("pdf_url")
    if not url:
        return None
    token = parse_qs(urlsplit(url).query).get("token", [""])[0]
    return f"/orders/invoices/{invoice['invoice_id']}.pdf?token={token}"


@router.get("/orders", include_in_schema=False)
async def orders(
    request: Request, user: CurrentUser, up: UpstreamDep, status: str | None = None
) -> HTMLResponse:
    _kit.need(user, WRITE)
    tenant = _kit.tenant_of(request, user)
    page = await up.get(
        "conversation", f"/v1/tenants/{tenant}/orders", {"limit": 50, "status": status or None}
    )
    rows = [{**o, "pdf": _pdf_link(o), "next": NEXT.get(o["status"], [])} for o in _kit.items(page)]
    return render(request, "catalog/orders.html", {"orders": rows, "status": status or ""})


@router.post("/orders/{order_id}/status", include_in_schema=False)
async def order_status(
    request: Request,
    user: CurrentUser,
    up: UpstreamDep,
    order_id: str,
    status: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    _kit.need(user, WRITE)
    tenant = _kit.tenant_of(request, user)
    await up.post(
        "conversation",
        f"/v1/tenants/{tenant}/orders/{order_id}/status",
        {"status": status, "reason": reason or None},
    )
    return _kit.back("/orders")


@router.get("/orders/invoices/{invoice_id}.pdf", include_in_schema=False)
async def invoice_pdf(user: CurrentUser, up: UpstreamDep, invoice_id: str, token: str) -> Response:
    _kit.need(user, WRITE)
    answer = await up.response(
        "GET", "conversation", f"/v1/invoices/{invoice_id}.pdf", params={"token": token}
    )
    if answer.status_code >= 400:
        raise error_of("conversation", answer)
    return Response(
        answer.content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{invoice_id}.pdf"'},
    )
