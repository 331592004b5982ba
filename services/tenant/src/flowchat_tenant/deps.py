"""FastAPI dependencies as ``Annotated`` aliases: the service and the caller's identity."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flowchat_platform.http import ApiError
from flowchat_tenant.service import Principal, TenantService

_bearer = HTTPBearer(auto_error=False, description="operator key or a tenant admin API key")
_service_bearer = HTTPBearer(auto_error=False, description="FLOWCHAT_SERVICE_TOKEN")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def get_service(request: Request) -> TenantService:
    service: TenantService | None = request.app.state.resources.service
    if service is None:
        raise ApiError(
            503, "not_ready", "the tenant service is starting", headers={"Retry-After": "1"}
        )
    return service


Service = Annotated[TenantService, Depends(get_service)]


def _equal(expected: str, given: str) -> bool:
    """Constant-time comparison; an unset expected value never matches."""
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


async def get_principal(
    request: Request,
    service: Service,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise ApiError(401, "unauthorized", "a bearer key is required", headers=_CHALLENGE)
    given = credentials.credentials
    if _equal(request.app.state.operator_key, given):
        return Principal.the_operator()
    principal = await service.authenticate_key(given)
    if principal is None:
        raise ApiError(401, "unauthorized", "unknown or revoked key", headers=_CHALLENGE)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def require_service_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_service_bearer)],
) -> None:
    if credentials is None or not _equal(request.app.state.service_token, credentials.credentials):
        raise ApiError(401, "unauthorized", "the service token is required", headers=_CHALLENGE)
