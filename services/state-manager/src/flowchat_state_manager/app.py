"""The state-manager's app: one lifespan wiring the database, the broker, the
consumer, the outbox relay, retention and the query API.

Start-up happens in a background task (migrations, pool, broker, consumer) so
``/healthz`` answers at once and ``/readyz`` is 503 until everything is connected.
Shutdown: stop consuming and drain in-flight messages, stop the background loops,
close the broker, then the pool and the HTTP session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis

from flowchat_contracts import topology
from flowchat_platform import http
from flowchat_platform.amqp import Amqp
from flowchat_platform.db import create_pool, migrate_with_retry
from flowchat_platform.http import ApiError, Readiness, build_app, handle_errors
from flowchat_platform.logs import get_logger
from flowchat_platform.redis import create_redis
from flowchat_platform.runner import Background
from flowchat_platform.subscriptions import SubscriptionView
from flowchat_platform.tenant_client import TenantClient
from flowchat_state_manager import SCHEMA, SERVICE
from flowchat_state_manager.audience import BrokerAudience
from flowchat_state_manager.batching import Batcher
from flowchat_state_manager.consumer import DECODER, StatusConsumer
from flowchat_state_manager.deps import Runtime
from flowchat_state_manager.errors import MessageNotFound, QueryError
from flowchat_state_manager.privacy import identity_sealer, start_privacy
from flowchat_state_manager.query_service import QueryService
from flowchat_state_manager.relay import OutboxRelay, Publish
from flowchat_state_manager.repository import Repository
from flowchat_state_manager.routes import router
from flowchat_state_manager.service import StateService, Written
from flowchat_state_manager.settings import Settings

log = get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
EVENT_TYPE = "message_status_changed"


#: Each refused query's HTTP status and error code (one table, one handler).
QUERY_ERRORS: dict[type[QueryError], tuple[int, str]] = {
    MessageNotFound: (404, "not_found"),
}


def to_api_error(_: Request | None, exc: QueryError) -> ApiError:
    """A refused query as the API answers it (the platform's one handler, ``handle_errors``)."""
    status, code = QUERY_ERRORS[type(exc)]
    return ApiError(status, code, str(exc))


def error_response(exc: QueryError) -> JSONResponse:
    """The one error body for a refused query."""
    return http.error_response(to_api_error(None, exc))


def event_publisher(amqp: Amqp) -> Publish:
    """Publish one status-change event with a broker confirm.

    ``mandatory=False``: ``flowchat.events`` is a broadcast that may have no subscriber
    bound for a key; such an event is confirmed and dropped by the broker instead of
    blocking the outbox forever. Nacks, timeouts and lost connections still raise.
    """

    async def publish(routing_key: str, body: bytes, event_id: str) -> None:
        await amqp.publish(
            topology.EXCHANGE_EVENTS,
            routing_key,
            body,
            message_id=event_id,
            message_type=EVENT_TYPE,
            mandatory=False,
        )

    return publish


def status_audience(settings: Settings, amqp: Amqp, redis: Redis) -> BrokerAudience | None:
    """Who reads status events (None: publish every change)."""
    if settings.status_events_for_all:
        return None
    return BrokerAudience(
        amqp,
        SubscriptionView(redis, ttl_s=settings.subscriptions_ttl_s),
        reader_queues=settings.status_reader_queues,
    )


def create_app(settings: Settings) -> FastAPI:
    readiness = Readiness()
    runtime = Runtime(
        service_token=settings.service_token.get_secret_value(),
        retention_days=settings.retention_days,
    )
    amqp = Amqp(settings.amqp_url, service=SERVICE, publish_timeout_s=settings.publish_timeout_s)
    state: dict[str, object] = {}
    pools: list[asyncpg.Pool] = []
    audience = status_audience(settings, amqp, redis := create_redis(settings.redis_url))

    async def start(bg: Background) -> None:
        await migrate_with_retry(settings.database_url, MIGRATIONS, SCHEMA)
        # No reset query at every release (a round trip each): the service leaves no
        # session state (its advisory locks are transaction-scoped; no SET, LISTEN or
        # cursors), and an open transaction is still rolled back on release.
        pool = await create_pool(
            settings.database_url, schema=SCHEMA, max_size=settings.db_pool_size, reset=False
        )
        pools.append(pool)
        sealer = identity_sealer(settings)
        repository = Repository(pool, sealer)
        relay = OutboxRelay(
            repository,
            event_publisher(amqp),
            batch_size=settings.outbox_batch_size,
            poll_interval_s=settings.outbox_poll_interval_s,
        )
        service = StateService(
            repository,
            on_events=relay.wake,
            audience=audience,
            written=Written(settings.written_rows, settings.written_ttl_s),
        )
        runtime.query = QueryService(repository)
        runtime.retention = repository
        state["service"] = service
        batcher = Batcher(
            service,
            workers=settings.batch_workers,
            max_batch=settings.max_batch,
            linger_s=settings.batch_linger_ms / 1000,
        )
        await amqp.connect()
        bg.start("batcher", batcher.run())
        bg.start("outbox-relay", relay.run())
        bg.start("retention", retention_loop(service, settings))
        bg.start("gauges", gauge_loop(service, settings))
        await amqp.consume(
            topology.QUEUE_STATE_STATUS,
            StatusConsumer(batcher).handle,
            decoder=DECODER,
            prefetch=settings.prefetch,
            ack_linger_s=settings.ack_linger_ms / 1000,
        )
        await start_privacy(bg, amqp, repository, sealer, settings, service.written.clear)
        state["consuming"] = True
        log.info("state-manager started")

    readiness.add("database", lambda: bool(pools) and not pools[0].is_closing())
    readiness.add("broker", lambda: amqp.ready and bool(state.get("consuming")))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        session = aiohttp.ClientSession()
        runtime.tenants = TenantClient(settings.tenant_url, runtime.service_token, session=session)
        bg = Background()
        bg.start("startup", start(bg))
        try:
            yield
        finally:
            await amqp.stop_consuming(settings.shutdown_grace_s)
            await bg.stop()
            await amqp.close(grace_s=settings.shutdown_grace_s)  # consumers already drained
            runtime.query = None
            runtime.retention = None
            for pool in pools:
                await pool.close()
            await redis.aclose()
            await session.close()

    app = build_app(
        SERVICE,
        lifespan=lifespan,
        readiness=readiness,
        title="FlowChat state-manager",
    )
    app.state.runtime = runtime
    handle_errors(app, QueryError, to_api_error)
    app.include_router(router)
    return app


async def retention_loop(service: StateService, settings: Settings) -> None:
    while True:
        try:
            result = await service.purge(
                retention_days=settings.retention_days,
                batch_size=settings.purge_batch_size,
                now=datetime.now(UTC),
                days_ahead=settings.partition_days_ahead,
            )
            log.info(
                "retention purge",
                messages=result.messages,
                pending=result.pending,
                partitions=result.partitions,
                partition_rows=result.partition_rows,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - try again next round
            log.warning("retention purge failed", error=repr(exc))
        await asyncio.sleep(settings.purge_interval_s)


async def gauge_loop(service: StateService, settings: Settings) -> None:
    while True:
        try:
            await service.refresh_gauges()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a gauge is best effort
            log.warning("gauge refresh failed", error=repr(exc))
        await asyncio.sleep(settings.gauge_interval_s)
