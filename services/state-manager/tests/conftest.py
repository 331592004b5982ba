"""Fixtures of the state-manager's integration tests: the real service on a fresh
RabbitMQ vhost and a fresh PostgreSQL database, a stub tenant internal API, a
publisher of status events, and a queue bound to ``flowchat.events``."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio
from fastapi import FastAPI, Header, Response
from prometheus_client import REGISTRY
from pydantic import BaseModel

from flowchat_contracts import (
    ProviderError,
    SendResult,
    SendResultBatch,
    SendResultBatchV2,
    StatusUpdate,
    topology,
)
from flowchat_contracts.command_events import CommandParked
from flowchat_platform.amqp import Amqp
from flowchat_platform.db import create_pool, migrate
from flowchat_platform.testing import (
    eventually,
    serve,
    temporary_database,
    temporary_redis_db,
    temporary_vhost,
)
from flowchat_state_manager import SCHEMA
from flowchat_state_manager.app import MIGRATIONS, create_app
from flowchat_state_manager.settings import Settings

SERVICE_TOKEN = "svc-token-0123456789abcdef"
T0 = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)

#: API keys the stub tenant service knows: key → (tenant, scopes).
API_KEYS: dict[str, tuple[str, list[str]]] = {
    "fc_key_tenant_a_read": ("tnt_a", ["read", "send"]),
    "fc_key_tenant_b_read": ("tnt_b", ["read"]),
    "fc_key_tenant_a_send": ("tnt_a", ["send"]),
    "fc_key_tenant_a_admin": ("tnt_a", ["admin", "read"]),
}


class VerifyBody(BaseModel):
    key: str


def tenant_stub_app() -> FastAPI:
    """The tenant service's internal API, as docs/interfaces.md words it (api keys only)."""
    app = FastAPI()

    @app.post("/internal/v1/api-keys/verify")
    async def verify(body: VerifyBody, authorization: str = Header("")) -> Response:
        if authorization != f"Bearer {SERVICE_TOKEN}":
            return Response(status_code=401)
        known = API_KEYS.get(body.key)
        if known is None:
            return Response(
                orjson.dumps({"error": {"code": "not_found", "message": "unknown key"}}),
                status_code=404,
                media_type="application/json",
            )
        tenant_id, scopes = known
        return Response(
            orjson.dumps(
                {"key_id": "key_" + body.key[-6:], "tenant_id": tenant_id, "scopes": scopes}
            ),
            media_type="application/json",
        )

    return app


def send_result(
    message_id: str,
    wamid: str | None,
    *,
    tenant: str = "tnt_a",
    account: str = "acc_1",
    status: str = "accepted",
    to: str = "15551230001",
    campaign_id: str | None = None,
    error: ProviderError | None = None,
    at: datetime = T0,
) -> SendResult:
    return SendResult(
        tenant_id=tenant,
        account_id=account,
        message_id=message_id,
        idempotency_key=f"idem-{message_id}",
        to=to,
        message_type="text",
        category="utility",
        campaign_id=campaign_id,
        status=status,
        provider="meta",
        provider_message_id=wamid,
        error=error,
        occurred_at=at,
    )


_OFFSET = {"sent": 1, "delivered": 2, "read": 3, "played": 4, "failed": 5}


def status_update(
    wamid: str,
    status: str,
    *,
    tenant: str = "tnt_a",
    account: str = "acc_1",
    message_id: str | None = None,
    errors: list[ProviderError] | None = None,
    event_id: str | None = None,
) -> StatusUpdate:
    return StatusUpdate(
        tenant_id=tenant,
        account_id=account,
        provider="meta",
        provider_message_id=wamid,
        status=status,
        timestamp=T0 + timedelta(seconds=_OFFSET[status]),
        recipient_id="15551230001",
        message_id=message_id,
        errors=errors or [],
        **({"event_id": event_id} if event_id else {}),
    )


