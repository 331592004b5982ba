"""Integrations: webhook endpoints (create — the signing secret shown once —, rotate the
secret, the delivery log, replay a delivery or every failed one since a time, test
ping) and API keys (create with scopes — the key shown once —, revoke).

Upstream: the relay's ``/v1/endpoints…`` (it takes API keys or the service token only:
the console checks the owner/admin role, then calls with the service token naming the
tenant); the tenant service's ``/v1/tenants/{t}/api-keys`` with the user's token.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from flowchat_console.auth import ConsoleUser
from flowchat_console.deps import CurrentUser, UpstreamDep
from flowchat_console.pages import _kit
from flowchat_console.render import render
from flowchat_console.upstream import Upstream

router = APIRouter()
MANAGE = "integrations.manage"
SCOPES = ("send", "read", "admin")


def _relay(request: Request, user: ConsoleUser) -> tuple[str, Upstream]:
    _kit.need(user, MANAGE)
    tenant = _kit.tenant_of(request, user)
    return tenant, _kit.service(request, user, tenant)


async def _page(request: Request, user: ConsoleUser, up: UpstreamDep, **shown: Any) -> HTMLResponse:
    tenant, relay = _relay(request, user)
    endpoints, types, keys = await asyncio.gather(
        relay.get("relay", "/v1/endpoints"),
        relay.get("relay", "/v1/event-types"),
        up.get("tenant", f"/v1/tenants/{tenant}/api-keys"),
    )
    return render(
        request,
        "integrations/index.html",
        {
            "endpoints": _kit.items(endpoints),
            "event_types": list(types.get("items") or []),
            "keys": _kit.items(keys),
            "scopes": SCOPES,
            "secret": None,
            "key": None,
            "ping": None,
            **shown,
        },
    )


@router.get("/integrations", include_in_schema=False)
async def integrations(request: Request, user: CurrentUser, up: UpstreamDep) -> HTMLResponse:
    return await _page(request, user, up)


@router.post("/integrations/endpoints", include_in_schema=False)
async def create_endpoint(
    request: Request,
    user: CurrentUser,
    up: UpstreamDep,
    url: Annotated[str, Form()],
    event_types: Annotated[list[str], Form()],
    description: Annotated[str, Form()] = "",
) -> HTMLResponse:
    _, relay = _relay(request, user)
    body = {"url": url, "event_types": event_types, "description": description}
    created = await relay.post("relay", "/v1/endpoints", body)
    return await _page(request, user, up, secret=created)


@router.post("/integrations/endpoints/{endpoint_id}/rotate", include_in_schema=False)
async def rotate(
    request: Request, user: CurrentUser, up: UpstreamDep, endpoint_id: str
) -> HTMLResponse:
    _, relay = _relay(request, user)
    rotated = await relay.post("relay", f"/v1/endpoints/{endpoint_id}/rotate-secret", {})
    return await _page(request, user, up, secret=rotated)


@router.post("/integrations/endpoints/{endpoint_id}/ping", include_in_schema=False)
async def ping(
    request: Request, user: CurrentUser, up: UpstreamDep, endpoint_id: str
) -> HTMLResponse:
    _, relay = _relay(request, user)
    answer = await relay.post("relay", f"/v1/endpoints/{endpoint_id}/ping")
    return await _page(request, user, up, ping={"endpoint_id": endpoint_id, **answer})


@router.get("/integrations/endpoints/{endpoint_id}", include_in_schema=False)
async def deliveries(request: Request, user: CurrentUser, endpoint_id: str) -> HTMLResponse:
    _, relay = _relay(request, user)
    endpoint, log = await asyncio.gather(
        relay.get("relay", f"/v1/endpoints/{endpoint_id}"),
        relay.get("relay", f"/v1/endpoints/{endpoint_id}/deliveries", {"limit": 50}),
    )
    return render(
        request,
        "integrations/deliveries.html",
        {"endpoint": endpoint, "attempts": _kit.items(log)},
    )


@router.post(
    "/integrations/endpoints/{endpoint_id}/deliveries/{delivery_id}/replay",
    include_in_schema=False,
)
async def replay_one(
    request: Request, user: CurrentUser, endpoint_id: str, delivery_id: int
) -> Response:
    _, relay = _relay(request, user)
    await relay.post("relay", f"/v1/endpoints/{endpoint_id}/deliveries/{delivery_id}/replay")
    return _kit.back(f"/integrations/endpoints/{endpoint_id}")


@router.post("/integrations/endpoints/{endpoint_id}/replay", include_in_schema=False)
async def replay_since(
    request: Request, user: CurrentUser, endpoint_id: str, since: Annotated[str, Form()]
) -> Response:
    _, relay = _relay(request, user)
    await relay.post("relay", f"/v1/endpoints/{endpoint_id}/replay", {"since": since})
    return _kit.back(f"/integrations/endpoints/{endpoint_id}")


@router.post("/integrations/keys", include_in_schema=False)
async def create_key(
    request: Request,
    user: CurrentUser,
    up: UpstreamDep,
    name: Annotated[str, Form()],
    scopes: Annotated[list[str], Form()],
) -> HTMLResponse:
    _kit.need(user, MANAGE)
    tenant = _kit.tenant_of(request, user)
    created = await up.post(
        "tenant", f"/v1/tenants/{tenant}/api-keys", {"name": name, "scopes": scopes}
    )
    return await _page(request, user, up, key=created)


@router.post("/integrations/keys/{key_id}/revoke", include_in_schema=False)
async def revoke_key(request: Request, user: CurrentUser, up: UpstreamDep, key_id: str) -> Response:
    _kit.need(user, MANAGE)
    tenant = _kit.tenant_of(request, user)
    await up.delete("tenant", f"/v1/tenants/{tenant}/api-keys/{key_id}")
    return _kit.back("/integrations")
