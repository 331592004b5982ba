"""Catalog and orders: products (create, edit, CSV import), orders with their status
changes, and each order's invoice PDF (fetched through the console: the browser talks
to the console only).

Upstream: the conversation service, ``/v1/tenants/{t}/products`` (GET, POST one,
POST ``import``), ``/v1/tenants/{t}/orders`` (GET, POST ``{id}/status``) and
``/v1/invoices/{id}.pdf?token=``; owners and admins.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from flowchat_console.pages import _kit

router = APIRouter()
AREA = "catalog"
MAX_CSV_BYTES = 20 * 1024 * 1024
#: Where an order may go next (the conversation service enforces the same table).
NEXT: dict[str, list[str]] = {
    "draft": ["confirmed", "cancelled"],
    "confirmed": ["processing", "cancelled"],
    "processing": ["shipped", "cancelled"],
    "shipped": ["delivered"],
}


async def _products(request: Request, user: Any, tenant: str) -> dict[str, Any]:
    page: dict[str, Any] = await _kit.call(
        request, user, "conversation", "GET", f"/v1/tenants/{tenant}/products",
        as_service=True, params={"limit": "100"},
    )
    return page


@router.get("/catalog", response_class=HTMLResponse)
async def catalog(request: Request, edit: str | None = None) -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    page = await _products(request, user, tenant)
    products = _kit.items(page)
    editing = next((p for p in products if p["sku"] == edit), None) if edit else None
    return _kit.render(request, "catalog/products.html", {
        "products": products, "editing": editing, "report": None,
    })


@router.post("/catalog/products")
async def save_product(
    request: Request,
    sku: Annotated[str, Form()],
    name: Annotated[str, Form()],
    price: Annotated[str, Form()],
    category: Annotated[str, Form()] = "General",
    stock: Annotated[int, Form()] = 0,
    description: Annotated[str, Form()] = "",
    available: Annotated[str, Form()] = "",
) -> Response:
    """Create a product, or change the one with this SKU."""
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    await _kit.call(
        request, user, "conversation", "POST", f"/v1/tenants/{tenant}/products",
        as_service=True,
        json={"sku": sku, "name": name, "price": price, "category": category or "General",
              "stock": stock, "description": description, "available": bool(available)},
    )
    return _kit.back("/catalog")


@router.post("/catalog/import", response_class=HTMLResponse)
async def import_products(request: Request, file: Annotated[UploadFile, File()]) -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    report = await _kit.call(
        request, user, "conversation", "POST", f"/v1/tenants/{tenant}/products/import",
        as_service=True, content=await file.read(MAX_CSV_BYTES + 1),
        headers={"Content-Type": "text/csv"},
    )
    page = await _products(request, user, tenant)
    return _kit.render(request, "catalog/products.html", {
        "products": _kit.items(page), "editing": None, "report": report,
    })


def _pdf_link(order: dict[str, Any]) -> str | None:
    """The console's own link to an order's invoice PDF (its token kept)."""
    invoice = order.get("invoice") or {}
    url = invoice.get("pdf_url")
    if not url:
        return None
    token = parse_qs(urlsplit(url).query).get("token", [""])[0]
    return f"/orders/invoices/{invoice['invoice_id']}.pdf?token={token}"


@router.get("/orders", response_class=HTMLResponse)
async def orders(request: Request, status: str | None = None) -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    params = {"limit": "50", **({"status": status} if status else {})}
    page = await _kit.call(
        request, user, "conversation", "GET", f"/v1/tenants/{tenant}/orders",
        as_service=True, params=params,
    )
    rows = [{**o, "pdf": _pdf_link(o), "next": NEXT.get(o["status"], [])}
            for o in _kit.items(page)]
    return _kit.render(request, "catalog/orders.html", {"orders": rows, "status": status or ""})


@router.post("/orders/{order_id}/status")
async def order_status(
    request: Request, order_id: str, status: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    await _kit.call(
        request, user, "conversation", "POST", f"/v1/tenants/{tenant}/orders/{order_id}/status",
        as_service=True, json={"status": status, "reason": reason or None},
    )
    return _kit.back("/orders")


@router.get("/orders/invoices/{invoice_id}.pdf")
async def invoice_pdf(request: Request, invoice_id: str, token: str) -> Response:
    user = _kit.require(request, AREA)
    answer = await _kit.call(
        request, user, "conversation", "GET", f"/v1/invoices/{invoice_id}.pdf",
        as_service=True, params={"token": token}, raw=True,
    )
    return Response(
        answer.content, media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{invoice_id}.pdf"'},
    )
