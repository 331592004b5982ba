"""FastAPI dependencies of the gateway's routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from flowchat_platform.http import ApiError
from flowchat_platform.tenant_client import ApiKeyInfo

from flowchat_gateway import metrics
from flowchat_gateway.errors import Unavailable
from flowchat_gateway.service import SendService, WebhookService
from flowchat_gateway.settings import Settings


def _webhooks(request: Request) -> WebhookService:
    service: WebhookService = request.app.state.webhooks
    return service


def _sender(request: Request) -> SendService:
    service: SendService = request.app.state.send
    return service


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def correlation_id(request: Request) -> str:
    value: str = request.state.correlation_id
    return value[:128]


async def _caller(
    sender: Annotated[SendService, Depends(_sender)],
    authorization: Annotated[
        str | None, Header(description="`Bearer <tenant API key>`", include_in_schema=True)
    ] = None,
) -> ApiKeyInfo:
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        metrics.SEND_REQUESTS.labels("unauthorized").inc()
        raise ApiError(
            401,
            "unauthorized",
            "an API key is required: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        info = await sender.authenticate(key.strip())
    except Unavailable as exc:
        metrics.SEND_REQUESTS.labels("unavailable").inc()
        raise ApiError(503, "unavailable", "cannot check the API key now; retry") from exc
    if info is None:
        metrics.SEND_REQUESTS.labels("unauthorized").inc()
        raise ApiError(
            401,
            "unauthorized",
            "unknown or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if "send" not in info.scopes:
        metrics.SEND_REQUESTS.labels("forbidden").inc()
        raise ApiError(403, "forbidden", "this API key lacks the 'send' scope")
    return info


WebhooksDep = Annotated[WebhookService, Depends(_webhooks)]
SenderDep = Annotated[SendService, Depends(_sender)]
SettingsDep = Annotated[Settings, Depends(_settings)]
CorrelationDep = Annotated[str, Depends(correlation_id)]
CallerDep = Annotated[ApiKeyInfo, Depends(_caller)]
