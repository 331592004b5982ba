"""The relay's app: one lifespan wiring the database, the broker consumers, the
delivery dispatcher, the gauges and the endpoints API.

Start-up happens in a background task (migrations, pool, broker, consumers) so
``/healthz`` answers at once and ``/readyz`` is 503 until everything is connected.
Shutdown: stop consuming and drain in-flight messages, stop the dispatcher (leased
deliveries become due again when their lease ends), close the broker, the pool and
the HTTP sessions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import aiohttp
import asyncpg
from fastapi import FastAPI, Request

from flowchat_contracts import topology
from flowchat_platform import sealing
from flowchat_platform.amqp import Amqp, declare_own_queues
from flowchat_platform.db import create_pool, migrate_with_retry
from flowchat_platform.erasure import ErasureAgent
from flowchat_platform.http import ApiError, Readiness, build_app, handle_errors
from flowchat_platform.logs import get_logger
from flowchat_platform.meta_echo import MetaEcho
from flowchat_platform.privacy import privacy_index
from flowchat_platform.redis import create_redis
from flowchat_platform.retention import retention_loop
from flowchat_platform.runner import Background
from flowchat_platform.sealing import SealStep
from flowchat_platform.subscriptions import SubscriptionWriter
from flowchat_platform.tenant_client import TenantClient
from flowchat_relay import SCHEMA, SERVICE, metrics
from flowchat_relay.broker import AmqpNotices
from flowchat_relay.consumer import ANY_EVENT, INBOUND, RelayConsumer
from flowchat_relay.deps import Runtime
from flowchat_relay.dispatcher import Dispatcher
from flowchat_relay.errors import (
    DeliveryNotFound,
    EndpointNotFound,
    InvalidCursor,
    InvalidEndpoint,
    RelayError,
)
from flowchat_relay.http_client import HttpPoster, system_resolve
from flowchat_relay.ports import DeliveryStore, RetentionStore
from flowchat_relay.repository import NO_FSYNC, Repository
from flowchat_relay.routes import router
from flowchat_relay.safety import Resolve
from flowchat_relay.service import EndpointService, Intake, SaveBatcher, purge
from flowchat_relay.settings import Settings

log = get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
#: How long past the total timeout a leased delivery stays invisible to other workers.
LEASE_MARGIN_S = 30.0


def to_api_error(_: Request, exc: RelayError) -> ApiError:
    """Each refusal's HTTP status, code and details (one table, one handler)."""
    if isinstance(exc, InvalidEndpoint):
        details = [{"loc": ["body", exc.field], "msg": str(exc), "type": "invalid_endpoint"}]
        return ApiError(422, "invalid_request", str(exc), details=details)
    if isinstance(exc, EndpointNotFound | DeliveryNotFound):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, InvalidCursor):
        return ApiError(400, "invalid_cursor", str(exc))
    return ApiError(400, "bad_request", str(exc))


async def open_pools(settings: Settings) -> list[asyncpg.Pool]:
    """The durable pool (events before the ack), and the pool of leases, outcomes and
    reads (commits that do not wait for the disk); neither resets sessions on release
    (the relay leaves no session state)."""
    return [
        await create_pool(
            settings.database_url,
            schema=SCHEMA,
            max_size=settings.db_pool_size,
            reset=False,
            settings=NO_FSYNC if fast else None,
        )
        for fast in (False, True)
    ]


async def open_repository(pools: list[asyncpg.Pool], settings: Settings) -> Repository:
    """The store, with any secret still stored in the clear (before migration 0002)
    encrypted and the conversation counters keyed by customers' ids in clear (before
    0004) re-keyed by their digests."""
    durable, fast = pools
    repository = Repository(
        durable,
        settings.secret_box(),
        fast=fast,
        index=privacy_index(settings.privacy_key, settings.service_token),
    )
    if encrypted := await repository.encrypt_clear_secrets():
        log.info("endpoint secrets encrypted", count=encrypted)
    if rekeyed := await repository.seal_sequences():
        log.info("conversation sequences keyed by digest", count=rekeyed)
    return repository


