"""Team: the tenant's users with their roles, invitations (the one-time token shown to
the inviter), role changes, disabling; and the audit log.

Upstream: the tenant service with the user's own token — ``/v1/tenants/{t}/users``
(owners and admins invite and change), ``/v1/tenants/{t}/audit`` (owners, admins),
``/v1/operator/audit`` (operators: every tenant's).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from flowchat_console.auth import ConsoleUser
from flowchat_console.deps import CurrentUser, UpstreamDep
from flowchat_console.pages import _kit
from flowchat_console.render import render
from flowchat_console.upstream import Upstream

router = APIRouter()
ROLES = ("owner", "admin", "agent", "viewer")


async def _page(
    request: Request, user: ConsoleUser, up: Upstream, invited: Any = None
) -> HTMLResponse:
    tenant = _kit.tenant_of(request, user)
    page = await up.get("tenant", f"/v1/tenants/{tenant}/users")
    return render(
        request,
        "team/users.html",
        {
            "users": _kit.items(page),
            "roles": ROLES,
            "invited": invited,
            "may_write": _kit.allowed(user, "team.manage"),
            "me": user,
        },
    )


@router.get("/team", include_in_schema=False)
async def team(request: Request, user: CurrentUser, up: UpstreamDep) -> HTMLResponse:
    _kit.need(user, "team.read")
    return await _page(request, user, up)


@router.post("/team/invite", include_in_schema=False)
async def invite(
    request: Request,
    user: CurrentUser,
    up: UpstreamDep,
    email: Annotated[str, Form()],
    role: Annotated[str, Form()],
    name: Annotated[str, Form()] = "",
) -> HTMLResponse:
    _kit.need(user, "team.manage")
    tenant = _kit.tenant_of(request, user)
    body = {"email": email, "role": role, **({"name": name} if name else {})}
    invited = await up.post("tenant", f"/v1/tenants/{tenant}/users", body)
    return await _page(request, user, up, invited=invited)


@router.post("/team/{user_id}", include_in_schema=False)
async def change(
    request: Request,
    user: CurrentUser,
    up: UpstreamDep,
    user_id: str,
    role: Annotated[str, Form()] = "",
    status: Annotated[str, Form()] = "",
) -> Response:
    _kit.need(user, "team.manage")
    tenant = _kit.tenant_of(request, user)
    body = {k: v for k, v in (("role", role), ("status", status)) if v}
    await up.patch("tenant", f"/v1/tenants/{tenant}/users/{user_id}", body)
    return _kit.back("/team")


@router.get("/audit", include_in_schema=False)
async def audit(
    request: Request,
    user: CurrentUser,
    up: UpstreamDep,
    action: str | None = None,
    cursor: str | None = None,
) -> HTMLResponse:
    _kit.need(user, "audit.read")
    if user.role == "operator" and not request.query_params.get("tenant"):
        path = "/v1/operator/audit"
    else:
        path = f"/v1/tenants/{_kit.tenant_of(request, user)}/audit"
    page = await up.get("tenant", path, {"limit": 50, "action": action or None, "cursor": cursor})
    return render(
        request,
        "team/audit.html",
        {
            "entries": _kit.items(page),
            "next_cursor": page.get("next_cursor"),
            "action": action or "",
        },
    )