def new_ids() -> tuple[str, str]:
    token = uuid.uuid4().hex
    return f"msg_{token[:12]}", f"wamid.HBgL{token}"


def consumed() -> float:
    total = 0.0
    for fate in ("ack", "poison", "dead_letter", "discard", "retry", "requeue"):
        total += (
            REGISTRY.get_sample_value(
                "flowchat_amqp_consumed_total",
                {"service": "state-manager", "queue": topology.QUEUE_STATE_STATUS, "fate": fate},
            )
            or 0.0
        )
    return total


class Harness:
    def __init__(
        self,
        base_url: str,
        http: httpx.AsyncClient,
        publisher: Amqp,
        db: asyncpg.Connection,
        channel: aio_pika.abc.AbstractChannel,
        events: aio_pika.abc.AbstractQueue,
    ) -> None:
        self.base_url = base_url
        self.http = http
        self.publisher = publisher
        self.db = db
        self.channel = channel
        self.events_queue = events
        self.received: list[dict[str, Any]] = []
        self.redis_url = ""

    send_result = staticmethod(send_result)
    status_update = staticmethod(status_update)
    new_ids = staticmethod(new_ids)

    async def publish(
        self,
        *items: SendResult
        | SendResultBatch
        | SendResultBatchV2
        | StatusUpdate
        | CommandParked
        | bytes,
        wait: bool = True,
    ) -> None:
        """Publish to flowchat.status; with ``wait``, return once the service handled them."""
        before = consumed()
        for item in items:
            if isinstance(item, bytes):
                key = topology.status_routing_key("tnt_x", "acc_x", "garbage")
            elif isinstance(item, SendResultBatchV2):
                scopes = ((r.tenant_id, r.account_id) for r in item.results)
                key = topology.send_results_routing_key(scopes, item.kind)
            else:
                key = topology.status_routing_key(item.tenant_id, item.account_id, item.kind)
            await self.publisher.publish(topology.EXCHANGE_STATUS, key, item)
        if wait:
            await eventually(lambda: consumed() >= before + len(items), timeout_s=10)

    def auth(self, tenant: str = "tnt_a") -> dict[str, str]:
        return {"Authorization": f"Bearer {SERVICE_TOKEN}", "X-Tenant-ID": tenant}

    async def message(self, message_id: str, tenant: str = "tnt_a") -> dict[str, Any]:
        r = await self.http.get(f"/v1/messages/{message_id}", headers=self.auth(tenant))
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def history(self, message_id: str, tenant: str = "tnt_a") -> list[str]:
        r = await self.http.get(f"/v1/messages/{message_id}/events", headers=self.auth(tenant))
        assert r.status_code == 200, r.text
        return [e["status"] for e in r.json()["items"]]

    async def take_events(self) -> list[dict[str, Any]]:
        """Everything published on flowchat.events so far (accumulated)."""
        while True:
            msg = await self.events_queue.get(no_ack=True, fail=False, timeout=5)
            if msg is None:
                return self.received
            body = orjson.loads(msg.body)
            assert msg.message_id == body["event_id"]
            self.received.append({**body, "_routing_key": msg.routing_key})

    async def events_for(self, message_id: str, count: int) -> list[dict[str, Any]]:
        async def enough() -> list[dict[str, Any]] | None:
            got = [e for e in await self.take_events() if e["message_id"] == message_id]
            return got if len(got) >= count else None

        return await eventually(enough, timeout_s=10)  # type: ignore[no-any-return]

    async def poison(self) -> list[aio_pika.abc.AbstractIncomingMessage]:
        queue = await self.channel.get_queue(topology.QUEUE_POISON, ensure=False)
        out = []
        while (msg := await queue.get(no_ack=True, fail=False, timeout=5)) is not None:
            out.append(msg)
        return out


