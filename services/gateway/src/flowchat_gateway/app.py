"""The gateway's FastAPI app: one lifespan opens the broker, Redis and the tenant client
and wires them, as the adapters of :mod:`flowchat_gateway.ports`, into the three services
(webhooks, send, query); one handler answers every :class:`GatewayError`
(:func:`refusal`).

The broker connects in the background (with retry), so ``/healthz`` answers at once
and ``/readyz`` says 503 until the broker is up. Webhooks that arrive before that
get 503 (the provider retries); they are never answered 200 unconfirmed. Redis is
not a readiness condition: without it webhooks still flow (dedupe degrades) and
only the send API answers 503.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from fastapi import FastAPI, Request
from prometheus_client import Counter

from flowchat_contracts import meta_codes
from flowchat_contracts.meta_codes import MetaCode
from flowchat_gateway import SERVICE, metrics
from flowchat_gateway.broker import AmqpPublisher
from flowchat_gateway.cloud_api_service import CloudApiService
from flowchat_gateway.errors import (
    CloudApiError,
    GatewayError,
    InFlight,
    InvalidSignature,
    RateLimited,
    SendRejected,
    Unavailable,
    UnknownAccount,
)
from flowchat_gateway.graph_client import GraphClient, SenderMedia
from flowchat_gateway.query_service import QueryService
from flowchat_gateway.routes import cloud_api, customers, messages, webhooks
from flowchat_gateway.send_service import SendService
from flowchat_gateway.service import WebhookService
from flowchat_gateway.settings import Settings
from flowchat_gateway.state_client import StateClient
from flowchat_gateway.store import GatewayStore
from flowchat_gateway.window_service import WindowService
from flowchat_platform.amqp import Amqp
from flowchat_platform.http import ApiError, Readiness, build_app, handle_errors, include_lean
from flowchat_platform.logs import get_logger
from flowchat_platform.meta_echo import MetaEcho
from flowchat_platform.redis import create_redis
from flowchat_platform.runner import Background
from flowchat_platform.tenant_client import TenantClient

log = get_logger(__name__)


# --------------------------------------------------------------------- errors → HTTP


@dataclass(frozen=True)
class Surface:
    """How the refusals of one route are counted and worded."""

    #: Counts one refusal by its outcome (``invalid_signature``, ``unavailable``, …).
    count: Callable[[str], None]
    #: What a 503 adds after "<dependency> unavailable; ".
    unavailable: str
    retry_after: str
    #: Webhooks: the provider, also named in the 503's details.
    provider: str | None = None


def _webhooks(provider: str) -> Surface:
    def count(outcome: str) -> None:
        metrics.WEBHOOKS.labels(provider, "webhook", outcome).inc()

    return Surface(count, "nothing was accepted, retry", "5", provider)


def _counter(counter: Counter) -> Callable[[str], None]:
    return lambda outcome: counter.labels(outcome).inc()


#: Route path → its surface. A route not named here counts nothing.
SURFACES: dict[str, Surface] = {
    "/webhooks/meta": _webhooks("meta"),
    "/webhooks/twilio/{account_id}": _webhooks("twilio"),
    "/v1/messages": Surface(
        _counter(metrics.SEND_REQUESTS),
        "the message was not queued, retry with the same key",
        "2",
    ),
    "/v1/messages/{message_id}": Surface(_counter(metrics.QUERY_REQUESTS), "retry", "2"),
    "/v1/accounts/{account_id}/customers/{customer_id}/window": Surface(
        _counter(metrics.QUERY_REQUESTS), "retry", "2"
    ),
}
_OTHER = Surface(lambda _: None, "retry", "2")
#: A send or query refusal's status → its outcome label.
_REJECTED = {404: "not_found", 409: "conflict", 429: "rate_limited"}


#: The Cloud-API-compatible routes → their metric label: refusals in Meta's shape.
CLOUD_API_ROUTES = {
    cloud_api.MESSAGES_PATH: "messages",
    cloud_api.MEDIA_PATH: "media",
    cloud_api.TEMPLATES_PATH: "templates",
}


def meta_error(exc: GatewayError, route: str, headers: dict[str, str] | None = None) -> ApiError:
    """A refusal on a Cloud-API-compatible route, in Meta's error shape: ``{"error":
    {"message", "type", "code", "error_data": {"messaging_product", "details"},
    "fbtrace_id"}}`` with Meta's code (``flowchat_contracts.meta_codes``)."""
    outcome = "invalid"
    if isinstance(exc, CloudApiError):
        code, details, status = exc.code, exc.details, exc.status
        outcome = {401: "unauthorized", 403: "forbidden"}.get(status, outcome)
        if exc.body is not None:
            metrics.CLOUD_API_REQUESTS.labels(route, "refused").inc()
            return ApiError(status, str(code), details, body=exc.body, headers=headers)
    elif isinstance(exc, RateLimited):
        code, details, status, outcome = (
            int(MetaCode.API_TOO_MANY_CALLS),
            exc.message,
            429,
            "rate_limited",
        )
        headers = {"Retry-After": str(int(exc.retry_after_s + 0.999))}
    elif isinstance(exc, SendRejected):
        code, details, status = int(MetaCode.INVALID_PARAMETER), exc.message, exc.status
        if exc.status == 409:
            outcome = "conflict"
    elif isinstance(exc, Unavailable):
        code, status, outcome = int(MetaCode.API_SERVICE), 503, "unavailable"
        details = f"{exc.dependency} unavailable; nothing was queued, retry"
        headers = {"Retry-After": "2"}
    else:
        log.error("a gateway error without an answer", error=repr(exc))
        code, details, status, outcome = int(MetaCode.API_UNKNOWN), "Unknown error.", 500, "error"
    metrics.CLOUD_API_REQUESTS.labels(route, outcome).inc()
    title = meta_codes.title(code) or "Unknown error"
    message = (
        "Invalid OAuth access token - Cannot parse access token"
        if code == MetaCode.ACCESS_TOKEN_EXPIRED
        else f"(#{code}) {title}"
    )
    body = {
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": base64.urlsafe_b64encode(secrets.token_bytes(17)).decode().rstrip("="),
        }
    }
    return ApiError(status, str(code), details, body=body, headers=headers)


