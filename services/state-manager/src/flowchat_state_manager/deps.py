"""FastAPI dependencies of the query API (``Annotated`` aliases)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flowchat_platform.auth import authenticate, require_scope
from flowchat_platform.http import ApiError
from flowchat_platform.tenant_client import TenantClient
from flowchat_state_manager.query_service import QueryService

READ_SCOPE = "read"

_bearer = HTTPBearer(
    auto_error=False,
    description="A tenant API key with the `read` scope, or the internal service token "
    "together with an `X-Tenant-ID` header.",
)


@dataclass
class Runtime:
    """What the lifespan opened; the routes read it through the dependencies below."""

    service_token: str
    query: QueryService | None = None
    tenants: TenantClient | None = None


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _query(runtime: Annotated[Runtime, Depends(_runtime)]) -> QueryService:
    if runtime.query is None:
        raise ApiError(503, "not_ready", "the database is not connected yet")
    return runtime.query


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
    require_scope(caller, READ_SCOPE, x_tenant_id)
    return caller.tenant_id


QueryDep = Annotated[QueryService, Depends(_query)]
TenantId = Annotated[str, Depends(_tenant)]
