"""The conversation service's ASGI app and its resources' lifecycle."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis
from redis.exceptions import RedisError

from flowchat_contracts import CustomerIdentity
from flowchat_conversation import SERVICE, metrics
from flowchat_conversation.amqp_outbox import AmqpOutbox
from flowchat_conversation.commerce.catalog_service import CatalogService
from flowchat_conversation.commerce.consumer import InboundConsumer
from flowchat_conversation.commerce.order_service import OrderService
from flowchat_conversation.commerce.orders import InvoiceLinks
from flowchat_conversation.commerce.payment_http import HttpPaymentProvider
from flowchat_conversation.commerce.pdf_process import ProcessInvoiceRenderer
from flowchat_conversation.commerce.redis_limits import RedisInboundLimiter
from flowchat_conversation.commerce.redis_sessions import RedisSessionStore
from flowchat_conversation.commerce.repository import Repository
from flowchat_conversation.commerce.routes import ROUTERS as COMMERCE_ROUTERS
from flowchat_conversation.commerce.service import ConversationService
from flowchat_conversation.deps import ApiContext
from flowchat_conversation.errors import (
    BadSignature,
    CatalogError,
    CatalogNotConnected,
    ConversationError,
    DiscountRejected,
    InvalidAmount,
    InvalidState,
    InvalidTransition,
    InvoiceNotFound,
    NoHandoff,
    NoPaymentProvider,
    NotReady,
    OrderError,
    OrderNotFound,
    OutreachError,
    OutreachNotFound,
    PaymentRejected,
    ProviderRefused,
    ProviderUnavailable,
)
from flowchat_conversation.facts import Facts
from flowchat_conversation.outreach.consumer import EventsConsumer
from flowchat_conversation.outreach.graph_templates import GraphTemplates
from flowchat_conversation.outreach.redis_optouts import RedisOptOuts
from flowchat_conversation.outreach.reminders import BotReminders
from flowchat_conversation.outreach.repository import OutreachRepository
from flowchat_conversation.outreach.routes import ROUTERS as OUTREACH_ROUTERS
from flowchat_conversation.outreach.service import Outreach, Pacing
from flowchat_conversation.outreach.tenant_zones import TenantServiceZones
from flowchat_conversation.privacy.consumer import PrivacyConsumer, publish_request
from flowchat_conversation.privacy.export import ExportService
from flowchat_conversation.privacy.peers import InboxExport, RelayExport, StateExport
from flowchat_conversation.privacy.redis_store import RedisPrivacy
from flowchat_conversation.privacy.repository import PrivacyRepository
from flowchat_conversation.privacy.routes import router as privacy_router
from flowchat_conversation.privacy.service import ErasureService
from flowchat_conversation.sealing import Identities, identities, seal_loop
from flowchat_conversation.settings import Settings
from flowchat_platform.amqp import Amqp
from flowchat_platform.db import create_pool, migrate_with_retry
from flowchat_platform.http import Readiness, build_app, error_body
from flowchat_platform.logs import get_logger
from flowchat_platform.partitions import PartitionedConsumer
from flowchat_platform.privacy import privacy_index
from flowchat_platform.redis import create_redis
from flowchat_platform.runner import Background
from flowchat_platform.subscriptions import SubscriptionView
from flowchat_platform.tenant_client import TenantClient
from flowchat_platform.transient import is_transient

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA = "conversation"
log = get_logger(__name__)

#: The HTTP status of each refusal (the most specific class listed wins); anything
#: else of the service's own is a 500 with the same error body.
HTTP_STATUS: dict[type[ConversationError], int] = {
    NotReady: 503,
    CatalogError: 422,
    OrderError: 422,
    OrderNotFound: 404,
    InvalidTransition: 409,
    PaymentRejected: 409,
    InvalidAmount: 422,
    NoHandoff: 404,
    InvoiceNotFound: 404,
    DiscountRejected: 409,
    BadSignature: 401,
    CatalogNotConnected: 409,
    NoPaymentProvider: 409,
    OutreachError: 422,
    OutreachNotFound: 404,
    InvalidState: 409,
    ProviderUnavailable: 503,
    ProviderRefused: 502,
}


def http_status(exc: ConversationError) -> int:
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


async def refused(_: Request, exc: Exception) -> JSONResponse:
    """The one handler: a domain error → FlowChat's error body with its HTTP status."""
    assert isinstance(exc, ConversationError)
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details), status_code=http_status(exc)
    )


