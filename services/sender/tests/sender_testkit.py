"""Sender test kit (imported by the tests that run the sender against the real sandbox).

One business number as the tenant service and the sandbox both know it
(:class:`Number`), a stub of the tenant service's credentials API with a webhook sink
for the sandbox (:func:`tenant_stub`), and :func:`world`: the sandbox served
in-process, the number registered, the broker's topology declared, and the
:class:`World` the tests drive (settings for an in-process sender, an environment
for a sender subprocess, publishing, the sandbox's ledger, the queues), with the
test's Redis keys removed afterwards.

Redis: :func:`own_redis_url` — not the shared test database (13, flushed by every
test on the machine: a flush between a SIGKILL and a restart would erase the claims
that prevent a resend); every test's keys carry its own tenant or number and are
deleted by :func:`world`.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import httpx
import orjson
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from flowchat_contracts import OutboundCommand, SendResult, send_results_in, topology
from flowchat_platform.accounts import AccountCredentials
from flowchat_platform.amqp import HEADER_REASON, Amqp
from flowchat_platform.testing import drain_queue, eventually, free_port, serve
from flowchat_sandbox.app import create_app as create_sandbox
from flowchat_sandbox.settings import Settings as SandboxSettings
from flowchat_sender.settings import Settings

#: The Redis database of these tests (see the module's docstring).
REDIS_DB = 9


def own_redis_url(redis_url: str) -> str:
    return redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"


@dataclass(frozen=True)
class Number:
    """One business account (Meta) as the tenant service and the sandbox know it."""

    tenant_id: str
    account_id: str
    phone_number_id: str
    waba_id: str
    access_token: str = "test-access-token"
    app_secret: str = "a" * 24
    throughput_mps: int = 1000
    display_phone_number: str = "+1 650 555 0000"

    @classmethod
    def fresh(cls, tenant_prefix: str, account_id: str, *, pnid_prefix: str, **kw: Any) -> Number:
        """A number of a tenant of the test's own: tenant id and number made unique."""
        tenant = f"{tenant_prefix}{uuid.uuid4().hex[:8]}"
        pnid = f"{pnid_prefix}{uuid.uuid4().int % 10**8:08d}"
        return cls(tenant, account_id, pnid, f"w-{tenant}", **kw)

    def account_json(self) -> dict[str, Any]:
        """The tenant service's answer for the account."""
        return {
            "account_id": self.account_id,
            "tenant_id": self.tenant_id,
            "provider": "meta",
            "phone_number_id": self.phone_number_id,
            "waba_id": self.waba_id,
            "access_token": self.access_token,
            "app_secret": self.app_secret,
            "throughput_mps": self.throughput_mps,
        }

    @property
    def credentials(self) -> AccountCredentials:
        return AccountCredentials.model_validate(self.account_json())

    def sandbox_json(self, webhook_url: str) -> dict[str, Any]:
        """The sandbox's registration of the number (``POST /sandbox/numbers``)."""
        return {
            "phone_number_id": self.phone_number_id,
            "waba_id": self.waba_id,
            "display_phone_number": self.display_phone_number,
            "access_token": self.access_token,
            "app_secret": self.app_secret,
            "webhook_url": webhook_url,
            "throughput_mps": self.throughput_mps,
        }


def tenant_stub(accounts: Mapping[str, dict[str, Any]], *, token: str | None = None) -> FastAPI:
    """The tenant service's credentials API (``accounts`` by id, 404 for any other; with
    ``token``, every call must carry it) and a webhook sink for the sandbox."""
    app = FastAPI()

    @app.get("/internal/v1/accounts/{account_id}")
    async def get_account(account_id: str, request: Request) -> Response:
        if token is not None:
            assert request.headers["authorization"] == f"Bearer {token}"
        if account_id not in accounts:
            return JSONResponse({"error": {"code": "not_found"}}, status_code=404)
        return JSONResponse(accounts[account_id], headers={"Cache-Control": "max-age=60"})

    @app.post("/webhook")
    async def sink() -> Response:
        return Response(status_code=200)

    return app


async def declare_topology(amqp_url: str) -> None:
    """Declare the broker's topology (the senders do it too; the tests publish first)."""
    declarer = Amqp(amqp_url, service="test")
    await declarer.connect()
    await declarer.close(grace_s=1)


