"""FastAPI dependencies: the service objects and the tenant-admin check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flowchat_conversation.commerce.catalog_service import CatalogService
from flowchat_conversation.commerce.order_service import OrderService
from flowchat_conversation.errors import NotReady
from flowchat_conversation.outreach.service import Outreach
from flowchat_conversation.privacy.export import ExportService
from flowchat_conversation.privacy.service import ErasureService
from flowchat_platform.auth import USER_TOKEN_PREFIX, authenticate, authenticate_user, require_scope
from flowchat_platform.http import ApiError
from flowchat_platform.tenant_client import TenantClient

ADMIN_SCOPE = "admin"
#: The people who manage a tenant's contacts, campaigns and catalog (the console's users);
#: operators (platform staff) may act for any tenant.
ADMIN_ROLES = ("owner", "admin")

_bearer = HTTPBearer(
    auto_error=False,
    description="A tenant API key with the `admin` scope (its own tenant only), a user's "
    "access token (`fca.…`: an owner or admin of the tenant, or an operator), or the "
    "internal service token.",
)


@dataclass
class ApiContext:
    """What the routes need, filled in by the lifespan once the database (and, for
    outreach, the broker) is up; until then the routes answer 503 ``not_ready``."""

    service_token: str | None
    tenants: TenantClient | None = None
    catalog: CatalogService | None = None
    orders: OrderService | None = None
    outreach: Outreach | None = None
    erasures: ErasureService | None = None
    exports: ExportService | None = None


def api_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.api
    return ctx


Context = Annotated[ApiContext, Depends(api_context)]


def catalog_service(ctx: Context) -> CatalogService:
    if ctx.catalog is None:
        raise NotReady("the database")
    return ctx.catalog


Catalog = Annotated[CatalogService, Depends(catalog_service)]


def order_service(ctx: Context) -> OrderService:
    if ctx.orders is None:
        raise NotReady("the database")
    return ctx.orders


Orders = Annotated[OrderService, Depends(order_service)]


def outreach_service(ctx: Context) -> Outreach:
    if ctx.outreach is None:
        raise NotReady("the database")
    return ctx.outreach


OutreachDep = Annotated[Outreach, Depends(outreach_service)]


def erasure_service(ctx: Context) -> ErasureService:
    if ctx.erasures is None:
        raise NotReady("the database")
    return ctx.erasures


Erasures = Annotated[ErasureService, Depends(erasure_service)]


def export_service(ctx: Context) -> ExportService:
    if ctx.exports is None:
        raise NotReady("the database")
    return ctx.exports


Exports = Annotated[ExportService, Depends(export_service)]


async def tenant_admin(
    ctx: Context,
    tenant_id: Annotated[str, Path(min_length=1, max_length=128)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The path's tenant, when the caller is FlowChat itself (service token), holds an
    API key of that tenant with the ``admin`` scope, or is a person (the console's user)
    who is an owner or admin of that tenant, or an operator (another tenant's: 404)."""
    header = f"Bearer {credentials.credentials}" if credentials else None
    if credentials is not None and credentials.credentials.startswith(USER_TOKEN_PREFIX):
        if ctx.tenants is None:
            raise ApiError(503, "not_ready", "users cannot be verified yet")
        user = await authenticate_user(header, users=ctx.tenants)
        user.require_role(*ADMIN_ROLES, tenant_id=tenant_id)
        return tenant_id
    caller = await authenticate(header, service_token=ctx.service_token, tenants=ctx.tenants)
    require_scope(caller, ADMIN_SCOPE, tenant_id)
    return tenant_id


TenantAdmin = Annotated[str, Depends(tenant_admin)]


async def csv_text(request: Request, *, max_bytes: int) -> str:
    """The raw request body of a CSV import as text: 413 ``too_large`` over
    ``max_bytes``, 422 ``invalid_csv`` unless it is UTF-8."""
    body = await request.body()
    if len(body) > max_bytes:
        raise ApiError(413, "too_large", f"the CSV file is larger than {max_bytes} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(422, "invalid_csv", "the CSV file must be UTF-8") from exc
