"""Numbers and templates: each business number's quality rating, throughput and messaging
limit (with a health refresh), and the number's template catalog with statuses.

Upstream, with the user's token: the tenant service's ``/v1/tenants/{t}/accounts`` (every
role reads; owners and admins POST ``{a}/health/refresh``) and the conversation service's
``/v1/tenants/{t}/accounts/{a}/templates`` (owners, admins, operators).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from flowchat_console.deps import CurrentUser, UpstreamDep
from flowchat_console.errors import UpstreamError
from flowchat_console.pages import _kit
from flowchat_console.render import render

router = APIRouter()


@router.get("/numbers", include_in_schema=False)
async def numbers(request: Request, user: CurrentUser, up: UpstreamDep) -> HTMLResponse:
    _kit.need(user, "numbers.read")
    tenant = _kit.tenant_of(request, user)
    page = await up.get("tenant", f"/v1/tenants/{tenant}/accounts")
    return render(
        request,
        "numbers/list.html",
        {
            "numbers": _kit.items(page),
            "may_write": _kit.allowed(user, "numbers.manage"),
            "may_templates": _kit.allowed(user, "campaigns.write"),
        },
    )


@router.post("/numbers/{account_id}/refresh", include_in_schema=False)
async def refresh(
    request: Request, user: CurrentUser, up: UpstreamDep, account_id: str
) -> Response:
    _kit.need(user, "numbers.manage")
    tenant = _kit.tenant_of(request, user)
    await up.post("tenant", f"/v1/tenants/{tenant}/accounts/{account_id}/health/refresh")
    return _kit.back("/numbers")


@router.get("/numbers/{account_id}/templates", include_in_schema=False)
async def templates(
    request: Request, user: CurrentUser, up: UpstreamDep, account_id: str
) -> HTMLResponse:
    _kit.need(user, "campaigns.write")
    tenant = _kit.tenant_of(request, user)
    error: UpstreamError | None = None
    found: list[dict[str, Any]] = []
    try:
        found = _kit.items(
            await up.get("conversation", f"/v1/tenants/{tenant}/accounts/{account_id}/templates")
        )
    except UpstreamError as exc:
        if exc.status in (401, 403):
            raise
        error = exc
    return render(
        request,
        "numbers/templates.html",
        {"account_id": account_id, "templates": found, "error": error},
    )
