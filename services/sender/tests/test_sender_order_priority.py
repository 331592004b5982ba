"""Order per customer and transactional-before-marketing, against real RabbitMQ, Redis and
the sandbox (its ledger is the provider's order of arrival).

- replies to one customer reach the provider in publish order even when the first one
  is slow, while other customers' messages go on concurrently;
- with thousands of marketing commands queued (and being sent), a transactional command
  published later reaches the provider ahead of almost all of them;
- a marketing command's retry and its DLQ replay come back to the bulk lane.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from flowchat_contracts import OutboundCommand, TextContent, topology
from flowchat_platform.amqp import Amqp
from flowchat_platform.testing import drain_queue, eventually, free_port, serve
from flowchat_sandbox.app import create_app as create_sandbox
from flowchat_sandbox.settings import Settings as SandboxSettings
from flowchat_sender import fates
from flowchat_sender.app import create_app
from flowchat_sender.dlq import ParkingLot
from flowchat_sender.idempotency import IdempotencyStore
from flowchat_sender.settings import Settings

pytestmark = pytest.mark.integration

TOKEN = "order-test-service-token-012345"
PNID = f"10656{uuid.uuid4().int % 10**8:08d}"
WABA = "waba-7002"
ACCESS = "order-access-token"
#: Not the shared test database (13): this file's keys are removed afterwards.
REDIS_DB = 9
SLOW_S = 0.3


def tenant_stub() -> FastAPI:
    app = FastAPI()

    @app.get("/internal/v1/accounts/{account_id}")
    async def get_account(account_id: str) -> Response:
        if account_id != "acc-o":
            return JSONResponse({"error": {"code": "not_found"}}, status_code=404)
        body = {
            "account_id": "acc-o",
            "tenant_id": "t-o",
            "provider": "meta",
            "phone_number_id": PNID,
            "waba_id": WABA,
            "access_token": ACCESS,
            "app_secret": "a" * 24,
            "throughput_mps": 1000,
        }
        return JSONResponse(body, headers={"Cache-Control": "max-age=60"})

    @app.post("/webhook")
    async def sink() -> Response:
        return Response(status_code=200)

    return app


@dataclass
class SlowLink:
    """Between the sender and the sandbox: holds requests whose text starts with "slow"
    for ``SLOW_S`` and counts how many requests are in flight at once."""

    target: str
    in_flight: int = 0
    most_in_flight: int = 0
    seen: list[str] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()
        client = httpx.AsyncClient(base_url=self.target, timeout=10)

        @app.post("/{version}/{pnid}/messages")
        async def forward(version: str, pnid: str, request: Request) -> Response:
            raw = await request.body()
            text = str(orjson.loads(raw).get("text", {}).get("body", ""))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                if text.startswith("slow"):
                    await asyncio.sleep(SLOW_S)
                r = await client.post(
                    f"/{version}/{pnid}/messages",
                    content=raw,
                    headers={
                        "Authorization": request.headers["authorization"],
                        "Content-Type": "application/json",
                    },
                )
            finally:
                self.in_flight -= 1
            return Response(r.content, status_code=r.status_code, media_type="application/json")

        return app


@dataclass
class World:
    amqp_url: str
    redis_url: str
    sandbox: httpx.AsyncClient
    sandbox_url: str
    stub_url: str

    def settings(self, graph_url: str | None = None, **kw: Any) -> Settings:
        base: dict[str, Any] = {
            "AMQP_URL": self.amqp_url,
            "REDIS_URL": self.redis_url,
            "FLOWCHAT_TENANT_URL": self.stub_url,
            "FLOWCHAT_GATEWAY_URL": self.stub_url,
            "FLOWCHAT_SERVICE_TOKEN": TOKEN,
            "graph_url": graph_url or self.sandbox_url,
            "shutdown_grace_s": 5,
            "http_port": free_port(),
        }
        return Settings(**{**base, **kw})

    async def open_windows(self, wa_ids: list[str]) -> None:
        """Each customer writes once: free-form replies are allowed for 24 h."""
        for wa_id in wa_ids:
            r = await self.sandbox.post(
                f"/sandbox/customers/{wa_id}/messages",
                json={"phone_number_id": PNID, "text": "hi"},
            )
            assert r.status_code == 200, r.text

    async def publish(self, commands: list[OutboundCommand], *, in_order: bool = False) -> None:
        """To ``flowchat.outbound`` by each command's lane; ``in_order``: one confirm at a
        time, so the queue holds them in list order."""
        client = Amqp(self.amqp_url, service="test", declare=False)
        await client.connect()
        try:

            async def one(c: OutboundCommand) -> None:
                await client.publish(
                    topology.EXCHANGE_OUTBOUND,
                    topology.outbound_routing_key(c.tenant_id, c.account_id, c.category),
                    c,
                    message_id=c.message_id,
                )

            if in_order:
                for c in commands:
                    await one(c)
            else:
                for i in range(0, len(commands), 500):
                    await asyncio.gather(*(one(c) for c in commands[i : i + 500]))
        finally:
            await client.close(grace_s=1)

    async def depth(self, queue: str) -> int:
        conn = await aio_pika.connect(self.amqp_url)
        try:
            q = await (await conn.channel()).declare_queue(queue, passive=True)
            return int(q.declaration_result.message_count or 0)
        finally:
            await conn.close()

    async def ledger(self) -> list[str]:
        """Message ids in the order the provider accepted them."""
        r = await self.sandbox.get("/sandbox/messages", params={"phone_number_id": PNID})
        r.raise_for_status()
        return [str(e["biz_opaque_callback_data"]) for e in r.json()]


@pytest.fixture
async def world(amqp_url: str, redis_url: str) -> AsyncIterator[World]:
    declarer = Amqp(amqp_url, service="test")
    await declarer.connect()
    await declarer.close(grace_s=1)
    own_redis = redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    async with (
        serve(create_sandbox(SandboxSettings(status_delay_s=30))) as sandbox_url,
        serve(tenant_stub()) as stub_url,
        httpx.AsyncClient(base_url=sandbox_url) as sandbox,
    ):
        r = await sandbox.post(
            "/sandbox/numbers",
            json={
                "phone_number_id": PNID,
                "waba_id": WABA,
                "display_phone_number": "+1 650 555 7002",
                "access_token": ACCESS,
                "app_secret": "a" * 24,
                "webhook_url": f"{stub_url}/webhook",
                "throughput_mps": 1000,
            },
        )
        assert r.status_code == 201, r.text
        try:
            yield World(amqp_url, own_redis, sandbox, sandbox_url, stub_url)
        finally:
            client = aioredis.Redis.from_url(own_redis)
            try:
                for pattern in ("flowchat:sender:idem:t-o:*", f"flowchat:sender:rl:*{PNID}*"):
                    async for key in client.scan_iter(match=pattern, count=1000):
                        await client.delete(key)
            finally:
                await client.aclose()


def text(run: str, i: int, to: str, body: str, category: str = "utility") -> OutboundCommand:
    return OutboundCommand(
        tenant_id="t-o",
        account_id="acc-o",
        idempotency_key=f"{run}-{i}",
        message_id=f"{run}-m{i}",
        to=to,
        category=category,  # type: ignore[arg-type]
        content=TextContent(body=body),
    )


async def test_replies_to_one_customer_keep_their_order(world: World) -> None:
    customers = [f"1650888{k:04d}" for k in range(4)]
    await world.open_windows(customers)
    run = uuid.uuid4().hex[:6]
    # Interleaved: c0 #0, c1 #0, ..., c0 #1, ...; each customer's first reply is slow.
    commands = [
        text(run, n * len(customers) + k, f"+{c}", f"{'slow ' if n == 0 else ''}reply {n}")
        for n in range(5)
        for k, c in enumerate(customers)
    ]
    await world.publish(commands, in_order=True)
    link = SlowLink(world.sandbox_url)
    async with serve(link.app()) as link_url, serve(create_app(world.settings(link_url))):

        async def all_sent() -> bool:
            return len(await world.ledger()) == len(commands)

        await eventually(all_sent, timeout_s=30, interval_s=0.1)
    ledger = await world.ledger()
    for c in customers:
        published = [m.message_id for m in commands if m.to == f"+{c}"]
        assert [m for m in ledger if m in published] == published, f"reordered for {c}"
    # the other customers were not serialized behind one customer's slow reply
    assert link.most_in_flight >= len(customers)


async def test_transactional_overtakes_a_marketing_backlog(world: World) -> None:
    customers = [f"1650999{k:04d}" for k in range(100)]
    await world.open_windows(customers)
    run = uuid.uuid4().hex[:6]
    n_bulk = 3000
    campaign = [
        text(run, i, f"+{customers[i % len(customers)]}", f"sale {i}", "marketing")
        for i in range(n_bulk)
    ]
    await world.publish(campaign)
    assert await world.depth(topology.QUEUE_OUTBOUND_BULK) == n_bulk
    assert await world.depth(topology.QUEUE_OUTBOUND) == 0
    urgent = [text(run, n_bulk + j, f"+{customers[j]}", f"order {j} confirmed") for j in range(5)]
    async with serve(create_app(world.settings(bulk_prefetch=64))):

        async def campaign_going() -> bool:
            return len(await world.ledger()) >= 300

        await eventually(campaign_going, timeout_s=60, interval_s=0.05)
        before = len(await world.ledger())
        published_at = time.perf_counter()
        await world.publish(urgent)

        async def urgent_sent() -> bool:
            return {m.message_id for m in urgent} <= set(await world.ledger())

        await eventually(urgent_sent, timeout_s=30, interval_s=0.02)
        waited = time.perf_counter() - published_at
        ledger = await world.ledger()
        positions = [ledger.index(m.message_id) for m in urgent]
    ahead = max(positions) - before - len(urgent) + 1
    print(
        f"transactional behind a {n_bulk} marketing backlog: sent {waited:.2f}s after publish, "
        f"{ahead} marketing messages reached the provider first (bulk prefetch 64)"
    )
    assert before < n_bulk / 2, "the campaign must still be queued when they are published"
    # Only the bulk commands already in flight (prefetch 64) and those that started
    # while the transactional ones were still being published may go first: nowhere near
    # the ~2,700 still queued.
    assert ahead <= 64 * 3


async def test_marketing_retries_and_replays_stay_in_the_bulk_lane(world: World) -> None:
    run = uuid.uuid4().hex[:6]
    retried = text(run, 1, "+16507770101", "sale 1", "marketing")
    parked = text(run, 2, "+16507770102", "sale 2", "marketing")
    await world.sandbox.put(
        f"/sandbox/numbers/{PNID}/faults", json={"error_code": 131000, "error_count": -1}
    )
    # a failed attempt waits its backoff (5 s) in the bulk lane's own tier
    bulk_tier = topology.retry_tier_for(fates.backoff_s(1), queue=topology.QUEUE_OUTBOUND_BULK)
    async with serve(create_app(world.settings())):
        await world.publish([retried])

        async def in_bulk_tier() -> bool:
            return await world.depth(bulk_tier.queue) == 1

        await eventually(in_bulk_tier, timeout_s=15)
    for tier in topology.RETRY_TIERS:  # none of the transactional lane's
        assert await world.depth(tier.queue) == 0
    assert await world.ledger() == []

    client = Amqp(world.amqp_url, service="test", declare=False)
    await client.connect()
    await client.publish(
        "",
        topology.QUEUE_OUTBOUND_DLQ,
        parked,
        message_id=parked.message_id,
        headers={"x-flowchat-reason": "retries exhausted after 5 attempts: test"},
    )
    await client.close(grace_s=1)
    redis = aioredis.Redis.from_url(world.redis_url)
    try:
        report = await ParkingLot(world.amqp_url, IdempotencyStore(redis, ttl_s=600)).replay()
    finally:
        await redis.aclose()
    assert report.replayed == [parked.message_id]
    ids = [
        OutboundCommand.model_validate_json(m.body).message_id
        for m in await drain_queue(world.amqp_url, topology.QUEUE_OUTBOUND_BULK)
    ]
    assert parked.message_id in ids
    assert await world.depth(topology.QUEUE_OUTBOUND) == 0
