"""HTTP edge: the tenant API for bot settings and the catalog."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from flowchat_conversation.commerce.domain import BotSettings, Product, ProductIn
from flowchat_conversation.deps import Catalog, TenantAdmin, csv_text
from flowchat_platform.http import ApiError

router = APIRouter(prefix="/v1/tenants/{tenant_id}")

MAX_CSV_BYTES = 5 * 1024 * 1024


class ProductsOut(BaseModel):
    products: list[Product]


class ProductsWritten(ProductsOut):
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
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> ProductsOut:
    products = await catalog.list_products(tenant_id, category=category, limit=limit, offset=offset)
    return ProductsOut(products=products)


@router.post("/products/import")
async def import_products(tenant_id: TenantAdmin, catalog: Catalog, request: Request) -> Any:
    """Import a CSV file (the raw request body); answers a report of rejected rows."""
    text = await csv_text(request, max_bytes=MAX_CSV_BYTES)
    report = await catalog.import_csv(tenant_id, text)
    return {
        "received": report.received,
        "imported": report.created + report.updated,
        "created": report.created,
        "updated": report.updated,
        "rejected": [{"line": r.line, "sku": r.sku, "errors": r.errors} for r in report.rejected],
    }
