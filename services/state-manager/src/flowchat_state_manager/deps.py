"""FastAPI dependencies of the query API (``Annotated`` aliases)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from flowchat_platform.auth import tenant_dependency
from flowchat_platform.http import ApiError
from flowchat_platform.tenant_client import TenantClient
from flowchat_state_manager.ports import RetentionStore
from flowchat_state_manager.query_service import QueryService

READ_SCOPE = "read"
ADMIN_SCOPE = "admin"


@dataclass
class Runtime:
    """What the lifespan opened; the routes read it through the dependencies below."""

    service_token: str
    query: QueryService | None = None
    tenants: TenantClient | None = None
    retention: RetentionStore | None = None
    #: Message records are kept this long unless the tenant chose its own retention.
    retention_days: int = 90


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _query(runtime: Annotated[Runtime, Depends(_runtime)]) -> QueryService:
    if runtime.query is None:
        raise ApiError(503, "not_ready", "the database is not connected yet")
    return runtime.query


def _retention(runtime: Annotated[Runtime, Depends(_runtime)]) -> RetentionStore:
    if runtime.retention is None:
        raise ApiError(503, "not_ready", "the database is not connected yet")
    return runtime.retention


def _credentials(request: Request) -> tuple[str, TenantClient | None]:
    runtime = _runtime(request)
    return runtime.service_token, runtime.tenants


_tenant = tenant_dependency(
    READ_SCOPE,
    credentials=_credentials,
    description="A tenant API key with the `read` scope, or the internal service token "
    "together with an `X-Tenant-ID` header.",
)


QueryDep = Annotated[QueryService, Depends(_query)]
TenantId = Annotated[str, Depends(_tenant)]

_admin = tenant_dependency(
    ADMIN_SCOPE,
    credentials=_credentials,
    description="A tenant API key with the `admin` scope, or the internal service token "
    "together with an `X-Tenant-ID` header.",
)

AdminTenantId = Annotated[str, Depends(_admin)]
RetentionDep = Annotated[RetentionStore, Depends(_retention)]
RuntimeDep = Annotated[Runtime, Depends(_runtime)]
