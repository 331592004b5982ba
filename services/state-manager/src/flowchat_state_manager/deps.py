"""FastAPI dependencies of the query API (``Annotated`` aliases)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from flowchat_platform.errors import UpstreamError
from flowchat_platform.http import ApiError
from flowchat_platform.tenant_client import TenantClient

from flowchat_state_manager.service import QueryService

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
    if credentials is None or not credentials.credentials:
        raise ApiError(
            401,
            "unauthorized",
            "a bearer API key is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = credentials.credentials
    if hmac.compare_digest(token.encode(), runtime.service_token.encode()):
        if not x_tenant_id:
            raise ApiError(400, "tenant_required", "the X-Tenant-ID header is required")
        return x_tenant_id
    if runtime.tenants is None:
        raise ApiError(503, "not_ready", "the service is starting")
    try:
        info = await runtime.tenants.api_key(token)
    except UpstreamError as exc:
        raise ApiError(503, "tenant_unavailable", "API keys cannot be verified now") from exc
    if info is None:
        raise ApiError(
            401,
            "unauthorized",
            "unknown or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if READ_SCOPE not in info.scopes:
        raise ApiError(403, "forbidden", "the API key lacks the read scope")
    if x_tenant_id is not None and x_tenant_id != info.tenant_id:
        raise ApiError(403, "forbidden", "the API key belongs to another tenant")
    return info.tenant_id


QueryDep = Annotated[QueryService, Depends(_query)]
TenantId = Annotated[str, Depends(_tenant)]
