"""FastAPI dependencies of the endpoints API (``Annotated`` aliases)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from flowchat_platform.auth import ApiKeys, tenant_dependency
from flowchat_platform.http import ApiError
from flowchat_relay.dispatcher import Dispatcher
from flowchat_relay.ports import DeliveryStore, ExportStore, RetentionStore
from flowchat_relay.service import EndpointService

ADMIN_SCOPE = "admin"


@dataclass
class Runtime:
    """What the lifespan opened; the routes read it through the dependencies below."""

    service_token: str
    endpoints: EndpointService | None = None
    deliveries: DeliveryStore | None = None
    dispatcher: Dispatcher | None = None
    tenants: ApiKeys | None = None
    retention: RetentionStore | None = None
    exports: ExportStore | None = None
    #: The delivery log is kept this long unless the tenant chose its own retention.
    retention_days: int = 30


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


def _credentials(request: Request) -> tuple[str, ApiKeys | None]:
    runtime = _runtime(request)
    return runtime.service_token, runtime.tenants


_tenant = tenant_dependency(
    ADMIN_SCOPE,
    credentials=_credentials,
    description="A tenant API key with the `admin` scope, or the internal service token "
    "together with an `X-Tenant-ID` header.",
)


EndpointsDep = Annotated[EndpointService, Depends(_endpoints)]
DeliveriesDep = Annotated[DeliveryStore, Depends(_deliveries)]
DispatcherDep = Annotated[Dispatcher, Depends(_dispatcher)]
TenantId = Annotated[str, Depends(_tenant)]


def _retention(runtime: Annotated[Runtime, Depends(_runtime)]) -> RetentionStore:
    if runtime.retention is None:
        raise _not_ready()
    return runtime.retention


RetentionDep = Annotated[RetentionStore, Depends(_retention)]


def _exports(runtime: Annotated[Runtime, Depends(_runtime)]) -> ExportStore:
    if runtime.exports is None:
        raise _not_ready()
    return runtime.exports


ExportDep = Annotated[ExportStore, Depends(_exports)]
RuntimeDep = Annotated[Runtime, Depends(_runtime)]
