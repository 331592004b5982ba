"""Who is acting, decided in one place.

:class:`Principal` is everything the routes know of a caller: the tenant, the agent id
the inbox records (holder, author of replies and notes) and what the caller may do
(``read``; ``act``: claim, reply, note, resolve one's own, take over; ``manage``: also
assign and resolve anyone's). :class:`Authoriser` picks by the bearer token:

- a tenant **user's access token** (``fca.…``, from the tenant service's login):
  :class:`UserAuthoriser` resolves it through the tenant service's internal API
  (``TenantClient.user``), the answer held ``USER_CACHE_S`` (5 s by default, at most the
  tenant's ``max-age``; bounded LRU by the token's digest): a deleted or disabled user,
  or a revoked session, is refused within that long (0: at once, one hop per request).
  Roles: owner/admin → manage, agent → act, viewer → read. The agent id is the user's
  id; an ``X-Agent-ID`` naming someone else is refused. Operator users (platform staff)
  act for the tenant ``X-Tenant-ID`` names, as managers.
- a tenant **API key** (:class:`ApiKeyAuthoriser`, ``flowchat_platform.auth``):
  ``read`` scope reads; ``admin`` scope acts and manages, as ``X-Agent-ID`` when sent
  (a console acting for its user), else ``key:<key id>``;
- FlowChat's **service token** with ``X-Tenant-ID`` acts for that tenant as a manager.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from flowchat_platform.auth import (
    USER_TOKEN_PREFIX,
    ApiKeys,
    Users,
    authenticate,
    authenticate_user,
    require_tenant,
)
from flowchat_platform.http import ApiError

READ_SCOPE = "read"
ADMIN_SCOPE = "admin"
_AGENT_ID = re.compile(r"^[A-Za-z0-9_.:@+-]{1,128}$")

#: A tenant user's role → (may act, may manage).
ROLE_RIGHTS: dict[str, tuple[bool, bool]] = {
    "owner": (True, True),
    "admin": (True, True),
    "agent": (True, False),
    "viewer": (False, False),
}


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    agent_id: str
    can_act: bool
    can_manage: bool
    #: The user behind a user token (None for keys and the service token).
    user_id: str | None = None

    def require_act(self) -> None:
        if not self.can_act:
            raise ApiError(
                403, "forbidden", "acting on conversations needs an agent (or the admin scope)"
            )

    def require_manage(self) -> None:
        if not self.can_manage:
            raise ApiError(403, "forbidden", "this needs a manager (owner, admin, admin scope)")


class Authoriser(Protocol):
    async def principal(
        self, authorization: str | None, *, tenant_header: str | None, agent_header: str | None
    ) -> Principal: ...


def _check_agent_header(agent_header: str | None) -> None:
    if agent_header is not None and not _AGENT_ID.match(agent_header):
        raise ApiError(422, "invalid_agent_id", "X-Agent-ID: 1-128 of A-Z a-z 0-9 _ . : @ + -")


class ApiKeyAuthoriser:
    def __init__(self, *, service_token: str, keys: ApiKeys | None) -> None:
        self._service_token = service_token
        self.keys = keys

    async def principal(
        self, authorization: str | None, *, tenant_header: str | None, agent_header: str | None
    ) -> Principal:
        caller = await authenticate(
            authorization, service_token=self._service_token, tenants=self.keys
        )
        _check_agent_header(agent_header)
        if caller.tenant_id is None:
            tenant = require_tenant(caller, READ_SCOPE, tenant_header)
            return Principal(tenant, agent_header or "flowchat", True, True)
        if tenant_header is not None and tenant_header != caller.tenant_id:
            raise ApiError(403, "forbidden", "the API key belongs to another tenant")
        admin = ADMIN_SCOPE in caller.scopes
        if not admin and READ_SCOPE not in caller.scopes:
            raise ApiError(403, "forbidden", "the API key lacks the read scope")
        agent = agent_header if admin and agent_header else f"key:{caller.key_id}"
        return Principal(caller.tenant_id, agent, admin, admin)


class _Tenants(ApiKeys, Users, Protocol):
    """The tenant service's lookups: API keys and users (``TenantClient``)."""


class UserAuthoriser:
    """Users' access tokens here; every other bearer token to ``keys`` (API keys and the
    service token)."""

    def __init__(self, keys: ApiKeyAuthoriser, users: Users | None) -> None:
        self._keys = keys
        self.users = users

    def use(self, tenants: _Tenants) -> None:
        """Verify keys and users with ``tenants`` from now on (``TenantClient``)."""
        self._keys.keys = tenants
        self.users = tenants

    async def principal(
        self, authorization: str | None, *, tenant_header: str | None, agent_header: str | None
    ) -> Principal:
        _, _, token = (authorization or "").partition(" ")
        if not token.strip().startswith(USER_TOKEN_PREFIX):
            return await self._keys.principal(
                authorization, tenant_header=tenant_header, agent_header=agent_header
            )
        if self.users is None:
            raise ApiError(503, "not_ready", "users cannot be verified yet")
        user = await authenticate_user(authorization, users=self.users)
        _check_agent_header(agent_header)
        if agent_header is not None and agent_header != user.user_id:
            raise ApiError(403, "forbidden", "a user acts as themself (X-Agent-ID names another)")
        if user.is_operator:
            if not tenant_header:
                raise ApiError(400, "tenant_required", "the X-Tenant-ID header is required")
            return Principal(tenant_header, user.user_id, True, True, user.user_id)
        assert user.tenant_id is not None
        if tenant_header is not None and tenant_header != user.tenant_id:
            raise ApiError(403, "forbidden", "the user belongs to another tenant")
        rights = ROLE_RIGHTS.get(user.role)
        if rights is None:
            raise ApiError(403, "forbidden", f"the {user.role} role may not use the inbox")
        act, manage = rights
        return Principal(user.tenant_id, user.user_id, act, manage, user.user_id)