class CommerceHandoffs:
    """Outreach's :class:`~flowchat_conversation.outreach.ports.HandoffReleaser` on
    commerce's release (what ``POST …/conversations/{wa_id}/release`` does) and take-over
    (an agent took the conversation in the inbox: the bot goes quiet)."""

    def __init__(self, orders: OrderService) -> None:
        self._orders = orders

    async def release_handoff(
        self, tenant_id: str, account_id: str, customer: CustomerIdentity
    ) -> bool:
        ids = dict.fromkeys(i for i in (customer.key, customer.wa_id, customer.user_id) if i)
        for customer_id in ids:  # the key first; an id the conversation knows it by
            try:
                released = await self._orders.release(tenant_id, customer_id, account_id=account_id)
            except NoHandoff:
                continue
            return bool(released)
        return False

    async def take_over(self, tenant_id: str, account_id: str, customer: CustomerIdentity) -> bool:
        return await self._orders.take_over(tenant_id, account_id, customer.key)


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


async def cancel_overdue(orders: OrderService, settings: Settings) -> None:
    """Cancel confirmed orders unpaid past their due time now and then (any replica may)."""
    while True:
        try:
            n = await orders.cancel_overdue()
            if n:
                log.info("unpaid orders past their due time cancelled", orders=n)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("cancelling overdue orders failed", error=repr(exc))
        await asyncio.sleep(settings.overdue_check_interval_s)