async def seal_loop(
    repository: Repository, settings: Settings, state: sealing.SealingState
) -> None:
    """The background pass encrypting at rest the events and the delivery log stored in
    clear before (migration 0004; found through the partial indexes of 0005, so a start
    with nothing left reads nothing); then, with an old key still in ``ENCRYPTION_KEYS``,
    every token (and the endpoints' secrets) re-encrypted under the newest, once per new
    key (``state``: the ``sealing_state`` table, resumed after a restart)."""
    box = settings.secret_box()
    steps: dict[str, SealStep] = {
        "events": partial(repository.seal_events, rotate=False),
        "attempts": partial(repository.seal_attempts, rotate=False),
    }
    rounds = [("sealed", steps)]
    if box.key_count > 1:
        rotations = {
            "events": repository.seal_events,
            "attempts": repository.seal_attempts,
            "endpoints": repository.seal_endpoints,
        }
        rounds.append(
            (
                "rotated",
                {
                    table: state.step(
                        table, partial(step, rotate=True), key_id=box.key_id, start=""
                    )
                    for table, step in rotations.items()
                },
            )
        )
    for action, round_steps in rounds:
        await sealing.seal_loop(
            round_steps,
            action=action,
            batch=settings.seal_batch_size,
            pause_s=settings.seal_pause_s,
            counted=partial(_sealed_counter, action),
        )


def _sealed_counter(action: str, table: str) -> Callable[[int], object]:
    return metrics.SEALED.labels(table, action).inc


def make_poster(settings: Settings, resolve: Resolve) -> HttpPoster:
    return HttpPoster(
        resolve=resolve,
        allow_private=settings.allow_private_targets,
        connect_timeout_s=settings.connect_timeout_s,
        total_timeout_s=settings.total_timeout_s,
        response_limit=settings.response_limit,
    )


def create_app(  # noqa: PLR0915 - the one place the whole service is wired
    settings: Settings, *, resolve: Resolve = system_resolve
) -> FastAPI:
    """The relay; ``resolve`` (host, port → addresses) is the DNS seam tests replace."""
    readiness = Readiness()
    runtime = Runtime(
        service_token=settings.service_token.get_secret_value(),
        retention_days=settings.retention_days,
    )
    amqp = Amqp(settings.amqp_url, service=SERVICE, publish_timeout_s=settings.publish_timeout_s)
    poster = make_poster(settings, resolve)
    state: dict[str, object] = {}
    pools: list[asyncpg.Pool] = []
    redis = create_redis(settings.redis_url)
    subscriptions = SubscriptionWriter(redis)

    async def start(bg: Background, tenants: TenantClient) -> None:
        await migrate_with_retry(settings.database_url, MIGRATIONS, SCHEMA)
        pools.extend(await open_pools(settings))
        repository = await open_repository(pools, settings)
        dispatcher = Dispatcher(
            repository,
            poster,
            concurrency=settings.endpoint_concurrency,
            retry_for_s=settings.retry_for_s,
            backoff_base_s=settings.backoff_base_s,
            max_backoff_s=settings.max_backoff_s,
            disable_after_s=settings.disable_after_s,
            lease_s=settings.total_timeout_s + LEASE_MARGIN_S,
            batch=settings.lease_batch,
            poll_interval_s=settings.poll_interval_s,
            notices=AmqpNotices(amqp),
        )
        saves = SaveBatcher(repository, max_batch=settings.prefetch)
        intake = Intake(
            repository,
            repository,
            tenants,
            on_stored=dispatcher.wake,
            save=saves.submit,
            sends=MetaEcho(redis),
        )
        runtime.endpoints = EndpointService(
            repository,
            resolve,
            allow_private=settings.allow_private_targets,
            allow_http=settings.allow_http,
            secret_overlap_s=settings.secret_overlap_s,
            subscriptions=subscriptions,
        )
        runtime.deliveries = repository
        runtime.retention = repository
        runtime.exports = repository
        runtime.dispatcher = dispatcher
        await amqp.connect()
        await declare_own_queues(
            settings.amqp_url,
            topology.RELAY_QUEUES,
            topology.RELAY_BINDINGS,
            topology.RELAY_RETIRED_BINDINGS,
        )
        bg.start("saves", saves.run())
        bg.start("dispatcher", dispatcher.run())
        bg.start("gauges", gauge_loop(repository, settings))
        bg.start(
            "retention", retention_loop(_retention(repository, settings), settings.purge_interval_s)
        )
        bg.start("subscriptions", subscriptions_loop(runtime.endpoints, settings))
        # the rotation's cursor on the fast pool: a lost one re-encrypts a batch again
        bg.start("seal", seal_loop(repository, settings, sealing.SealingState(pools[1])))
        await consume(amqp, RelayConsumer(intake), settings.prefetch)
        await ErasureAgent(
            amqp, SERVICE, lambda r: repository.erase_customer(r.tenant_id, r.identities)
        ).start()
        state["consuming"] = True
        log.info("relay started")

    readiness.add("database", lambda: bool(pools) and not pools[0].is_closing())
    readiness.add("broker", lambda: amqp.ready and bool(state.get("consuming")))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        session = aiohttp.ClientSession()
        tenants = TenantClient(settings.tenant_url, runtime.service_token, session=session)
        runtime.tenants = tenants
        await poster.start()
        bg = Background()
        bg.start("startup", start(bg, tenants))
        try:
            yield
        finally:
            await amqp.stop_consuming(settings.shutdown_grace_s)
            await bg.stop()
            await amqp.close(grace_s=settings.shutdown_grace_s)
            runtime.endpoints = runtime.deliveries = runtime.dispatcher = None
            for pool in pools:
                await pool.close()
            await poster.close()
            await session.close()
            await redis.aclose()

    app = build_app(SERVICE, lifespan=lifespan, readiness=readiness, title="FlowChat relay")
    app.state.runtime = runtime
    handle_errors(app, RelayError, to_api_error)
    app.include_router(router)
    return app


