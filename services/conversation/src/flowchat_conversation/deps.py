"""FastAPI dependencies: the service objects and the tenant-admin check."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from flowchat_platform.errors import UpstreamError
from flowchat_platform.http import ApiError
from flowchat_platform.tenant_client import TenantClient

from flowchat_conversation.service import CatalogService, OrderService


@dataclass
class ApiContext:
    """What the routes need, filled in by the lifespan once the database is up."""

    service_token: str | None
    tenants: TenantClient | None = None
    catalog: CatalogService | None = None
    orders: OrderService | None = None


def api_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.api
    return ctx


Context = Annotated[ApiContext, Depends(api_context)]


def catalog_service(ctx: Context) -> CatalogService:
    if ctx.catalog is None:
        raise ApiError(503, "not_ready", "the database is not connected yet")
    return ctx.catalog


Catalog = Annotated[CatalogService, Depends(catalog_service)]


def order_service(ctx: Context) -> OrderService:
    if ctx.orders is None:
        raise ApiError(503, "not_ready", "the database is not connected yet")
    return ctx.orders


Orders = Annotated[OrderService, Depends(order_service)]


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


async def tenant_admin(
    ctx: Context,
    tenant_id: Annotated[str, Path(min_length=1, max_length=128)],
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    """The path's tenant, when the caller is FlowChat itself (service token) or holds an
    API key of that tenant with the ``admin`` scope."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("a Bearer token is required")
    if ctx.service_token and hmac.compare_digest(token.encode(), ctx.service_token.encode()):
        return tenant_id
    if ctx.tenants is None:
        raise ApiError(503, "not_ready", "the tenant service client is not ready")
    try:
        info = await ctx.tenants.api_key(token)
    except UpstreamError as exc:
        raise ApiError(503, "tenant_unavailable", "cannot verify the API key now") from exc
    if info is None:
        raise _unauthorized("unknown or revoked API key")
    if info.tenant_id != tenant_id or "admin" not in info.scopes:
        raise ApiError(403, "forbidden", "this key may not administer this tenant")
    return tenant_id


TenantAdmin = Annotated[str, Depends(tenant_admin)]
