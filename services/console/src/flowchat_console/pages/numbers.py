"""Numbers and templates: each business number's quality rating, throughput and messaging
limit (with a health refresh), and the number's template catalog with statuses.

Upstream: the tenant service, ``/v1/tenants/{t}/accounts`` (GET; POST
``{a}/health/refresh``, owners and admins; every role reads) with the user's own token;
the conversation service, ``/v1/tenants/{t}/accounts/{a}/templates`` (the provider's
catalog of the number's WABA).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from flowchat_console.pages import _kit

router = APIRouter()


@router.get("/numbers", response_class=HTMLResponse)
async def numbers(request: Request) -> Response:
    user = _kit.require(request, "numbers")
    tenant = _kit.tenant_of(request, user)
    page = await _kit.call(request, user, "tenant", "GET", f"/v1/tenants/{tenant}/accounts")
    return _kit.render(request, "numbers/list.html", {
        "numbers": _kit.items(page), "may_write": _kit.allowed(user, "numbers.write"),
    })


@router.post("/numbers/{account_id}/refresh")
async def refresh(request: Request, account_id: str) -> Response:
    user = _kit.require(request, "numbers.write")
    tenant = _kit.tenant_of(request, user)
    await _kit.call(
        request, user, "tenant", "POST", f"/v1/tenants/{tenant}/accounts/{account_id}/health/refresh"
    )
    return _kit.back("/numbers")


@router.get("/numbers/{account_id}/templates", response_class=HTMLResponse)
async def templates(request: Request, account_id: str) -> Response:
    user = _kit.require(request, "campaigns")
    tenant = _kit.tenant_of(request, user)
    error: Any = None
    items: list[dict[str, Any]] = []
    try:
        page = await _kit.call(
            request, user, "conversation", "GET",
            f"/v1/tenants/{tenant}/accounts/{account_id}/templates", as_service=True,
        )
        items = _kit.items(page)
    except _kit.UpstreamError as exc:
        error = exc
    return _kit.render(request, "numbers/templates.html", {
        "account_id": account_id, "templates": items, "error": error,
    })
