"""Public API: ``/v1/tenants…`` with the operator key or a tenant's admin API key.

No response model here has a field for a secret value: accounts say which
secrets are set (``secrets_set``), never what they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response

from flowchat_platform.http import PageCursor, PageLimit
from flowchat_platform.pagination import decode_cursor, page_of
from flowchat_tenant.deps import CurrentPrincipal, Service
from flowchat_tenant.models import (
    Account,
    AccountCreate,
    AccountPage,
    AccountUpdate,
    ApiKey,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPage,
    BusinessProfileUpdate,
    Tenant,
    TenantCreate,
    TenantPage,
    TenantUpdate,
)

router = APIRouter(prefix="/v1/tenants")
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, unknown or revoked key"},
    403: {"description": "the key may not do this (operator only, or no admin scope)"},
    404: {"description": "unknown, or another tenant's"},
    422: {"description": "invalid input; details name the field"},
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {"description": "the number (phone number id, Twilio number) is already registered"},
}


@router.post("", status_code=201, tags=["tenants"], responses=_ERRORS)
async def create_tenant(service: Service, who: CurrentPrincipal, body: TenantCreate) -> Tenant:
    """Create a tenant (operator only)."""
    return await service.create_tenant(who, body)


@router.get("", tags=["tenants"], responses=_ERRORS)
async def list_tenants(
    service: Service, who: CurrentPrincipal, limit: PageLimit = 100, cursor: PageCursor = None
) -> TenantPage:
    """Every tenant for the operator, by id; its own tenant for an admin key."""
    after = decode_cursor(cursor, str)
    rows = await service.list_tenants(who, limit=limit + 1, after=after[0] if after else None)
    items, next_cursor = page_of(rows, limit, lambda t: (t.tenant_id,))
    return TenantPage(items=items, next_cursor=next_cursor)


@router.get("/{tenant_id}", tags=["tenants"], responses=_ERRORS)
async def get_tenant(service: Service, who: CurrentPrincipal, tenant_id: str) -> Tenant:
    return await service.get_tenant(who, tenant_id)


@router.patch("/{tenant_id}", tags=["tenants"], responses=_ERRORS)
async def update_tenant(
    service: Service, who: CurrentPrincipal, tenant_id: str, body: TenantUpdate
) -> Tenant:
    """Change settings; ``status`` (suspend, reactivate) is for the operator only."""
    return await service.update_tenant(who, tenant_id, body)


@router.post("/{tenant_id}/accounts", status_code=201, tags=["accounts"], responses=_CONFLICT)
async def create_account(
    service: Service,
    who: CurrentPrincipal,
    tenant_id: str,
    body: Annotated[AccountCreate, Body()],
) -> Account:
    """Register a number. A Meta number is read from the provider with its token first."""
    return await service.create_account(who, tenant_id, body)


@router.get("/{tenant_id}/accounts", tags=["accounts"], responses=_ERRORS)
async def list_accounts(
    service: Service,
    who: CurrentPrincipal,
    tenant_id: str,
    limit: PageLimit = 100,
    cursor: PageCursor = None,
) -> AccountPage:
    """The tenant's numbers, oldest first."""
    after = decode_cursor(cursor, datetime, str)
    rows = await service.list_accounts(who, tenant_id, limit=limit + 1, after=after)
    items, next_cursor = page_of(rows, limit, lambda a: (a.created_at, a.account_id))
    return AccountPage(items=items, next_cursor=next_cursor)


@router.get("/{tenant_id}/accounts/{account_id}", tags=["accounts"], responses=_ERRORS)
async def get_account(
    service: Service, who: CurrentPrincipal, tenant_id: str, account_id: str
) -> Account:
    return await service.get_account(who, tenant_id, account_id)


@router.patch("/{tenant_id}/accounts/{account_id}", tags=["accounts"], responses=_CONFLICT)
async def update_account(
    service: Service, who: CurrentPrincipal, tenant_id: str, account_id: str, body: AccountUpdate
) -> Account:
    """Change fields or replace secrets; a new access token is validated again."""
    return await service.update_account(who, tenant_id, account_id, body)


@router.delete(
    "/{tenant_id}/accounts/{account_id}", status_code=204, tags=["accounts"], responses=_ERRORS
)
async def delete_account(
    service: Service, who: CurrentPrincipal, tenant_id: str, account_id: str
) -> Response:
    await service.delete_account(who, tenant_id, account_id)
    return Response(status_code=204)


@router.post(
    "/{tenant_id}/accounts/{account_id}/health/refresh", tags=["accounts"], responses=_ERRORS
)
async def refresh_health(
    service: Service, who: CurrentPrincipal, tenant_id: str, account_id: str
) -> Account:
    """Read the number's quality rating, throughput and messaging limit now."""
    return await service.refresh_account_health(who, tenant_id, account_id)


@router.get(
    "/{tenant_id}/accounts/{account_id}/business-profile", tags=["accounts"], responses=_ERRORS
)
async def get_business_profile(
    service: Service, who: CurrentPrincipal, tenant_id: str, account_id: str
) -> dict[str, Any]:
    """The provider's ``whatsapp_business_profile``, passed through."""
    return await service.business_profile(who, tenant_id, account_id)


@router.post(
    "/{tenant_id}/accounts/{account_id}/business-profile", tags=["accounts"], responses=_ERRORS
)
async def update_business_profile(
    service: Service,
    who: CurrentPrincipal,
    tenant_id: str,
    account_id: str,
    body: BusinessProfileUpdate,
) -> dict[str, Any]:
    """Update the business profile at the provider (about, address, email, websites, …)."""
    return await service.update_business_profile(who, tenant_id, account_id, body)


@router.post("/{tenant_id}/api-keys", status_code=201, tags=["api keys"], responses=_ERRORS)
async def create_api_key(
    service: Service, who: CurrentPrincipal, tenant_id: str, body: ApiKeyCreate
) -> ApiKeyCreated:
    """Create a key; ``key`` is shown in this answer only (stored as a digest)."""
    return await service.create_api_key(who, tenant_id, body)


@router.get("/{tenant_id}/api-keys", tags=["api keys"], responses=_ERRORS)
async def list_api_keys(
    service: Service,
    who: CurrentPrincipal,
    tenant_id: str,
    limit: PageLimit = 100,
    cursor: PageCursor = None,
) -> ApiKeyPage:
    """The tenant's keys, oldest first (never the key itself)."""
    after = decode_cursor(cursor, datetime, str)
    rows = await service.list_api_keys(who, tenant_id, limit=limit + 1, after=after)
    items, next_cursor = page_of(rows, limit, lambda k: (k.created_at, k.key_id))
    return ApiKeyPage(items=items, next_cursor=next_cursor)


@router.get("/{tenant_id}/api-keys/{key_id}", tags=["api keys"], responses=_ERRORS)
async def get_api_key(
    service: Service, who: CurrentPrincipal, tenant_id: str, key_id: str
) -> ApiKey:
    return await service.get_api_key(who, tenant_id, key_id)


@router.delete("/{tenant_id}/api-keys/{key_id}", tags=["api keys"], responses=_ERRORS)
async def revoke_api_key(
    service: Service, who: CurrentPrincipal, tenant_id: str, key_id: str
) -> ApiKey:
    """Revoke a key (idempotent); it is refused from then on."""
    return await service.revoke_api_key(who, tenant_id, key_id)
