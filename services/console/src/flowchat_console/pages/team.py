"""Team: the tenant's users with their roles, invitations (the one-time token shown to
the inviter), role changes, disabling; and the audit log.

Upstream: the tenant service with the user's own token — ``/v1/tenants/{t}/users``
(every role reads; owners and admins invite and change), ``/v1/tenants/{t}/audit``
(owners and admins).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from flowchat_console.pages import _kit

router = APIRouter()
ROLES = ("owner", "admin", "agent", "viewer")


async def _page(request: Request, user: Any, tenant: str, invited: Any = None) -> Response:
    page = await _kit.call(request, user, "tenant", "GET", f"/v1/tenants/{tenant}/users")
    return _kit.render(request, "team/users.html", {
        "users": _kit.items(page), "roles": ROLES, "invited": invited,
        "may_write": _kit.allowed(user, "team.write"), "me": user,
    })


@router.get("/team", response_class=HTMLResponse)
async def team(request: Request) -> Response:
    user = _kit.require(request, "team")
    return await _page(request, user, _kit.tenant_of(request, user))


@router.post("/team/invite", response_class=HTMLResponse)
async def invite(
    request: Request, email: Annotated[str, Form()], role: Annotated[str, Form()],
    name: Annotated[str, Form()] = "",
) -> Response:
    user = _kit.require(request, "team.write")
    tenant = _kit.tenant_of(request, user)
    invited = await _kit.call(
        request, user, "tenant", "POST", f"/v1/tenants/{tenant}/users",
        json={"email": email, "role": role, **({"name": name} if name else {})},
    )
    return await _page(request, user, tenant, invited=invited)


@router.post("/team/{user_id}")
async def change(
    request: Request, user_id: str, role: Annotated[str, Form()] = "",
    status: Annotated[str, Form()] = "",
) -> Response:
    user = _kit.require(request, "team.write")
    tenant = _kit.tenant_of(request, user)
    body = {k: v for k, v in (("role", role), ("status", status)) if v}
    await _kit.call(request, user, "tenant", "PATCH", f"/v1/tenants/{tenant}/users/{user_id}",
                    json=body)
    return _kit.back("/team")


@router.get("/audit", response_class=HTMLResponse)
async def audit(request: Request, action: str | None = None, cursor: str | None = None) -> Response:
    user = _kit.require(request, "audit")
    if user.role == "operator" and not request.query_params.get("tenant"):
        path, params = "/v1/operator/audit", {}
    else:
        path, params = f"/v1/tenants/{_kit.tenant_of(request, user)}/audit", {}
    params = {"limit": "50", **({"action": action} if action else {}),
              **({"cursor": cursor} if cursor else {})}
    page = await _kit.call(request, user, "tenant", "GET", path, params=params)
    return _kit.render(request, "team/audit.html", {
        "entries": _kit.items(page), "next_cursor": page.get("next_cursor"),
        "action": action or "",
    })
