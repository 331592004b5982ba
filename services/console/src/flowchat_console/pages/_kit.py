"""What the admin and operator pages share: the tenant a page shows, the role check, and
calling the few APIs that take only FlowChat's service token.

Who calls what (the services enforce it; the console hides what a role cannot do):

- the tenant service (numbers, API keys, users, invitations, audit, tenants) and the
  conversation service (contacts, campaigns, templates, catalog, orders) take the
  user's own access token (:data:`flowchat_console.deps.UpstreamDep`);
- the relay (webhook endpoints) and the sender's DLQ take API keys or the service token
  only: for them the console checks the role itself (:func:`need`), then calls with
  ``FLOWCHAT_SERVICE_TOKEN``, naming the tenant (``X-Tenant-ID``) and the user as the
  actor (``X-FlowChat-Actor: user:<id>``, kept in the DLQ's audit trail).
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from pydantic_settings import BaseSettings, SettingsConfigDict

from flowchat_console.auth import ConsoleUser
from flowchat_console.errors import Forbidden, UpstreamError
from flowchat_console.nav import can
from flowchat_console.upstream import ServiceClients, Upstream

__all__ = ["UpstreamError", "back", "items", "need", "service", "tenant_of"]

#: The cookie remembering which tenant an operator looks at (``?tenant=`` sets it).
OPERATOR_TENANT_COOKIE = "fc_op_tenant"


class _ServiceToken(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    flowchat_service_token: str = ""


@lru_cache(maxsize=1)
def service_token() -> str:
    """``FLOWCHAT_SERVICE_TOKEN`` (the stack's, as every service's)."""
    return _ServiceToken().flowchat_service_token


def media_key() -> bytes | None:
    """The key of the thread's media URLs (:class:`~flowchat_console.service.MediaLinks`):
    derived from the service token, so every replica accepts every replica's URLs."""
    token = service_token()
    if not token:
        return None
    return hmac.new(token.encode(), b"flowchat-console-media-urls", hashlib.sha256).digest()


def need(user: ConsoleUser, action: str) -> None:
    """Operators may do everything; others what ``nav.RIGHTS`` gives their role."""
    if user.role != "operator" and not can(user, action):
        raise Forbidden(action)


def allowed(user: ConsoleUser, action: str) -> bool:
    return user.role == "operator" or can(user, action)


def tenant_of(request: Request, user: ConsoleUser) -> str:
    """The tenant a page shows: the user's own; an operator's choice (``?tenant=``,
    else the one chosen last, else 403 with a hint)."""
    if user.role != "operator":
        if not user.tenant_id:
            raise Forbidden("tenant")
        return user.tenant_id
    chosen = request.query_params.get("tenant") or request.cookies.get(OPERATOR_TENANT_COOKIE)
    if not chosen:
        raise Forbidden("choose a tenant first (Tenants)")
    return chosen


def service(request: Request, user: ConsoleUser, tenant: str | None = None) -> Upstream:
    """The service-token client for the relay and the DLQ (call :func:`need` first)."""
    return service_with(request.app.state.runtime.clients, user, tenant)


def service_with(clients: ServiceClients, user: ConsoleUser, tenant: str | None) -> Upstream:
    """:func:`service` from the app's clients (outside a route's request)."""
    token = service_token()
    if not token:
        raise UpstreamError("console", 503, "not_configured", "FLOWCHAT_SERVICE_TOKEN is not set")
    headers = {"X-FlowChat-Actor": f"user:{user.user_id}"}
    if tenant:
        headers["X-Tenant-ID"] = tenant
    return Upstream(clients, token, headers)


def back(url: str) -> RedirectResponse:
    """After a form's POST: to the page that shows the result (303: a GET)."""
    return RedirectResponse(url, status_code=303)


def items(page: Any) -> list[dict[str, Any]]:
    if isinstance(page, dict):
        return list(page.get("items") or [])
    return list(page or [])
