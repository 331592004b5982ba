"""Integrations: webhook endpoints (create — the signing secret shown once —, rotate the
secret, the delivery log, replay a delivery or every failed one since a time, test
ping) and API keys (create with scopes — the key shown once —, revoke).

Upstream: the relay, ``/v1/endpoints…`` (service token naming the tenant, after the
console's owner/admin check); the tenant service, ``/v1/tenants/{t}/api-keys`` with the
user's token (owners and admins).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from flowchat_console.pages import _kit

router = APIRouter()
AREA = "integrations"
SCOPES = ("send", "read", "admin")


async def _page(request: Request, user: Any, tenant: str, **shown: Any) -> Response:
    endpoints = await _kit.call(request, user, "relay", "GET", "/v1/endpoints",
                                as_service=True, tenant=tenant)
    types = await _kit.call(request, user, "relay", "GET", "/v1/event-types",
                            as_service=True, tenant=tenant)
    keys = await _kit.call(request, user, "tenant", "GET", f"/v1/tenants/{tenant}/api-keys")
    return _kit.render(request, "integrations/index.html", {
        "endpoints": _kit.items(endpoints),
        "event_types": [t["type"] if isinstance(t, dict) else t
                        for t in (types.get("items") or types.get("event_types") or [])],
        "keys": _kit.items(keys), "scopes": SCOPES, "secret": None, "key": None, "ping": None,
        **shown,
    })


@router.get("/integrations", response_class=HTMLResponse)
async def integrations(request: Request) -> Response:
    user = _kit.require(request, AREA)
    return await _page(request, user, _kit.tenant_of(request, user))


@router.post("/integrations/endpoints", response_class=HTMLResponse)
async def create_endpoint(
    request: Request, url: Annotated[str, Form()],
    event_types: Annotated[list[str], Form()], description: Annotated[str, Form()] = "",
) -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    created = await _kit.call(
        request, user, "relay", "POST", "/v1/endpoints", as_service=True, tenant=tenant,
        json={"url": url, "event_types": event_types, "description": description},
    )
    return await _page(request, user, tenant, secret=created)


@router.post("/integrations/endpoints/{endpoint_id}/rotate", response_class=HTMLResponse)
async def rotate(request: Request, endpoint_id: str) -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    rotated = await _kit.call(
        request, user, "relay", "POST", f"/v1/endpoints/{endpoint_id}/rotate-secret",
        as_service=True, tenant=tenant, json={},
    )
    return await _page(request, user, tenant, secret=rotated)


@router.post("/integrations/endpoints/{endpoint_id}/ping", response_class=HTMLResponse)
async def ping(request: Request, endpoint_id: str) -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    answer = await _kit.call(
        request, user, "relay", "POST", f"/v1/endpoints/{endpoint_id}/ping",
        as_service=True, tenant=tenant,
    )
    return await _page(request, user, tenant, ping={"endpoint_id": endpoint_id, **answer})


@router.get("/integrations/endpoints/{endpoint_id}", response_class=HTMLResponse)
async def deliveries(request: Request, endpoint_id: str) -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    endpoint = await _kit.call(request, user, "relay", "GET", f"/v1/endpoints/{endpoint_id}",
                               as_service=True, tenant=tenant)
    log = await _kit.call(request, user, "relay", "GET",
                          f"/v1/endpoints/{endpoint_id}/deliveries",
                          as_service=True, tenant=tenant, params={"limit": "50"})
    return _kit.render(request, "integrations/deliveries.html", {
        "endpoint": endpoint, "attempts": _kit.items(log),
    })


@router.post("/integrations/endpoints/{endpoint_id}/deliveries/{delivery_id}/replay")
async def replay_one(request: Request, endpoint_id: str, delivery_id: int) -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    await _kit.call(
        request, user, "relay", "POST",
        f"/v1/endpoints/{endpoint_id}/deliveries/{delivery_id}/replay",
        as_service=True, tenant=tenant,
    )
    return _kit.back(f"/integrations/endpoints/{endpoint_id}")


@router.post("/integrations/endpoints/{endpoint_id}/replay")
async def replay_since(
    request: Request, endpoint_id: str, since: Annotated[str, Form()]
) -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    await _kit.call(
        request, user, "relay", "POST", f"/v1/endpoints/{endpoint_id}/replay",
        as_service=True, tenant=tenant, json={"since": since},
    )
    return _kit.back(f"/integrations/endpoints/{endpoint_id}")


@router.post("/integrations/keys", response_class=HTMLResponse)
async def create_key(
    request: Request, name: Annotated[str, Form()], scopes: Annotated[list[str], Form()]
) -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    created = await _kit.call(request, user, "tenant", "POST", f"/v1/tenants/{tenant}/api-keys",
                              json={"name": name, "scopes": scopes})
    return await _page(request, user, tenant, key=created)


@router.post("/integrations/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str) -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    await _kit.call(request, user, "tenant", "DELETE", f"/v1/tenants/{tenant}/api-keys/{key_id}")
    return _kit.back("/integrations")
