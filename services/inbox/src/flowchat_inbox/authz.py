"""Who is acting, decided in one place: the seam user tokens plug into.

:class:`Principal` is everything the routes know of a caller: the tenant, the agent id
the inbox records (holder, author of replies and notes) and what the caller may do.
Today :class:`ApiKeyAuthoriser` derives it from a tenant API key
(``flowchat_platform.auth``):

- ``read`` scope: read histories, conversations, the live stream (a viewer);
- ``admin`` scope: also claim, reply, note, assign and resolve (an agent who manages);
- the agent is ``X-Agent-ID`` when an ``admin`` key (a console acting for its user)
  sends it, else ``key:<key id>``;
- FlowChat's service token with ``X-Tenant-ID`` acts for that tenant as a manager.

When the tenant service issues user tokens, a ``UserAuthoriser`` maps a user's roles
(owner/admin → manage, agent → act, viewer → read) to the same :class:`Principal`; the
routes do not change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from flowchat_platform.auth import ApiKeys, authenticate, require_tenant
from flowchat_platform.http import ApiError

READ_SCOPE = "read"
ADMIN_SCOPE = "admin"
_AGENT_ID = re.compile(r"^[A-Za-z0-9_.:@+-]{1,128}$")


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    agent_id: str
    can_act: bool
    can_manage: bool

    def require_act(self) -> None:
        if not self.can_act:
            raise ApiError(403, "forbidden", "acting on conversations needs the admin scope")

    def require_manage(self) -> None:
        if not self.can_manage:
            raise ApiError(403, "forbidden", "this needs a manager (the admin scope)")


class Authoriser(Protocol):
    async def principal(
        self, authorization: str | None, *, tenant_header: str | None, agent_header: str | None
    ) -> Principal: ...


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
        if agent_header is not None and not _AGENT_ID.match(agent_header):
            raise ApiError(422, "invalid_agent_id", "X-Agent-ID: 1-128 of A-Z a-z 0-9 _ . : @ + -")
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
