"""The sender's process: one aiohttp session, Redis, the broker, and the outbound consumer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from fastapi import FastAPI
from pydantic import TypeAdapter

from flowchat_contracts import topology
from flowchat_platform.amqp import Amqp
from flowchat_platform.erasure import ErasureAgent
from flowchat_platform.http import Readiness, build_app
from flowchat_platform.logs import get_logger
from flowchat_platform.privacy import BlindIndex, privacy_index
from flowchat_platform.redis import create_redis
from flowchat_platform.redis_batch import RedisBatcher
from flowchat_platform.runner import Background
from flowchat_platform.tenant_client import TenantClient
from flowchat_sender import SERVICE, metrics, routes
from flowchat_sender.breaker import CircuitBreaker, State
from flowchat_sender.cloud_api import CloudApiAdapter
from flowchat_sender.consumer import OutboundConsumer, ResultBatcher
from flowchat_sender.dlq import ParkingLot
from flowchat_sender.idempotency import IdempotencyStore
from flowchat_sender.media import GraphMedia, MediaStore
from flowchat_sender.media_service import MediaResolver
from flowchat_sender.privacy import RedisErasure
from flowchat_sender.providers import ProviderAdapter
from flowchat_sender.ratelimit import RateLimiter
from flowchat_sender.routes import dlq as dlq_routes
from flowchat_sender.routes import media as media_routes
from flowchat_sender.service import Sender, SenderConfig
from flowchat_sender.settings import Settings
from flowchat_sender.templates import GraphTemplates, TemplateCatalog, TemplateEvents, TemplateGuard
from flowchat_sender.twilio import TwilioAdapter

log = get_logger(__name__)

EVENT_DECODER: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


def _breaker_state(account: str, state: State) -> None:
    metrics.BREAKER_STATE.labels(account).set(int(state))
    log.warning("circuit breaker state changed", account_id=account, state=state.name.lower())


def provider_session(limit: int, *, keepalive_s: float) -> aiohttp.ClientSession:
    """The one HTTP session of every provider call: at most ``limit`` connections (per
    host too: Graph is one host), idle ones dropped after ``keepalive_s``.

    The keep-alive stays below the server's own idle timeout (uvicorn's 5 s for the
    sandbox; aiohttp's default is 15 s): a connection the server closes just as it is
    reused fails the request with no answer, and the send is parked as "outcome
    unknown" though nothing was sent. No cookie jar: one session serves every tenant,
    and a cookie one account's answer set must never ride along on another's request.
    """
    connector = aiohttp.TCPConnector(
        limit=limit, limit_per_host=0, ttl_dns_cache=300, keepalive_timeout=keepalive_s
    )
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


def suppression_member(index: BlindIndex) -> Callable[[str, str], str]:
    """The opt-out member of an erased customer (the conversation service adds it)."""

    def member(tenant_id: str, recipient: str) -> str:
        return "h:" + index.digest(tenant_id, recipient)

    return member


def create_app(settings: Settings) -> FastAPI:
    readiness = Readiness()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        session = provider_session(settings.max_active + 16, keepalive_s=settings.http_keepalive_s)
        redis = create_redis(settings.redis_url, max_connections=settings.redis_max_connections)
        index = privacy_index(settings.privacy_key, settings.service_token)
        batcher = RedisBatcher(
            redis, replicas=settings.claim_replicas, wait_ms=settings.claim_wait_ms
        )
        idempotency = IdempotencyStore(redis, ttl_s=settings.idempotency_ttl_s, batcher=batcher)
        amqp = Amqp(
            settings.amqp_url, service=SERVICE, publish_timeout_s=settings.publish_timeout_s
        )
        token = settings.service_token.get_secret_value() if settings.service_token else ""
        tenants = TenantClient(
            settings.tenant_url,
            token,
            session=session,
            ttl_s=settings.credentials_ttl_s,
            batch_accounts=settings.tenant_batch,
        )
        providers: dict[str, ProviderAdapter] = {
            "meta": CloudApiAdapter(
                session,
                graph_url=settings.graph_url,
                version=settings.graph_version,
                timeout_s=settings.http_timeout_s,
            ),
            "twilio": TwilioAdapter(
                session,
                twilio_url=settings.twilio_url,
                gateway_url=settings.gateway_url,
                timeout_s=settings.http_timeout_s,
            ),
        }
        # --- templates and media (flowchat_sender.templates, flowchat_sender.media)
        templates = TemplateCatalog(
            redis,
            GraphTemplates(
                session,
                graph_url=settings.graph_url,
                version=settings.graph_version,
                timeout_s=settings.http_timeout_s,
                page_size=settings.template_page_size,
            ),
            ttl_s=settings.template_ttl_s,
            local_ttl_s=settings.template_local_ttl_s,
            recheck_s=settings.template_recheck_s,
            retry_s=settings.template_retry_s,
            miss_sync_s=settings.template_miss_sync_s,
        )
        template_events = TemplateEvents(templates, tenants, clock=time.time)
        graph_media = GraphMedia(
            session,
            graph_url=settings.graph_url,
            version=settings.graph_version,
            timeout_s=settings.media_timeout_s,
        )
        app.state.media = MediaStore(redis, graph_media, tenants, ttl_s=settings.media_cache_ttl_s)
        app.state.media_resolver = MediaResolver(
            tenants,
            graph_media,
            max_bytes=settings.media_download_max_bytes,
            twilio_url=settings.twilio_url,
        )
        # ---
        sender = Sender(
            accounts=tenants,
            providers=providers,
            idempotency=IdempotencyStore(redis, ttl_s=settings.idempotency_ttl_s, batcher=batcher),
            limiter=RateLimiter(
                redis,
                batcher=batcher,
                number_burst_s=settings.number_burst_s,
                pair_interval_s=settings.pair_interval_s,
                pair_burst=settings.pair_burst,
            ),
            breaker=CircuitBreaker(
                window_s=settings.breaker_window_s,
                min_volume=settings.breaker_min_volume,
                failure_ratio=settings.breaker_failure_ratio,
                open_s=settings.breaker_open_s,
                on_state=_breaker_state,
            ),
            publish=ResultBatcher(
                amqp,
                max_batch=settings.result_batch_max,
                version=settings.result_batch_version,
            ).publish,
            config=SenderConfig(
                max_attempts=settings.max_attempts,
                claim_grace_s=settings.claim_grace_s,
                default_throughput_mps=settings.default_throughput_mps,
                max_inline_wait_s=settings.max_inline_wait_s,
                max_waiting_per_account=settings.max_waiting_per_account,
                throttle_factor=settings.throttle_factor,
                throttle_s=settings.throttle_s,
                window_guard=settings.window_guard,
                bulk_max_wait_s=settings.bulk_max_wait_s,
                bulk_waiting_per_number=settings.bulk_waiting_per_number,
                priority_hold_at=settings.priority_hold_at,
                optout_guard=settings.optout_guard,
                max_active=settings.max_active,
            ),
            prechecks=[TemplateGuard(templates)] if settings.template_guard else [],
            suppressed_member=suppression_member(index),
        )
        consumer = OutboundConsumer(
            amqp,
            sender,
            prefetch=settings.prefetch,
            ack_linger_s=settings.ack_linger_s,
            bulk_prefetch=settings.bulk_prefetch,
        )

        async def redis_ok() -> bool:
            return bool(await redis.ping())

        readiness.add("broker", lambda: amqp.ready)
        readiness.add("redis", redis_ok)

        async def start() -> None:
            await amqp.connect()
            await consumer.start()
            await amqp.consume(
                topology.QUEUE_SENDER_EVENTS,
                template_events.handle,
                decoder=EVENT_DECODER,
                prefetch=8,
            )
            await ErasureAgent(amqp, SERVICE, RedisErasure(redis, index).erase).start()

        background = Background()
        background.start("amqp", start())
        app.state.sender = sender
        app.state.parking_lot = ParkingLot(settings.amqp_url, idempotency)
        try:
            yield
        finally:
            await amqp.close(settings.shutdown_grace_s)
            log.info(
                "redis batching",
                scripts=batcher.items,
                calls=batcher.batches,
            )
            await background.stop()
            await templates.close()
            await session.close()
            await redis.aclose()

    app = build_app(SERVICE, lifespan=lifespan, readiness=readiness)
    app.state.service_token = (
        settings.service_token.get_secret_value() if settings.service_token else None
    )
    for exc_type in routes.HANDLED:
        app.add_exception_handler(exc_type, routes.error_response)
    app.include_router(dlq_routes.router)
    app.include_router(media_routes.router)
    return app
