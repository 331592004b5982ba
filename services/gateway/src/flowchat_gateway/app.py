"""The gateway's FastAPI app: one lifespan opens the broker, Redis and the tenant client.

The broker connects in the background (with retry), so ``/healthz`` answers at once
and ``/readyz`` says 503 until the broker is up. Webhooks that arrive before that
get 503 (the provider retries); they are never answered 200 unconfirmed. Redis is
not a readiness condition: without it webhooks still flow (dedupe degrades) and
only the send API answers 503.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from fastapi import FastAPI

from flowchat_gateway import SERVICE
from flowchat_gateway.broker import AmqpPublisher
from flowchat_gateway.routes import messages, webhooks
from flowchat_gateway.service import QueryService, SendService, WebhookService
from flowchat_gateway.settings import Settings
from flowchat_gateway.state_client import StateClient
from flowchat_gateway.store import GatewayStore
from flowchat_platform.amqp import Amqp
from flowchat_platform.http import Readiness, build_app
from flowchat_platform.logs import get_logger
from flowchat_platform.redis import create_redis
from flowchat_platform.runner import Background
from flowchat_platform.tenant_client import TenantClient

log = get_logger(__name__)


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
        )
        app.state.send = SendService(
            tenants=tenants,
            publisher=publisher,
            store=store,
            idempotency_window_s=settings.idempotency_window_s,
            rate_per_minute=settings.send_rate_per_minute,
        )
        app.state.query = QueryService(
            states=StateClient(
                settings.state_url, token, session=session, timeout_s=settings.state_timeout_s
            )
        )
        background.start("amqp-connect", amqp.connect())
        try:
            yield
        finally:
            await background.stop()
            await amqp.close(settings.shutdown_grace_s)
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
    app.include_router(webhooks.router)
    app.include_router(messages.router)
    return app
