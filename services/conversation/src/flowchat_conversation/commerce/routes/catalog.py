"""HTTP edge: the tenant API for bot settings and the catalog."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from flowchat_conversation.commerce.domain import BotSettings, Product, ProductIn
from flowchat_conversation.deps import Catalog, TenantAdmin, csv_text
from flowchat_platform.http import ApiError, PageCursor, PageLimit
from flowchat_platform.openapi import csv_request_body
from flowchat_platform.pagination import Page, decode_cursor, page_of

router = APIRouter(prefix="/v1/tenants/{tenant_id}", tags=["catalog"])

MAX_CSV_BYTES = 5 * 1024 * 1024


class ProductPage(Page[Product]):
    """Products by category, name and SKU."""


class ProductsWritten(BaseModel):
    products: list[Product]
    created: int
    updated: int


@router.get("/settings")
async def get_settings(tenant_id: TenantAdmin, catalog: Catalog) -> BotSettings:
    return await catalog.settings(tenant_id)


@router.put("/settings")
async def put_settings(tenant_id: TenantAdmin, catalog: Catalog, body: BotSettings) -> BotSettings:
    return await catalog.put_settings(tenant_id, body)


@router.post("/products")
async def add_products(
    tenant_id: TenantAdmin, catalog: Catalog, body: ProductIn | list[ProductIn]
) -> ProductsWritten:
    items = body if isinstance(body, list) else [body]
    if not items:
        raise ApiError(422, "invalid_request", "no products given")
    if len(items) > 1000:
        raise ApiError(413, "too_many_products", "at most 1000 products per request")
    products, created, updated = await catalog.add_products(tenant_id, items)
    return ProductsWritten(products=products, created=created, updated=updated)


@router.get("/products")
async def list_products(
    tenant_id: TenantAdmin,
    catalog: Catalog,
    category: Annotated[str | None, Query(max_length=100)] = None,
    limit: PageLimit = 100,
    cursor: PageCursor = None,
) -> ProductPage:
    after = decode_cursor(cursor, str, str, str)
    rows = await catalog.list_products(tenant_id, category=category, limit=limit + 1, after=after)
    items, next_cursor = page_of(rows, limit, lambda p: (p.category, p.name, p.sku))
    return ProductPage(items=items, next_cursor=next_cursor)


class RejectedProduct(BaseModel):
    line: int
    sku: str | None
    errors: list[str]


class ProductImport(BaseModel):
    received: int
    imported: int
    created: int
    updated: int
    rejected: list[RejectedProduct]


@router.post(
    "/products/import",
    openapi_extra=csv_request_body(
        "sku,name,price,currency,category,stock\nCEM-50,Cement 50kg,10.50,USD,Build,120\n",
        f"A UTF-8 CSV file (header row first), at most {MAX_CSV_BYTES} bytes",
    ),
)
async def import_products(
    tenant_id: TenantAdmin, catalog: Catalog, request: Request
) -> ProductImport:
    """Import a CSV file (the raw request body); answers a report of rejected rows."""
    text = await csv_text(request, max_bytes=MAX_CSV_BYTES)
    report = await catalog.import_csv(tenant_id, text)
    return ProductImport(
        received=report.received,
        imported=report.created + report.updated,
        created=report.created,
        updated=report.updated,
        rejected=[
            RejectedProduct(line=r.line, sku=r.sku, errors=r.errors) for r in report.rejected
        ],
    )
