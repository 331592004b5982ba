"""Who is calling: FlowChat itself (the service token) or a tenant's API key.

Every service's HTTP API accepts the same two kinds of bearer token; this module
decides which one a request carries, once, so the services' dependencies only add
their own rule (which scope, which tenant).

People (the console's users, the inbox's agents) carry a short-lived access token
(``fca.…``) from the tenant service's login: :func:`authenticate_user` resolves it
through the tenant's internal API (``TenantClient.user``, cached a few seconds) to a
:class:`UserCaller` (user, tenant, role); the service then checks the role.

A tenant's API (one scope, one tenant per request) takes :func:`tenant_dependency`: a
tenant's key with the scope acts for its tenant, the service token for the tenant its
``X-Tenant-ID`` header names (:func:`require_tenant`).
"""

# No ``from __future__ import annotations``: tenant_dependency's closure has annotations
# naming its own locals, which FastAPI must be able to evaluate.

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flowchat_platform.accounts import ApiKeyInfo, UserInfo
from flowchat_platform.errors import UpstreamError
from flowchat_platform.http import ApiError

__all__ = [
    "ApiKeys",
    "Caller",
    "UserCaller",
    "Users",
    "authenticate",
    "authenticate_user",
    "require_scope",
    "require_tenant",
    "tenant_dependency",
]

#: What a user's access token starts with (issued by the tenant service's login).
USER_TOKEN_PREFIX = "fca."  # noqa: S105 - a prefix, not a secret


class ApiKeys(Protocol):
    """What authenticate() needs of the tenant service (``TenantClient`` is one)."""

    async def api_key(self, key: str) -> ApiKeyInfo | None: ...


@dataclass(frozen=True)
class Caller:
    """``tenant_id`` is None for FlowChat's own services (the service token)."""

    tenant_id: str | None
    scopes: frozenset[str]
    key_id: str | None = None

    @property
    def is_service(self) -> bool:
        return self.tenant_id is None


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(
    authorization: str | None, *, service_token: str | None, tenants: ApiKeys | None
) -> Caller:
    """The caller behind an ``Authorization: Bearer …`` header, or a 401/503 ApiError."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("a Bearer token is required")
    if service_token and hmac.compare_digest(token.encode(), service_token.encode()):
        return Caller(tenant_id=None, scopes=frozenset({"*"}))
    if tenants is None:
        if service_token:  # an API of FlowChat's own services: no API key opens it
            raise _unauthorized("FlowChat's service token is required")
        raise ApiError(503, "not_ready", "API keys cannot be verified yet")
    try:
        info = await tenants.api_key(token)
    except UpstreamError as exc:
        raise ApiError(503, "tenant_unavailable", "API keys cannot be verified now") from exc
    if info is None:
        raise _unauthorized("unknown or revoked API key")
    return Caller(tenant_id=info.tenant_id, scopes=frozenset(info.scopes), key_id=info.key_id)


def require_scope(caller: Caller, scope: str, tenant_id: str | None = None) -> None:
    """Refuse (403) a key without ``scope``, or one of another tenant than ``tenant_id``."""
    if caller.is_service:
        return
    if scope not in caller.scopes:
        raise ApiError(403, "forbidden", f"the API key lacks the {scope} scope")
    if tenant_id is not None and caller.tenant_id != tenant_id:
        raise ApiError(403, "forbidden", "the API key belongs to another tenant")


def require_tenant(caller: Caller, scope: str, tenant_header: str | None) -> str:
    """The tenant ``caller`` acts for: the service token's ``X-Tenant-ID`` (400 without
    one), else the key's own tenant when it has ``scope`` and the header, if any, names it
    (else 403)."""
    if caller.tenant_id is None:
        if not tenant_header:
            raise ApiError(400, "tenant_required", "the X-Tenant-ID header is required")
        return tenant_header
    require_scope(caller, scope, tenant_header)
    return caller.tenant_id


def tenant_dependency(
    scope: str,
    *,
    credentials: Callable[[Request], tuple[str, ApiKeys | None]],
    description: str,
) -> Callable[..., Awaitable[str]]:
    """A FastAPI dependency giving the tenant a request acts for (:func:`require_tenant`).

    ``credentials`` gives the service token and the API keys' verifier (None until the
    lifespan has opened it) of a request's app; ``description`` describes the bearer
    scheme in the OpenAPI document."""
    bearer = HTTPBearer(auto_error=False, description=description)

    async def tenant(
        request: Request,
        authorization: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        x_tenant_id: Annotated[
            str | None,
            Header(
                alias="X-Tenant-ID",
                description="The tenant to act for (internal callers with the service token)",
            ),
        ] = None,
    ) -> str:
        service_token, keys = credentials(request)
        header = f"Bearer {authorization.credentials}" if authorization else None
        caller = await authenticate(header, service_token=service_token, tenants=keys)
        return require_tenant(caller, scope, x_tenant_id)

    return tenant


class Users(Protocol):
    """What authenticate_user() needs of the tenant service (``TenantClient`` is one)."""

    async def user(self, access_token: str) -> UserInfo | None: ...


@dataclass(frozen=True)
class UserCaller:
    """A person: ``tenant_id`` None and ``role`` ``operator`` for platform staff."""

    user_id: str
    tenant_id: str | None
    role: str
    session_id: str

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def require_role(self, *roles: str, tenant_id: str | None = None) -> None:
        """Another tenant's resource: 404 (as if unknown); a role not in ``roles``: 403.
        Operators pass both checks."""
        if self.is_operator:
            return
        if tenant_id is not None and tenant_id != self.tenant_id:
            raise ApiError(404, "not_found", "not found")
        if self.role not in roles:
            raise ApiError(403, "forbidden", f"the {self.role} role may not do this")


async def authenticate_user(authorization: str | None, *, users: Users) -> UserCaller:
    """The user behind ``Authorization: Bearer fca.…``, or a 401/503 ApiError."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(USER_TOKEN_PREFIX):
        raise _unauthorized("a user's access token is required")
    try:
        info = await users.user(token)
    except UpstreamError as exc:
        raise ApiError(503, "tenant_unavailable", "users cannot be verified now") from exc
    if info is None:
        raise _unauthorized("expired or revoked access token")
    return UserCaller(
        user_id=info.user_id, tenant_id=info.tenant_id, role=info.role, session_id=info.session_id
    )