async def rebuild_optouts(optouts: RedisOptOuts, source: OutreachRepository) -> None:
    """Repair the Redis opt-out sets from PostgreSQL (retried until it works)."""
    delay = 0.5
    while True:
        try:
            report = await optouts.rebuild(source)
            log.info(
                "opt-out sets rebuilt",
                tenants=report.tenants,
                added=report.added,
                removed=report.removed,
            )
            return
        except (OSError, asyncpg.PostgresError, RedisError, TimeoutError) as exc:
            log.warning("opt-out sets not rebuilt yet, retrying", error=repr(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def start_outreach(
    settings: Settings,
    repository: OutreachRepository,
    optouts: RedisOptOuts,
    amqp: Amqp,
    tenants: TenantClient | None,
    http: aiohttp.ClientSession,
    background: Background,
    handoffs: CommerceHandoffs | None = None,
    facts: Facts | None = None,
) -> Outreach:
    """The opt-out sets repaired, then contacts, campaigns and reminders (and their workers)."""
    await rebuild_optouts(optouts, repository)
    if tenants is None:
        raise RuntimeError("the tenant client is created before outreach")
    token = settings.service_token.get_secret_value() if settings.service_token else ""
    outreach = Outreach.build(
        repository,
        AmqpOutbox(amqp),
        accounts=tenants,
        templates=GraphTemplates(http, settings.graph_url, settings.graph_version),
        zones=TenantServiceZones(http, settings.tenant_url, token),
        optouts=optouts,
        pacing=Pacing(
            campaign_tick_s=settings.campaign_tick_s,
            campaign_idle_s=settings.campaign_idle_s,
            campaign_max_inflight=settings.campaign_max_inflight,
            campaign_inflight_window_s=settings.campaign_inflight_window_s,
            reminder_tick_s=settings.reminder_tick_s,
            reminder_idle_s=settings.reminder_idle_s,
            reminder_batch=settings.reminder_batch,
        ),
        handoffs=handoffs,
        facts=facts,
    )
    if settings.outreach_workers:
        await EventsConsumer(outreach.events).start(amqp, prefetch=settings.prefetch)
        background.start("campaign-runner", outreach.runner.run())
        background.start("reminder-scheduler", outreach.scheduler.run())
    return outreach


async def start_privacy(
    settings: Settings,
    pool: asyncpg.Pool,
    ids: Identities,
    redis: Redis,
    amqp: Amqp,
    outreach: Outreach,
) -> ErasureService:
    """Erasure requests and reports (``conversation.privacy``); campaigns skip erased
    customers."""
    erasures = ErasureService(
        PrivacyRepository(pool, ids),
        RedisPrivacy(redis),
        privacy_index(settings.privacy_key, settings.service_token),
        lambda request: publish_request(amqp, request),
        services=settings.erasure_services,
    )
    outreach.runner.suppressed = erasures.suppressed
    await PrivacyConsumer(amqp, erasures).start()
    return erasures


def bot_reminders(settings: Settings) -> BotReminders:
    def after(seconds: int) -> timedelta | None:
        return timedelta(seconds=seconds) if seconds > 0 else None

    return BotReminders(
        payment_due_before=after(settings.payment_due_reminder_before_s),
        abandoned_cart_after=after(settings.abandoned_cart_after_s),
        order_follow_up_after=after(settings.order_follow_up_after_s),
        restock=settings.restock_alerts,
        templates={
            kind: t.model_dump(exclude_none=True) for kind, t in settings.reminder_templates.items()
        },
    )


def order_jobs(background: Background, orders: OrderService, settings: Settings) -> None:
    background.start("purge-handled", purge_handled(orders, settings))
    background.start("cancel-overdue", cancel_overdue(orders, settings))


def payment_provider(settings: Settings, http: aiohttp.ClientSession) -> HttpPaymentProvider | None:
    if not settings.payment_provider_url:
        return None
    key = settings.payment_provider_key
    return HttpPaymentProvider(
        http, settings.payment_provider_url, key.get_secret_value() if key else ""
    )


def invoice_links(settings: Settings) -> InvoiceLinks:
    secret = settings.link_secret or settings.service_token
    if secret is None:
        log.warning("no link secret or service token: invoice links work on this replica only")
        return InvoiceLinks(settings.public_url, secrets.token_bytes(32))
    return InvoiceLinks(settings.public_url, secret.get_secret_value().encode())


async def start_inbound(
    service: ConversationService, amqp: Amqp, redis: aioredis.Redis, settings: Settings
) -> PartitionedConsumer:
    """Consume the inbound partitions this replica owns (and the unpartitioned queue)."""
    return await InboundConsumer(service).start(
        amqp,
        prefetch=settings.prefetch,
        redis=redis,
        partition_prefetch=settings.partition_prefetch,
        partition_interval_s=settings.partition_interval_s,
        partition_ttl_s=settings.partition_ttl_s,
        shutdown_grace_s=settings.shutdown_grace_s,
    )


async def _close(
    renderer: ProcessInvoiceRenderer,
    amqp: Amqp,
    pools: list[asyncpg.Pool],
    redis: aioredis.Redis,
    http: aiohttp.ClientSession,
    grace_s: float,
) -> None:
    await renderer.close()
    await amqp.close(grace_s)
    await asyncio.gather(*(pool.close() for pool in pools))
    await redis.aclose()
    await http.close()


def create_app(settings: Settings) -> FastAPI:
    readiness = Readiness()
    token = settings.service_token.get_secret_value() if settings.service_token else None
    links = invoice_links(settings)
    api = ApiContext(service_token=token)
    pools: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        http = aiohttp.ClientSession()
        api.tenants = TenantClient(settings.tenant_url, token or "", session=http)
        redis = create_redis(settings.redis_url)
        optouts = RedisOptOuts(redis)
        sessions = RedisSessionStore(
            redis, ttl_s=settings.session_ttl_s, cart_ttl_s=settings.cart_ttl_s
        )
        amqp = Amqp(
            settings.amqp_url, service=SERVICE, publish_timeout_s=settings.publish_timeout_s
        )
        for name, check in (
            ("broker", lambda: amqp.ready),
            ("database", lambda: bool(pools)),
            ("redis", sessions.ping),
            ("outreach", lambda: api.outreach is not None),
        ):
            readiness.add(name, check)
        background = Background()
        partitions: list[PartitionedConsumer] = []
        # invoice PDFs in a worker process started on demand: the service never
        # imports the PDF library (about 40 MB resident)
        renderer = ProcessInvoiceRenderer(idle_s=settings.pdf_worker_idle_s)

        async def start() -> None:
            await migrate_with_retry(settings.database_url, MIGRATIONS, SCHEMA)
            # no reset query at each release (a round trip and a commit each): the
            # service leaves no session state (its advisory locks are transaction locks;
            # no LISTEN, cursors or plain SET)
            pool = await create_pool(
                settings.database_url, schema=SCHEMA, max_size=settings.db_pool_size, reset=False
            )
            pools.append(pool)
            ids = identities(settings.encryption_keys, settings.privacy_key, settings.service_token)
            # customers stored in clear before: sealed in the background
            background.start(
                "seal",
                seal_loop(pool, ids, batch=settings.seal_batch_size, pause_s=settings.seal_pause_s),
            )
            repository = Repository(pool, ids)
            outreach_repository = OutreachRepository(pool, ids)
            api.catalog = CatalogService(repository)
            outbox = AmqpOutbox(amqp)
            reminders = bot_reminders(settings)
            facts = Facts(outbox, SubscriptionView(redis, ttl_s=settings.subscriptions_ttl_s))
            payments = payment_provider(settings, http)
            api.orders = OrderService(
                repository,
                sessions,
                outbox,
                links,
                reminders=reminders,
                facts=facts,
                renderer=renderer,
                payments=payments,
                payment_webhook_secret=(
                    settings.payment_webhook_secret.get_secret_value().encode()
                    if settings.payment_webhook_secret
                    else None
                ),
            )
            service = ConversationService(
                repository,
                sessions,
                outbox,
                links,
                optouts=optouts,
                reminders=reminders,
                facts=facts,
                limiter=RedisInboundLimiter(
                    redis, privacy_index(settings.privacy_key, settings.service_token)
                ),
                payments=payments,
                transient=is_transient,
                renderer=renderer,
                key_of=ids.key,
            )
            await amqp.connect()
            partitions.append(await start_inbound(service, amqp, redis, settings))
            order_jobs(background, api.orders, settings)
            api.outreach = await start_outreach(
                settings,
                outreach_repository,
                optouts,
                amqp,
                api.tenants,
                http,
                background,
                CommerceHandoffs(api.orders),
                facts,
            )
            api.erasures = await start_privacy(settings, pool, ids, redis, amqp, api.outreach)
            api.exports = ExportService(
                PrivacyRepository(pool, ids),
                [
                    InboxExport(http, settings.inbox_url, token or ""),
                    StateExport(http, settings.state_url, token or ""),
                    RelayExport(
                        http,
                        settings.relay_url,
                        token or "",
                        privacy_index(settings.privacy_key, settings.service_token),
                    ),
                ],
                pdf_link=links.url,
            )

        background.start("start", start())
        try:
            yield
        finally:
            await background.stop()
            # leave the group first: the others take the partitions up
            await asyncio.gather(*(group.stop() for group in partitions))
            await _close(renderer, amqp, pools, redis, http, settings.shutdown_grace_s)

    app = build_app(SERVICE, lifespan=lifespan, readiness=readiness)
    app.state.api = api
    app.add_exception_handler(ConversationError, refused)
    for router in (*COMMERCE_ROUTERS, *OUTREACH_ROUTERS, privacy_router):
        app.include_router(router)
    return app
