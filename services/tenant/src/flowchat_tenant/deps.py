"""FastAPI dependencies as ``Annotated`` aliases: the service and the caller's identity."""

from __future__ import annotations

import dataclasses
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flowchat_platform.http import ApiError
from flowchat_tenant.identity_service import IdentityService
from flowchat_tenant.permissions import Principal
from flowchat_tenant.service import TenantService
from flowchat_tenant.tokens import ACCESS_PREFIX

_bearer = HTTPBearer(
    auto_error=False,
    description="operator key, a tenant API key, or a user's access token (fca.…)",
)
SESSION_COOKIE = "fc_session"
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


def get_identity(request: Request) -> IdentityService:
    identity: IdentityService | None = request.app.state.resources.identity
    if identity is None:
        raise ApiError(
            503, "not_ready", "the tenant service is starting", headers={"Retry-After": "1"}
        )
    return identity


Identity = Annotated[IdentityService, Depends(get_identity)]


def client_ip(request: Request) -> str | None:
    """The caller's address: the first X-Forwarded-For hop when trusted, else the peer."""
    if request.app.state.trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
        if forwarded:
            return forwarded[:64]
    return request.client.host if request.client else None


def user_agent(request: Request) -> str | None:
    agent = request.headers.get("user-agent")
    return agent[:512] if agent else None


def _equal(expected: str, given: str) -> bool:
    """Constant-time comparison; an unset expected value never matches."""
    return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())


async def get_principal(
    request: Request,
    service: Service,
    identity: Identity,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise ApiError(401, "unauthorized", "a bearer key is required", headers=_CHALLENGE)
    given = credentials.credentials
    ip, agent = client_ip(request), user_agent(request)
    if _equal(request.app.state.operator_key, given):
        return dataclasses.replace(Principal.the_operator(), ip=ip, user_agent=agent)
    if given.startswith(ACCESS_PREFIX):
        user = await identity.authenticate_user(given, ip=ip, user_agent=agent)
        if user is None:
            raise ApiError(
                401, "unauthorized", "expired or revoked access token", headers=_CHALLENGE
            )
        return user
    principal = await service.authenticate_key(given)
    if principal is None:
        raise ApiError(401, "unauthorized", "unknown or revoked key", headers=_CHALLENGE)
    return dataclasses.replace(principal, ip=ip, user_agent=agent)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def session_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The console's session: the ``fc_session`` cookie, or a bearer token."""
    if credentials is not None:
        return credentials.credentials
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return cookie
    raise ApiError(401, "unauthorized", "a session is required", headers=_CHALLENGE)


SessionToken = Annotated[str, Depends(session_token)]


async def require_service_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_service_bearer)],
) -> None:
    if credentials is None or not _equal(request.app.state.service_token, credentials.credentials):
        raise ApiError(401, "unauthorized", "the service token is required", headers=_CHALLENGE)
