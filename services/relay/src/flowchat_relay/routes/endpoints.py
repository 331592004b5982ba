"""The endpoints API: ``/v1/endpoints`` (a tenant's webhook endpoints), their delivery
log, replays and test pings."""

from __future__ import annotations

from fastapi import APIRouter, Response

from flowchat_contracts.tenant_events import ALL_EVENT_TYPES as EVENT_TYPES
from flowchat_platform.http import PageCursor, PageLimit
from flowchat_platform.pagination import decode_cursor, page_of
from flowchat_relay.deps import DeliveriesDep, DispatcherDep, EndpointsDep, TenantId
from flowchat_relay.errors import DeliveryNotFound
from flowchat_relay.ports import EndpointChanges
from flowchat_relay.routes.schemas import (
    AttemptOut,
    AttemptPage,
    EndpointIn,
    EndpointOut,
    EndpointPage,
    EndpointPatch,
    EndpointWithSecret,
    EventTypesOut,
    PingOut,
    ReplayIn,
    ReplayOut,
    RotateIn,
)

router = APIRouter(prefix="/v1", tags=["endpoints"])


@router.get("/event-types", response_model=EventTypesOut)
async def event_types(_: TenantId) -> EventTypesOut:
    return EventTypesOut(items=list(EVENT_TYPES))


@router.post("/endpoints", status_code=201, response_model=EndpointWithSecret)
async def create_endpoint(
    body: EndpointIn, tenant_id: TenantId, endpoints: EndpointsDep
) -> EndpointWithSecret:
    endpoint = await endpoints.create(
        tenant_id,
        url=body.url,
        description=body.description,
        event_types=body.event_types,
        format=body.format,
        enabled=body.enabled,
    )
    return EndpointWithSecret.of_secret(endpoint)


@router.get("/endpoints", response_model=EndpointPage)
async def list_endpoints(
    tenant_id: TenantId, endpoints: EndpointsDep, cursor: PageCursor = None, limit: PageLimit = 50
) -> EndpointPage:
    items, next_cursor = await endpoints.list(tenant_id, cursor=cursor, limit=limit)
    return EndpointPage(items=[EndpointOut.of(e) for e in items], next_cursor=next_cursor)


@router.get("/endpoints/{endpoint_id}", response_model=EndpointOut)
async def get_endpoint(
    endpoint_id: str, tenant_id: TenantId, endpoints: EndpointsDep
) -> EndpointOut:
    return EndpointOut.of(await endpoints.get(tenant_id, endpoint_id))


@router.patch("/endpoints/{endpoint_id}", response_model=EndpointOut)
async def update_endpoint(
    endpoint_id: str,
    body: EndpointPatch,
    tenant_id: TenantId,
    endpoints: EndpointsDep,
    dispatcher: DispatcherDep,
) -> EndpointOut:
    changes = EndpointChanges(
        url=body.url,
        description=body.description,
        event_types=tuple(body.event_types) if body.event_types is not None else None,
        format=body.format,
        enabled=body.enabled,
    )
    endpoint = await endpoints.update(tenant_id, endpoint_id, changes)
    if body.enabled:
        dispatcher.wake()
    return EndpointOut.of(endpoint)


@router.delete("/endpoints/{endpoint_id}", status_code=204)
async def delete_endpoint(
    endpoint_id: str, tenant_id: TenantId, endpoints: EndpointsDep
) -> Response:
    await endpoints.delete(tenant_id, endpoint_id)
    return Response(status_code=204)


@router.post("/endpoints/{endpoint_id}/rotate-secret", response_model=EndpointWithSecret)
async def rotate_secret(
    endpoint_id: str, body: RotateIn, tenant_id: TenantId, endpoints: EndpointsDep
) -> EndpointWithSecret:
    endpoint = await endpoints.rotate_secret(tenant_id, endpoint_id, overlap_s=body.overlap_s)
    return EndpointWithSecret.of_secret(endpoint)


@router.get("/endpoints/{endpoint_id}/deliveries", response_model=AttemptPage)
async def delivery_log(
    endpoint_id: str,
    tenant_id: TenantId,
    endpoints: EndpointsDep,
    deliveries: DeliveriesDep,
    cursor: PageCursor = None,
    limit: PageLimit = 50,
) -> AttemptPage:
    """Delivery attempts, newest first."""
    await endpoints.get(tenant_id, endpoint_id)
    before = decode_cursor(cursor, int)
    rows = await deliveries.attempts(
        tenant_id, endpoint_id, before=before[0] if before else None, limit=limit + 1
    )
    items, next_cursor = page_of(rows, limit, lambda a: (a.id,))
    return AttemptPage(items=[AttemptOut.of(a) for a in items], next_cursor=next_cursor)


@router.post(
    "/endpoints/{endpoint_id}/deliveries/{delivery_id}/replay",
    status_code=202,
    response_model=ReplayOut,
)
async def replay_delivery(
    endpoint_id: str,
    delivery_id: int,
    tenant_id: TenantId,
    deliveries: DeliveriesDep,
    dispatcher: DispatcherDep,
) -> ReplayOut:
    if not await deliveries.replay_delivery(tenant_id, endpoint_id, delivery_id):
        raise DeliveryNotFound(f"no delivery {delivery_id} of endpoint {endpoint_id}")
    dispatcher.wake()
    return ReplayOut(replayed=1)


@router.post("/endpoints/{endpoint_id}/replay", status_code=202, response_model=ReplayOut)
async def replay_failed(
    endpoint_id: str,
    body: ReplayIn,
    tenant_id: TenantId,
    endpoints: EndpointsDep,
    deliveries: DeliveriesDep,
    dispatcher: DispatcherDep,
) -> ReplayOut:
    """Deliver again everything that failed since ``since``."""
    await endpoints.get(tenant_id, endpoint_id)
    count = await deliveries.replay_failed(tenant_id, endpoint_id, body.since)
    dispatcher.wake()
    return ReplayOut(replayed=count)


@router.post("/endpoints/{endpoint_id}/ping", response_model=PingOut)
async def ping(
    endpoint_id: str, tenant_id: TenantId, endpoints: EndpointsDep, dispatcher: DispatcherDep
) -> PingOut:
    """Post a signed ``endpoint.ping`` event now and answer what the endpoint said."""
    endpoint = await endpoints.get(tenant_id, endpoint_id)
    return PingOut.of(await dispatcher.ping(endpoint))