def refusal(request: Request, exc: GatewayError) -> ApiError:
    """The one translation of the gateway's errors into HTTP answers (and their count)."""
    route = getattr(request.scope.get("route"), "path", "")
    if route in CLOUD_API_ROUTES:
        return meta_error(exc, CLOUD_API_ROUTES[route])
    surface = SURFACES.get(route, _OTHER)
    if isinstance(exc, InvalidSignature):
        surface.count("invalid_signature")
        metrics.SIGNATURE_FAILURES.labels(exc.provider).inc()
        log.warning("webhook refused: invalid signature", provider=exc.provider, reason=str(exc))
        return ApiError(401, "invalid_signature", str(exc))
    if isinstance(exc, UnknownAccount):
        surface.count("not_found")
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, Unavailable):
        surface.count("unavailable")
        if surface.provider is not None:
            log.warning("webhook not accepted: dependency unavailable", dependency=exc.dependency)
        return ApiError(
            503,
            "unavailable",
            f"{exc.dependency} unavailable; {surface.unavailable}",
            details=[{"dependency": exc.dependency}] if surface.provider is not None else [],
            headers={"Retry-After": surface.retry_after},
        )
    if isinstance(exc, InFlight):
        surface.count("in_flight")
        return ApiError(409, "in_flight", str(exc), headers={"Retry-After": "5"})
    if isinstance(exc, RateLimited):
        surface.count("rate_limited")
        retry_after = str(int(exc.retry_after_s + 0.999))
        return ApiError(429, exc.code, exc.message, headers={"Retry-After": retry_after})
    if isinstance(exc, SendRejected):
        surface.count(_REJECTED.get(exc.status, "invalid"))
        details = [{"field": exc.field}] if exc.field else []
        return ApiError(exc.status, exc.code, exc.message, details=details)
    log.error("a gateway error without an answer", error=repr(exc))
    return ApiError(500, "internal_error", "the gateway failed; retry later")


def create_app(settings: Settings) -> FastAPI:
    readiness = Readiness()
    amqp = Amqp(settings.amqp_url, service=SERVICE, publish_timeout_s=settings.publish_timeout_s)
    readiness.add("broker", lambda: amqp.ready)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        background = Background()
        session = aiohttp.ClientSession()
        redis = create_redis(settings.redis_url, timeout_s=settings.redis_timeout_s)
        token = settings.service_token.get_secret_value() if settings.service_token else ""
        tenants = TenantClient(
            settings.tenant_url, token, session=session, ttl_s=settings.tenant_cache_ttl_s
        )
        store = GatewayStore(redis, timeout_s=settings.redis_timeout_s)
        publisher = AmqpPublisher(amqp)
        app.state.amqp = amqp
        app.state.store = store
        app.state.tenants = tenants
        app.state.webhooks = WebhookService(
            tenants=tenants,
            publisher=publisher,
            store=store,
            dedupe_window_s=settings.dedupe_window_s,
            dedupe_claim_s=settings.dedupe_claim_s,
            in_flight_wait_s=settings.publish_timeout_s + 2 * settings.redis_timeout_s,
        )
        app.state.send = send = SendService(
            tenants=tenants,
            publisher=publisher,
            store=store,
            idempotency_window_s=settings.idempotency_window_s,
            rate_per_minute=settings.send_rate_per_minute,
        )
        states = StateClient(
            settings.state_url, token, session=session, timeout_s=settings.state_timeout_s
        )
        app.state.query = QueryService(states=states)
        app.state.windows = WindowService(tenants=tenants, store=store)
        app.state.cloud_api = CloudApiService(
            tenants=tenants,
            send=send,
            graph=GraphClient(
                settings.graph_url, session=session, timeout_s=settings.graph_timeout_s
            ),
            media=SenderMedia(
                settings.sender_url, token, session=session, timeout_s=settings.media_timeout_s
            ),
            states=states,
            public_url=settings.public_url,
            sends=MetaEcho(redis),
        )
        background.start("amqp-connect", amqp.connect())
        try:
            yield
        finally:
            await background.stop()
            await amqp.close(settings.shutdown_grace_s)
            await store.flush()  # the dedupe marks still waiting
            await redis.aclose()
            await session.close()
            log.info("stopped")

    app = build_app(
        SERVICE,
        lifespan=lifespan,
        readiness=readiness,
        title="FlowChat gateway",
        max_json_bytes=settings.max_body_bytes,
        nul_allowed=("/webhooks/",),  # never refuse a provider's webhook for its text
    )
    app.state.settings = settings
    handle_errors(app, GatewayError, refusal)
    include_lean(app, webhooks.lean)
    app.include_router(webhooks.router)
    app.include_router(messages.router)
    app.include_router(customers.router)
    app.include_router(cloud_api.router)
    return app