async def subscriptions_loop(endpoints: EndpointService, settings: Settings) -> None:
    """Every tenant's subscription set rewritten from the database, at start and then
    every ``subscriptions_sync_s`` (endpoints the dispatcher disabled drop out)."""
    while True:
        await endpoints.sync_subscriptions()
        await asyncio.sleep(settings.subscriptions_sync_s)


async def consume(amqp: Amqp, consumer: RelayConsumer, prefetch: int) -> None:
    await amqp.consume(
        topology.QUEUE_RELAY_EVENTS, consumer.on_event, decoder=ANY_EVENT, prefetch=prefetch
    )
    await amqp.consume(
        topology.QUEUE_RELAY_INBOUND, consumer.on_inbound, decoder=INBOUND, prefetch=prefetch
    )


def _retention(
    store: RetentionStore, settings: Settings
) -> Callable[[], Awaitable[dict[str, int]]]:
    """One retention pass of the relay with its settings (``retention_days``)."""

    async def run() -> dict[str, int]:
        return await purge(
            store,
            retention_days=settings.retention_days,
            batch_size=settings.purge_batch_size,
            now=datetime.now(UTC),
        )

    return run


async def gauge_loop(store: DeliveryStore, settings: Settings) -> None:
    """The oldest undelivered event's age per endpoint; series of endpoints that no
    longer exist are removed (the label stays bounded by registered endpoints)."""
    shown: set[str] = set()
    while True:
        try:
            ages = await store.oldest_pending()
            known = set(await store.endpoint_ids())
            for endpoint_id in known:
                metrics.OLDEST_UNDELIVERED.labels(endpoint_id).set(ages.get(endpoint_id, 0.0))
            for gone in shown - known:
                metrics.OLDEST_UNDELIVERED.remove(gone)
            shown = known
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a gauge is best effort
            log.warning("gauge refresh failed", error=repr(exc))
        await asyncio.sleep(settings.gauge_interval_s)
