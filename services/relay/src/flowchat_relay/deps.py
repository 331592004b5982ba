"""FastAPI dependencies of the endpoints API (``Annotated`` aliases)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flowchat_platform.auth import ApiKeys, authenticate, require_scope
from flowchat_platform.http import ApiError
from flowchat_relay.dispatcher import Dispatcher
from flowchat_relay.ports import DeliveryStore
from flowchat_relay.service import EndpointService

ADMIN_SCOPE = "admin"

_bearer = HTTPBearer(
    auto_error=False,
    description="A tenant API key with the `admin` scope, or the internal service token "
    "together with an `X-Tenant-ID` header.",
)


@dataclass
class Runtime:
    """What the lifespan opened; the routes read it through the dependencies below."""

    service_token: str
    endpoints: EndpointService | None = None
    deliveries: DeliveryStore | None = None
    dispatcher: Dispatcher | None = None
    tenants: ApiKeys | None = None


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _not_ready() -> ApiError:
    return ApiError(503, "not_ready", "the database is not connected yet")


def _endpoints(runtime: Annotated[Runtime, Depends(_runtime)]) -> EndpointService:
    if runtime.endpoints is None:
        raise _not_ready()
    return runtime.endpoints


def _deliveries(runtime: Annotated[Runtime, Depends(_runtime)]) -> DeliveryStore:
    if runtime.deliveries is None:
        raise _not_ready()
    return runtime.deliveries


def _dispatcher(runtime: Annotated[Runtime, Depends(_runtime)]) -> Dispatcher:
    if runtime.dispatcher is None:
        raise _not_ready()
    return runtime.dispatcher


async def _tenant(
    runtime: Annotated[Runtime, Depends(_runtime)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    x_tenant_id: Annotated[
        str | None,
        Header(
            alias="X-Tenant-ID",
            description="The tenant to act for (internal callers with the service token)",
        ),
    ] = None,
) -> str:
    header = f"Bearer {credentials.credentials}" if credentials else None
    caller = await authenticate(
        header, service_token=runtime.service_token, tenants=runtime.tenants
    )
    if caller.tenant_id is None:
        if not x_tenant_id:
            raise ApiError(400, "tenant_required", "the X-Tenant-ID header is required")
        return x_tenant_id
    require_scope(caller, ADMIN_SCOPE, x_tenant_id)
    return caller.tenant_id


EndpointsDep = Annotated[EndpointService, Depends(_endpoints)]
DeliveriesDep = Annotated[DeliveryStore, Depends(_deliveries)]
DispatcherDep = Annotated[Dispatcher, Depends(_dispatcher)]
TenantId = Annotated[str, Depends(_tenant)]