async def forget_keys(redis_url: str, patterns: Sequence[str]) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        for pattern in patterns:
            async for key in client.scan_iter(match=pattern, count=1000):
                await client.delete(key)
    finally:
        await client.aclose()


@dataclass
class World:
    """The sandbox, the tenant stub and the broker around one number; no sender yet."""

    amqp_url: str
    redis_url: str
    sandbox: httpx.AsyncClient
    sandbox_url: str
    stub_url: str
    number: Number
    token: str
    #: Settings every sender of the test gets (before :meth:`settings`' own).
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def tenant(self) -> str:
        return self.number.tenant_id

    @property
    def pnid(self) -> str:
        return self.number.phone_number_id

    @property
    def waba(self) -> str:
        return self.number.waba_id

    def settings(self, **kw: Any) -> Settings:
        """An in-process sender's settings against this world."""
        base: dict[str, Any] = {
            "AMQP_URL": self.amqp_url,
            "REDIS_URL": self.redis_url,
            "FLOWCHAT_TENANT_URL": self.stub_url,
            "FLOWCHAT_GATEWAY_URL": self.stub_url,
            "FLOWCHAT_SERVICE_TOKEN": self.token,
            "graph_url": self.sandbox_url,
            "shutdown_grace_s": 5,
            "http_port": free_port(),
        }
        return Settings(**{**base, **self.defaults, **kw})

    def env(self, **kw: str) -> dict[str, str]:
        """The environment of a sender subprocess (``python -m flowchat_sender``)."""
        return {
            **os.environ,
            "AMQP_URL": self.amqp_url,
            "REDIS_URL": self.redis_url,
            "FLOWCHAT_TENANT_URL": self.stub_url,
            "FLOWCHAT_GATEWAY_URL": self.stub_url,
            "FLOWCHAT_SERVICE_TOKEN": self.token,
            "FLOWCHAT_SENDER_GRAPH_URL": self.sandbox_url,
            "FLOWCHAT_SENDER_HTTP_PORT": str(free_port()),
            "LOG_LEVEL": "WARNING",
            **kw,
        }

    def command(self, n: int, content: Any, **kw: Any) -> OutboundCommand:
        """Command ``n`` of this test's tenant and number, to ``+1650888<n>``."""
        base: dict[str, Any] = {
            "tenant_id": self.tenant,
            "account_id": self.number.account_id,
            "idempotency_key": f"{self.tenant}-{n}",
            "message_id": f"{self.tenant}-m{n}",
            "to": f"+1650888{n:04d}",
            "category": "utility",
            "content": content,
        }
        return OutboundCommand(**{**base, **kw})

    # ------------------------------------------------------------ the sandbox

    async def template(self, name: str, **kw: Any) -> str:
        """Create a template in the number's WABA (APPROVED unless ``status``); its id."""
        body = {"waba_id": self.waba, "name": name, "language": "en_US", **kw}
        r = await self.sandbox.post("/sandbox/templates", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def open_windows(self, wa_ids: Sequence[str]) -> None:
        """Each customer writes once: free-form replies are allowed for 24 h."""
        for wa_id in wa_ids:
            r = await self.sandbox.post(
                f"/sandbox/customers/{wa_id}/messages",
                json={"phone_number_id": self.pnid, "text": "hi"},
            )
            assert r.status_code == 200, r.text

    async def ledger(self) -> list[dict[str, Any]]:
        """What the provider accepted from the number, in order of arrival."""
        r = await self.sandbox.get("/sandbox/messages", params={"phone_number_id": self.pnid})
        r.raise_for_status()
        entries: list[dict[str, Any]] = r.json()
        return entries

    async def ledger_ids(self) -> list[str]:
        """FlowChat's message ids in the ledger, in order of arrival."""
        return [str(e["biz_opaque_callback_data"]) for e in await self.ledger()]

    # ------------------------------------------------------------ the broker

    async def publish(
        self, commands: Sequence[OutboundCommand], *, lanes: bool = False, in_order: bool = False
    ) -> None:
        """To ``flowchat.outbound``, transactional lane (``lanes``: each command's own);
        ``in_order``: one confirm at a time, so the queue holds them in list order."""
        client = Amqp(self.amqp_url, service="test", declare=False)
        await client.connect()
        try:

            async def one(c: OutboundCommand) -> None:
                await client.publish(
                    topology.EXCHANGE_OUTBOUND,
                    topology.outbound_routing_key(
                        c.tenant_id, c.account_id, c.category if lanes else None
                    ),
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

    async def park(
        self, command: OutboundCommand, reason: str = "retries exhausted after 5 attempts: test"
    ) -> None:
        """Put ``command`` in the DLQ as if the sender had parked it."""
        client = Amqp(self.amqp_url, service="test", declare=False)
        await client.connect()
        try:
            await client.publish(
                "",
                topology.QUEUE_OUTBOUND_DLQ,
                command,
                message_id=command.message_id,
                headers={HEADER_REASON: reason},
            )
        finally:
            await client.close(grace_s=1)

    async def business_event(self, field_name: str, data: dict[str, Any]) -> None:
        """What the gateway publishes for a business webhook (templates) of the number."""
        event = {
            "schema_version": 1,
            "kind": "business_event",
            "event_id": uuid.uuid4().hex,
            "tenant_id": self.tenant,
            "account_id": self.number.account_id,
            "correlation_id": uuid.uuid4().hex,
            "provider": "meta",
            "field": field_name,
            "event": data.get("event"),
            "waba_id": self.waba,
            "occurred_at": "2026-11-23T10:00:00+00:00",
            "data": data,
        }
        client = Amqp(self.amqp_url, service="test", declare=False)
        await client.connect()
        try:
            await client.publish(
                topology.EXCHANGE_EVENTS,
                topology.events_routing_key(self.tenant, self.number.account_id, field_name),
                orjson.dumps(event),
            )
        finally:
            await client.close(grace_s=1)

    async def results(self, expected: int, *, timeout_s: float = 20) -> dict[str, SendResult]:
        """Send results by message id, once at least ``expected`` have been published."""
        got: dict[str, SendResult] = {}

        async def enough() -> bool:
            for msg in await drain_queue(self.amqp_url, topology.QUEUE_STATE_STATUS):
                if orjson.loads(msg.body).get("kind") == "command_parked":
                    continue  # the sender parked a command: not a send result
                for result in send_results_in(msg.body):
                    got[result.message_id] = result
            return len(got) >= expected

        await eventually(enough, timeout_s=timeout_s, interval_s=0.1)
        return got

    async def drain(self, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
        return await drain_queue(self.amqp_url, queue)

    async def depth(self, queue: str) -> int:
        conn = await aio_pika.connect(self.amqp_url)
        try:
            q = await (await conn.channel()).declare_queue(queue, passive=True)
            return int(q.declaration_result.message_count or 0)
        finally:
            await conn.close()


@asynccontextmanager
async def world(
    amqp_url: str,
    redis_url: str,
    number: Number,
    *,
    token: str,
    stub: FastAPI | None = None,
    forget: Sequence[str] = (),
    defaults: Mapping[str, Any] | None = None,
    status_delay_s: float = 30,
) -> AsyncIterator[World]:
    """The sandbox (in-process) with ``number`` registered, the tenant ``stub`` (by
    default one answering for ``number`` and checking ``token``), the topology
    declared; afterwards the number's rate-limit keys and the ``forget`` patterns are
    deleted from Redis (``redis_url``: see :func:`own_redis_url`). The sandbox posts
    status webhooks ``status_delay_s`` after a send."""
    await declare_topology(amqp_url)
    if stub is None:
        stub = tenant_stub({number.account_id: number.account_json()}, token=token)
    async with (
        serve(create_sandbox(SandboxSettings(status_delay_s=status_delay_s))) as sandbox_url,
        serve(stub) as stub_url,
        httpx.AsyncClient(base_url=sandbox_url) as sandbox,
    ):
        r = await sandbox.post("/sandbox/numbers", json=number.sandbox_json(f"{stub_url}/webhook"))
        assert r.status_code == 201, r.text
        try:
            yield World(
                amqp_url,
                redis_url,
                sandbox,
                sandbox_url,
                stub_url,
                number,
                token,
                dict(defaults or {}),
            )
        finally:
            await forget_keys(
                redis_url, [*forget, f"flowchat:sender:rl:*{number.phone_number_id}*"]
            )
