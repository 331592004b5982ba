"""What the admin and operator pages share: who is signed in, calling a service as that
person (or, for the APIs that take only FlowChat's service token, as the console on
their behalf after the console's own role check), and rendering a page.

Which role may open which page is :data:`ROLES`: the services enforce the same rules
(the tenant service checks the user's token itself; the conversation, relay and sender
APIs accept only API keys or the service token, so for them the console checks the
role here and names the user as the actor).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from flowchat_console import auth as core_auth
from flowchat_console import upstream as core_upstream
from flowchat_console.render import render as core_render
from flowchat_platform.http import ApiError

#: Who may open each area (an operator may open every area, for any tenant).
ROLES: dict[str, frozenset[str]] = {
    "contacts": frozenset({"owner", "admin"}),
    "campaigns": frozenset({"owner", "admin"}),
    "catalog": frozenset({"owner", "admin"}),
    "numbers": frozenset({"owner", "admin", "agent", "viewer"}),
    "numbers.write": frozenset({"owner", "admin"}),
    "integrations": frozenset({"owner", "admin"}),
    "team": frozenset({"owner", "admin", "agent", "viewer"}),
    "team.write": frozenset({"owner", "admin"}),
    "audit": frozenset({"owner", "admin"}),
    "operator": frozenset(),
}

UpstreamError = core_upstream.UpstreamError


def user_of(request: Request) -> Any:
    """The signed-in user (the core's session), or a 401 the core turns into sign-in."""
    return core_auth.require_user(request)


def allowed(user: Any, area: str) -> bool:
    if user.role == "operator":
        return True
    return user.role in ROLES[area]


def require(request: Request, area: str) -> Any:
    """The user, when their role may open ``area`` (else 403)."""
    user = user_of(request)
    if not allowed(user, area):
        raise ApiError(403, "forbidden", f"the {user.role} role may not open this page")
    return user


def tenant_of(request: Request, user: Any) -> str:
    """The tenant a page shows: the user's own; an operator names one (``?tenant=``)."""
    if user.role == "operator":
        tenant = request.query_params.get("tenant") or request.cookies.get("fc_op_tenant")
        if not tenant:
            raise ApiError(400, "tenant_required", "choose a tenant first (Operator → Tenants)")
        return tenant
    if not user.tenant_id:
        raise ApiError(403, "forbidden", "no tenant")
    return str(user.tenant_id)


def clients(request: Request) -> Any:
    return core_upstream.clients(request)


async def call(
    request: Request,
    user: Any,
    service: str,
    method: str,
    path: str,
    *,
    as_service: bool = False,
    tenant: str | None = None,
    params: Any = None,
    json: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    raw: bool = False,
) -> Any:
    """One call of ``service``'s API: with the user's token, or (``as_service``) with
    the service token naming the user as the actor (``X-FlowChat-Actor``) and the
    tenant (``X-Tenant-ID``) for APIs that take one."""
    extra = dict(headers or {})
    if as_service:
        extra["X-FlowChat-Actor"] = f"user:{user.user_id}"
        if tenant:
            extra["X-Tenant-ID"] = tenant
    return await clients(request).request(
        service,
        method,
        path,
        user=None if as_service else user,
        params=params,
        json=json,
        content=content,
        headers=extra,
        raw=raw,
    )


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    return core_render(request, template, context, status_code=status)


def back(url: str) -> RedirectResponse:
    """After a form's POST: to the page that shows the result (303: a GET)."""
    return RedirectResponse(url, status_code=303)


def items(page: Any) -> list[dict[str, Any]]:
    if isinstance(page, dict):
        return list(page.get("items") or [])
    return list(page or [])
