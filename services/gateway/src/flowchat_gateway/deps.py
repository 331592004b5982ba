"""FastAPI dependencies of the gateway's routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request
from flowchat_platform.http import ApiError
from flowchat_platform.tenant_client import ApiKeyInfo

from flowchat_gateway import metrics
from flowchat_gateway.errors import Unavailable
from flowchat_gateway.service import QueryService, SendService, WebhookService
from flowchat_gateway.settings import Settings


# Dependencies are ``async def``: FastAPI runs a plain ``def`` in its threadpool on every
# request, which cost about 40 % of the gateway's CPU under webhook load (bench profile).
async def _webhooks(request: Request) -> WebhookService:
    service: WebhookService = request.app.state.webhooks
    return service


async def _sender(request: Request) -> SendService:
    service: SendService = request.app.state.send
    return service


async def _query(request: Request) -> QueryService:
    service: QueryService = request.app.state.query
    return service


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def correlation_id(request: Request) -> str:
    value: str = request.state.correlation_id
    return value[:128]


SEND_SCOPES = frozenset({"send"})
#: Reading a message's state: keys that may read, and keys that sent it.
READ_SCOPES = frozenset({"read", "send"})

_AUTHORIZATION = Header(description="`Bearer <tenant API key>`", include_in_schema=True)


async def _authenticate(
    sender: SendService, authorization: str | None, outcomes: Any, scopes: frozenset[str]
) -> ApiKeyInfo:
    """The caller's key info; 401 without a live key, 403 without one of ``scopes``."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        outcomes.labels("unauthorized").inc()
        raise ApiError(
            401,
            "unauthorized",
            "an API key is required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        info = await sender.authenticate(key.strip())
    except Unavailable as exc:
        outcomes.labels("unavailable").inc()
        raise ApiError(503, "unavailable", "cannot check the API key now; retry") from exc
    if info is None:
        outcomes.labels("unauthorized").inc()
        raise ApiError(
            401,
            "unauthorized",
            "unknown or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not scopes & set(info.scopes):
        outcomes.labels("forbidden").inc()
        wanted = " or ".join(f"'{s}'" for s in sorted(scopes))
        raise ApiError(403, "forbidden", f"this API key lacks the {wanted} scope")
    return info


async def _caller(
    sender: Annotated[SendService, Depends(_sender)],
    authorization: Annotated[str | None, _AUTHORIZATION] = None,
) -> ApiKeyInfo:
    return await _authenticate(sender, authorization, metrics.SEND_REQUESTS, SEND_SCOPES)


async def _reader(
    sender: Annotated[SendService, Depends(_sender)],
    authorization: Annotated[str | None, _AUTHORIZATION] = None,
) -> ApiKeyInfo:
    return await _authenticate(sender, authorization, metrics.QUERY_REQUESTS, READ_SCOPES)


WebhooksDep = Annotated[WebhookService, Depends(_webhooks)]
SenderDep = Annotated[SendService, Depends(_sender)]
SettingsDep = Annotated[Settings, Depends(_settings)]
CorrelationDep = Annotated[str, Depends(correlation_id)]
CallerDep = Annotated[ApiKeyInfo, Depends(_caller)]
ReaderDep = Annotated[ApiKeyInfo, Depends(_reader)]
QueryDep = Annotated[QueryService, Depends(_query)]