def settings_for(amqp_url: str, database_url: str, tenant_url: str, **overrides: Any) -> Settings:
    """The service's settings for a test: every status change published (the tests'
    queue bound to ``flowchat.events``, ``#``, is a subscriber of its own), unless
    ``overrides`` say otherwise (``test_state_audience``)."""
    values: dict[str, Any] = {"status_events_for_all": True} | overrides
    return Settings(
        AMQP_URL=amqp_url,
        DATABASE_URL=database_url,
        FLOWCHAT_TENANT_URL=tenant_url,
        FLOWCHAT_SERVICE_TOKEN=SERVICE_TOKEN,
        outbox_poll_interval_s=0.2,
        shutdown_grace_s=5,
        **values,
    )


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Harness]:
    """The service under uvicorn, ready, with a publisher and an events queue."""
    app = create_app(settings)
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:

        async def ready() -> bool:
            return (await http.get("/readyz")).status_code == 200

        await eventually(ready, timeout_s=30)
        publisher = Amqp(settings.amqp_url, service="test-publisher")
        await publisher.connect()
        conn = await aio_pika.connect(settings.amqp_url)
        db = await asyncpg.connect(settings.database_url, server_settings={"search_path": SCHEMA})
        try:
            channel = await conn.channel()
            exchange = await channel.declare_exchange(
                topology.EXCHANGE_EVENTS, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(
                f"test.events.{uuid.uuid4().hex[:8]}", exclusive=True
            )
            await queue.bind(exchange, "#")
            yield Harness(base_url, http, publisher, db, channel, queue)
        finally:
            await db.close()
            await conn.close()
            await publisher.close(grace_s=0)


@pytest.fixture
async def tenant_url() -> AsyncIterator[str]:
    async with serve(tenant_stub_app()) as url:
        yield url


@pytest.fixture
async def harness(amqp_url: str, database_url: str, tenant_url: str) -> AsyncIterator[Harness]:
    """The service on this test's own vhost and database."""
    async with running(settings_for(amqp_url, database_url, tenant_url)) as h:
        yield h


#: Fixtures that open servers themselves (not through the platform's server fixtures).
OWN_SERVER_FIXTURES = frozenset({"shared_harness", "audience_harness"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test on the module-wide harness reaches RabbitMQ and PostgreSQL too: mark it
    ``integration`` like the platform marks the users of ``amqp_url``/``database_url``."""
    for item in items:
        if OWN_SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_harness() -> AsyncIterator[Harness]:
    """One service for a whole module, on a vhost and database of the module's own
    (rabbitmqctl makes a vhost per test cost ~2 s). Tests sharing it use fresh
    message ids and drain what they read, so they stay independent."""
    with temporary_vhost() as amqp_url:
        async with (
            temporary_database() as database_url,
            serve(tenant_stub_app()) as tenant,
            running(settings_for(amqp_url, database_url, tenant)) as h,
        ):
            yield h


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def audience_harness() -> AsyncIterator[Harness]:
    """:func:`shared_harness` with the service's default audience (status events only
    where some reader wants them) and a Redis index of its own (``redis_url``)."""
    with temporary_vhost() as amqp_url, temporary_redis_db() as redis_url:
        settings = settings_for(
            amqp_url,
            "",
            "",
            status_events_for_all=False,
            REDIS_URL=redis_url,
        )
        async with (
            temporary_database() as database_url,
            serve(tenant_stub_app()) as tenant,
            running(
                settings.model_copy(update={"database_url": database_url, "tenant_url": tenant})
            ) as h,
        ):
            h.redis_url = redis_url
            yield h


@pytest.fixture
async def state_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A migrated database and a pool on it, without broker or HTTP (service-level tests)."""
    await migrate(database_url, MIGRATIONS, schema=SCHEMA)
    pool = await create_pool(database_url, schema=SCHEMA, max_size=12)
    try:
        yield pool
    finally:
        await pool.close()


class Builders:
    send_result = staticmethod(send_result)
    status_update = staticmethod(status_update)
    new_ids = staticmethod(new_ids)


@pytest.fixture
def build() -> type[Builders]:
    """The event builders (test modules cannot import conftest in importlib mode)."""
    return Builders
