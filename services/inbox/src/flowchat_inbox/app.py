"""The inbox's app: one lifespan wiring the database, the broker, the history
consumer (batched writes), the inbox and the live streams (fanned out to every replica
through the broker: :mod:`.live_fanout`).

Start-up runs in a background task (migrations, pool, broker, consumer) so ``/healthz``
answers at once and ``/readyz`` is 503 until everything is connected. Shutdown: stop
consuming and drain in-flight messages, stop the writers and gauges, close the broker,
the pool and the HTTP session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from flowchat_contracts import topology
from flowchat_inbox import SCHEMA, SERVICE, metrics
from flowchat_inbox.authz import ApiKeyAuthoriser, UserAuthoriser
from flowchat_inbox.batching import Batcher
from flowchat_inbox.broker import AmqpPublisher
from flowchat_inbox.consumer import HISTORY_ITEM, HistoryConsumer
from flowchat_inbox.deps import Runtime
from flowchat_inbox.errors import Refused
from flowchat_inbox.inbox_service import InboxService
from flowchat_inbox.live_fanout import BrokerLive
from flowchat_inbox.repository import Repository
from flowchat_inbox.routes import (
    conversations_router,
    retention_router,
    stream_router,
    threads_router,
)
from flowchat_inbox.seal_pass import seal_identities, seal_loop
from flowchat_inbox.sealing import InboxSealer
from flowchat_inbox.service import HistoryService
from flowchat_inbox.settings import Settings
from flowchat_platform.amqp import Amqp, declare_own_queues
from flowchat_platform.db import create_pool, migrate_with_retry
from flowchat_platform.erasure import ErasureAgent
from flowchat_platform.http import Readiness, build_app, error_body
from flowchat_platform.logs import get_logger
from flowchat_platform.privacy import IdentitySealer, identity_box, privacy_index
from flowchat_platform.retention import retention_loop
from flowchat_platform.runner import Background
from flowchat_platform.tenant_client import TenantClient

log = get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def error_response(exc: Refused) -> JSONResponse:
    """The one error body for every refusal (status and code from the error's class)."""
    details = [exc.details] if exc.details else None
    return JSONResponse(error_body(exc.code, exc.message, details), status_code=exc.status)


def inbox_sealer(settings: Settings) -> InboxSealer:
    """The encryption of customers' data at rest: ``FLOWCHAT_INBOX_ENCRYPTION_KEYS`` and
    the platform's blind index (``FLOWCHAT_PRIVACY_KEY``)."""
    box = identity_box(
        settings.encryption_keys, settings.service_token, "FLOWCHAT_INBOX_ENCRYPTION_KEYS"
    )
    return InboxSealer(
        IdentitySealer(box, privacy_index(settings.privacy_key, settings.service_token))
    )


def create_app(settings: Settings) -> FastAPI:  # noqa: PLR0915 - the one place the service is wired
    readiness = Readiness()
    service_token = settings.service_token.get_secret_value()
    authoriser = UserAuthoriser(ApiKeyAuthoriser(service_token=service_token, keys=None), None)
    runtime = Runtime(
        authoriser=authoriser,
        keepalive_s=settings.stream_keepalive_s,
        reauth_s=settings.stream_reauth_s,
        retention_days=settings.retention_days,
    )
    amqp = Amqp(settings.amqp_url, service=SERVICE, publish_timeout_s=settings.publish_timeout_s)
    fanout = BrokerLive(runtime.live, settings.amqp_url)
    metrics.WAIT_ALERT.set(settings.wait_alert_s)
    sealer = inbox_sealer(settings)  # a bad key refuses to start, naming the variable
    state: dict[str, object] = {}
    pools: list[asyncpg.Pool] = []

    async def start(bg: Background) -> None:
        await migrate_with_retry(settings.database_url, MIGRATIONS, SCHEMA)
        pool = await create_pool(
            settings.database_url, schema=SCHEMA, max_size=settings.db_pool_size
        )
        pools.append(pool)
        repository = Repository(pool, sealer)
        history = HistoryService(repository)
        batcher = Batcher(
            history, fanout, workers=settings.batch_workers, max_batch=settings.max_batch
        )
        await amqp.connect()
        await fanout.start()
        bg.start("live", fanout.run())
        await declare_own_queues(
            settings.amqp_url,
            topology.INBOX_QUEUES,
            topology.INBOX_BINDINGS,
            topology.INBOX_RETIRED_BINDINGS,
        )
        runtime.history = history
        runtime.inbox = InboxService(
            repository,
            history,
            AmqpPublisher(amqp),
            fanout,
            window_s=settings.window_s,
        )
        bg.start("batcher", batcher.run())
        bg.start(
            "retention", retention_loop(_retention(history, settings), settings.purge_interval_s)
        )
        bg.start(
            "gauges",
            gauge_loop(runtime.inbox, settings.gauge_interval_s, settings.gauge_top_tenants),
        )
        # ingest finds customers by their ids' digests: rows stored in clear sealed first
        await seal_identities(repository, batch=settings.seal_batch_size)
        bg.start(
            "seal",
            seal_loop(
                repository,
                rotate=sealer.rotating,
                batch=settings.seal_batch_size,
                pause_s=settings.seal_pause_s,
            ),
        )
        await amqp.consume(
            topology.QUEUE_INBOX_HISTORY,
            HistoryConsumer(batcher).handle,
            decoder=HISTORY_ITEM,
            prefetch=settings.prefetch,
            ack_linger_s=settings.ack_linger_s,
        )
        await ErasureAgent(amqp, SERVICE, history.erase).start()
        state["consuming"] = True
        log.info("inbox started")

    readiness.add("database", lambda: bool(pools) and not pools[0].is_closing())
    readiness.add("broker", lambda: amqp.ready and fanout.ready and bool(state.get("consuming")))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        session = aiohttp.ClientSession()
        tenants = TenantClient(
            settings.tenant_url, service_token, session=session, user_ttl_s=settings.user_cache_s
        )
        authoriser.use(tenants)
        bg = Background()
        bg.start("startup", start(bg))
        try:
            yield
        finally:
            await amqp.stop_consuming(settings.shutdown_grace_s)
            await bg.stop()
            await amqp.close(grace_s=settings.shutdown_grace_s)
            await fanout.close()
            runtime.history = None
            runtime.inbox = None
            for pool in pools:
                await pool.close()
            await session.close()

    app = build_app(
        SERVICE,
        lifespan=lifespan,
        readiness=readiness,
        title="FlowChat inbox",
        max_json_bytes=settings.max_json_bytes,
    )
    app.state.runtime = runtime
    _add_routes(app)
    return app


def _add_routes(app: FastAPI) -> None:
    @app.exception_handler(Refused)
    async def refused(_: Request, exc: Refused) -> JSONResponse:
        return error_response(exc)

    app.include_router(threads_router)
    app.include_router(conversations_router)
    app.include_router(stream_router)
    app.include_router(retention_router)


def _retention(
    history: HistoryService, settings: Settings
) -> Callable[[], Awaitable[dict[str, int]]]:
    """One retention pass of the inbox with its settings (message content is kept
    ``retention_days``)."""

    async def run() -> dict[str, int]:
        return await history.purge(
            retention_days=settings.retention_days,
            batch_size=settings.purge_batch_size,
            now=datetime.now(UTC),
        )

    return run


async def gauge_loop(inbox: InboxService, interval_s: float, top_tenants: int) -> None:
    """Customers waiting and the oldest wait: across tenants, and per tenant for the
    ``top_tenants`` waiting longest (the others' series are removed)."""
    while True:
        try:
            stats = await inbox.store.wait_stats(None, inbox.clock())
            longest = await inbox.longest_waits(top_tenants)
            metrics.WAITING.set(stats.waiting)
            metrics.OLDEST_WAIT.set(stats.oldest_wait_s or 0.0)
            metrics.TENANT_WAITING.clear()
            metrics.TENANT_OLDEST_WAIT.clear()
            for w in longest:
                metrics.TENANT_WAITING.labels(w.tenant_id).set(w.waiting)
                metrics.TENANT_OLDEST_WAIT.labels(w.tenant_id).set(w.oldest_wait_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a gauge is best effort
            log.warning("gauge refresh failed", error=repr(exc))
        await asyncio.sleep(interval_s)
