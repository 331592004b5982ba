"""The conversation service's ASGI app and its resources' lifecycle."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import asyncpg
from fastapi import FastAPI
from flowchat_platform.amqp import Amqp
from flowchat_platform.db import create_pool, migrate
from flowchat_platform.http import Readiness, build_app
from flowchat_platform.logs import get_logger
from flowchat_platform.redis import create_redis
from flowchat_platform.runner import Background
from flowchat_platform.tenant_client import TenantClient

from flowchat_conversation import SERVICE, metrics
from flowchat_conversation.consumer import AmqpOutbox, InboundConsumer
from flowchat_conversation.deps import ApiContext
from flowchat_conversation.orders import InvoiceLinks
from flowchat_conversation.outreach import AmqpOutreachOutbox, Outreach
from flowchat_conversation.outreach_repository import OutreachRepository
from flowchat_conversation.repository import Repository
from flowchat_conversation.routes import router
from flowchat_conversation.routes_orders import public as invoices_router
from flowchat_conversation.routes_orders import router as orders_router
from flowchat_conversation.routes_outreach import OutreachSlot
from flowchat_conversation.routes_outreach import router as outreach_router
from flowchat_conversation.service import CatalogService, ConversationService, OrderService
from flowchat_conversation.sessions import RedisSessionStore
from flowchat_conversation.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA = "conversation"
log = get_logger(__name__)


async def migrate_with_retry(dsn: str) -> None:
    delay = 0.5
    while True:
        try:
            await migrate(dsn, MIGRATIONS, schema=SCHEMA)
            return
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("database unavailable for migrations, retrying", error=repr(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def purge_handled(orders: OrderService, settings: Settings) -> None:
    """Delete old inbound dedupe rows now and then (bounded batches; any replica may)."""
    while True:
        try:
            n = await orders.purge_handled(
                older_than_s=settings.handled_retention_h * 3600,
                batch=settings.handled_purge_batch,
            )
            if n:
                metrics.HANDLED_PURGED.inc(n)
                log.info("old handled messages purged", rows=n)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("purging handled messages failed", error=repr(exc))
        await asyncio.sleep(settings.handled_purge_interval_s)


def invoice_links(settings: Settings) -> InvoiceLinks:
    secret = settings.link_secret or settings.service_token
    if secret is None:
        log.warning("no link secret or service token: invoice links work on this replica only")
        return InvoiceLinks(settings.public_url, secrets.token_bytes(32))
    return InvoiceLinks(settings.public_url, secret.get_secret_value().encode())


def create_app(settings: Settings) -> FastAPI:
    readiness = Readiness()
    token = settings.service_token.get_secret_value() if settings.service_token else None
    links = invoice_links(settings)
    api = ApiContext(service_token=token)
    pools: list[asyncpg.Pool] = []
    outreach = OutreachSlot()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        http = aiohttp.ClientSession()
        api.tenants = TenantClient(settings.tenant_url, token or "", session=http)
        redis = create_redis(settings.redis_url)
        sessions = RedisSessionStore(
            redis, ttl_s=settings.session_ttl_s, cart_ttl_s=settings.cart_ttl_s
        )
        amqp = Amqp(
            settings.amqp_url, service=SERVICE, publish_timeout_s=settings.publish_timeout_s
        )
        readiness.add("broker", lambda: amqp.ready)
        readiness.add("database", lambda: bool(pools))
        readiness.add("redis", sessions.ping)
        readiness.add("outreach", lambda: outreach.value is not None)
        background = Background()

        async def start() -> None:
            await migrate_with_retry(settings.database_url)
            pool = await create_pool(
                settings.database_url, schema=SCHEMA, max_size=settings.db_pool_size
            )
            pools.append(pool)
            repository = Repository(pool)
            api.catalog = CatalogService(repository)
            outbox = AmqpOutbox(amqp)
            api.orders = OrderService(repository, sessions, outbox, links)
            service = ConversationService(repository, sessions, outbox, links)
            await amqp.connect()
            await InboundConsumer(service).start(amqp, prefetch=settings.prefetch)
            background.start("purge-handled", purge_handled(api.orders, settings))
            outreach.value = Outreach.build(
                settings, OutreachRepository(pool), AmqpOutreachOutbox(amqp), api.tenants, http
            )
            if settings.outreach_workers:
                await outreach.value.start(amqp, background, prefetch=settings.prefetch)

        background.start("start", start())
        try:
            yield
        finally:
            await background.stop()
            await amqp.close(settings.shutdown_grace_s)
            for pool in pools:
                await pool.close()
            await redis.aclose()
            await http.close()

    app = build_app(SERVICE, lifespan=lifespan, readiness=readiness)
    app.state.api = api
    app.state.outreach = outreach
    app.include_router(router)
    app.include_router(orders_router)
    app.include_router(invoices_router)
    app.include_router(outreach_router)
    return app
