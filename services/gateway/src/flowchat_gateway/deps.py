"""FastAPI dependencies of the gateway's routes, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import Counter

from flowchat_contracts.meta_codes import MetaCode
from flowchat_gateway import metrics
from flowchat_gateway.cloud_api_service import CloudApiService
from flowchat_gateway.errors import CloudApiError, Unavailable
from flowchat_gateway.ports import ApiKey
from flowchat_gateway.query_service import QueryService
from flowchat_gateway.send_service import SendService
from flowchat_gateway.service import WebhookService
from flowchat_gateway.settings import Settings
from flowchat_platform.auth import Caller, authenticate, require_scope
from flowchat_platform.http import ApiError
from flowchat_platform.tenant_client import TenantClient

T = TypeVar("T")


def _app_state(name: str, kind: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency returning ``app.state.<name>`` (set by the lifespan or ``create_app``).

    ``async def``: FastAPI runs a plain ``def`` in its threadpool on every request, which
    cost about 40 % of the gateway's CPU under webhook load (bench profile)."""

    async def dependency(request: Request) -> T:
        value: T = getattr(request.app.state, name)
        return value

    dependency.__name__ = f"app_state_{name}"
    return dependency


async def correlation_id(request: Request) -> str:
    value: str = request.state.correlation_id
    return value[:128]


SEND_SCOPE = "send"
READ_SCOPE = "read"

_bearer = HTTPBearer(
    auto_error=False,
    description="A tenant API key (`fc_…`): scope `send` to send; `read` or `send` to read.",
)
_AUTH_OUTCOMES = {401: "unauthorized", 403: "forbidden"}


async def _api_key(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None,
    outcomes: Counter,
    scopes: tuple[str, ...],
) -> ApiKey:
    """The tenant API key behind the request (:mod:`flowchat_platform.auth`): 401 without
    a live key, 403 without one of ``scopes``, 503 when the tenant service cannot tell.
    The gateway is the tenants' edge: FlowChat's service token is no key here."""
    tenants: TenantClient = request.app.state.tenants
    header = f"Bearer {credentials.credentials}" if credentials else None
    try:
        caller: Caller = await authenticate(header, service_token=None, tenants=tenants)
        require_scope(caller, next((s for s in scopes if s in caller.scopes), scopes[0]))
    except ApiError as exc:
        outcomes.labels(_AUTH_OUTCOMES.get(exc.status, "unavailable")).inc()
        raise
    assert caller.tenant_id is not None  # no service token: always a tenant's key
    assert caller.key_id is not None
    return ApiKey(tenant_id=caller.tenant_id, key_id=caller.key_id)


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    return await _api_key(request, credentials, metrics.SEND_REQUESTS, (SEND_SCOPE,))


async def _reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    # A key that may send may read the state of what it sent.
    scopes = (READ_SCOPE, SEND_SCOPE)
    return await _api_key(request, credentials, metrics.QUERY_REQUESTS, scopes)


async def _cloud_api_key(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None,
    scopes: tuple[str, ...],
) -> ApiKey:
    """:func:`_api_key` for the Cloud-API-compatible routes: refusals as Meta words
    them (190 for a missing or unknown key, 200 for a key without the scope, 2 when
    the tenant service cannot tell), answered in Meta's error shape."""
    try:
        return await _api_key(request, credentials, _CLOUD_AUTH, scopes)
    except ApiError as exc:
        if exc.status == 401:
            raise CloudApiError(
                int(MetaCode.ACCESS_TOKEN_EXPIRED),
                "Invalid OAuth access token - Cannot parse access token",
                status=401,
            ) from exc
        if exc.status == 403:
            raise CloudApiError(
                int(MetaCode.API_PERMISSION),
                f"The API key lacks the '{scopes[0]}' scope this call needs.",
                status=403,
            ) from exc
        raise Unavailable(exc.message, dependency="tenant") from exc


class _CloudAuthOutcomes:
    """``metrics.CLOUD_API_REQUESTS`` seen as the one-label counter :func:`_api_key` counts in."""

    def labels(self, outcome: str) -> Any:
        return metrics.CLOUD_API_REQUESTS.labels("auth", outcome)


_CLOUD_AUTH: Any = _CloudAuthOutcomes()


async def _cloud_sender(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    return await _cloud_api_key(request, credentials, (SEND_SCOPE,))


async def _cloud_reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    return await _cloud_api_key(request, credentials, (READ_SCOPE, SEND_SCOPE))


WebhooksDep = Annotated[WebhookService, Depends(_app_state("webhooks", WebhookService))]
SenderDep = Annotated[SendService, Depends(_app_state("send", SendService))]
SettingsDep = Annotated[Settings, Depends(_app_state("settings", Settings))]
CorrelationDep = Annotated[str, Depends(correlation_id)]
CallerDep = Annotated[ApiKey, Depends(_caller)]
ReaderDep = Annotated[ApiKey, Depends(_reader)]
QueryDep = Annotated[QueryService, Depends(_app_state("query", QueryService))]
CloudApiDep = Annotated[CloudApiService, Depends(_app_state("cloud_api", CloudApiService))]
CloudSenderDep = Annotated[ApiKey, Depends(_cloud_sender)]
CloudReaderDep = Annotated[ApiKey, Depends(_cloud_reader)]
