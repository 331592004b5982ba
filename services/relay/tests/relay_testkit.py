"""The relay's test kit: the real service on a fresh RabbitMQ vhost and PostgreSQL
database, a stub of the tenant service's internal API, receivers (real HTTP servers on
loopback) whose behaviour a test steers, and publishers of the events the relay consumes."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from fastapi import FastAPI, Header, Request, Response
from pydantic import BaseModel

from flowchat_contracts import CustomerIdentity, InboundMessageV2, topology
from flowchat_platform.amqp import Amqp
from flowchat_platform.crypto import SecretBox
from flowchat_platform.testing import eventually, free_port, serve
from flowchat_relay import SCHEMA
from flowchat_relay.app import create_app
from flowchat_relay.http_client import system_resolve
from flowchat_relay.safety import Resolve
from flowchat_relay.settings import Settings

SERVICE_TOKEN = "svc-token-0123456789abcdef"
ENCRYPTION_KEY = SecretBox.generate_key()
ADMIN_A = "fc_key_tenant_a_admin"
READ_A = "fc_key_tenant_a_read"
ADMIN_B = "fc_key_tenant_b_admin"
API_KEYS: dict[str, tuple[str, list[str]]] = {
    ADMIN_A: ("tnt_a", ["admin", "read", "send"]),
    READ_A: ("tnt_a", ["read"]),
    ADMIN_B: ("tnt_b", ["admin"]),
}
PHONE_NUMBER_ID = "106540352242922"
ACCOUNTS: dict[str, dict[str, Any]] = {
    "acc_1": {
        "account_id": "acc_1",
        "tenant_id": "tnt_a",
        "provider": "meta",
        "phone_number_id": PHONE_NUMBER_ID,
        "waba_id": "102290129340398",
        "display_phone_number": "15550783881",
    },
    "acc_b": {
        "account_id": "acc_b",
        "tenant_id": "tnt_b",
        "provider": "meta",
        "phone_number_id": "999",
        "waba_id": "998",
    },
}


class VerifyBody(BaseModel):
    key: str


def tenant_stub_app() -> FastAPI:
    """The tenant service's internal API as docs/interfaces.md words it (keys, accounts)."""
    app = FastAPI()

    def json(data: Any, status: int = 200) -> Response:
        return Response(orjson.dumps(data), status_code=status, media_type="application/json")

    @app.post("/internal/v1/api-keys/verify")
    async def verify(body: VerifyBody, authorization: str = Header("")) -> Response:
        if authorization != f"Bearer {SERVICE_TOKEN}":
            return Response(status_code=401)
        known = API_KEYS.get(body.key)
        if known is None:
            return json({"error": {"code": "not_found", "message": "unknown key"}}, 404)
        return json({"key_id": "key_" + body.key[-6:], "tenant_id": known[0], "scopes": known[1]})

    @app.get("/internal/v1/accounts/{account_id}")
    async def account(account_id: str, authorization: str = Header("")) -> Response:
        if authorization != f"Bearer {SERVICE_TOKEN}":
            return Response(status_code=401)
        found = ACCOUNTS.get(account_id)
        if found is None:
            return json({"error": {"code": "not_found", "message": "no account"}}, 404)
        return json(found)

    return app


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """A tenant's endpoint: answers ``status`` (or hangs, when ``hang``) and records
    every request it got."""

    status: int = 200
    hang: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    answer: bytes = b"ok"
    got: list[Received] = field(default_factory=list)
    #: Requests answered 2xx.
    accepted: list[Received] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            item = Received(
                dict(request.headers), await request.body(), asyncio.get_running_loop().time()
            )
            self.got.append(item)
            if self.hang:
                await self.release.wait()
            if 200 <= self.status < 300:
                self.accepted.append(item)
            return Response(self.answer, status_code=self.status, headers=self.headers)

        return app

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Receiver]:
        self.release.clear()
        async with serve(self.app(), port=self.port):
            try:
                yield self
            finally:
                self.release.set()

    def ids(self) -> list[str]:
        return [r.headers.get("webhook-id", "") for r in self.accepted]


def relay_settings(
    amqp_url: str, database_url: str, tenant_url: str, redis_url: str, **over: Any
) -> Settings:
    values: dict[str, Any] = {
        "AMQP_URL": amqp_url,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "FLOWCHAT_TENANT_URL": tenant_url,
        "FLOWCHAT_SERVICE_TOKEN": SERVICE_TOKEN,
        "encryption_keys": ENCRYPTION_KEY,
        "allow_private_targets": True,
        "poll_interval_s": 0.1,
        "backoff_base_s": 0.2,
        "max_backoff_s": 0.5,
        "connect_timeout_s": 1.0,
        "total_timeout_s": 2.0,
        "endpoint_concurrency": 2,
        "shutdown_grace_s": 2.0,
        "gauge_interval_s": 0.2,
        "subscriptions_sync_s": 0.5,
    }
    values.update(over)
    return Settings(**values)


T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


class Harness:
    def __init__(self, http: httpx.AsyncClient, publisher: Amqp, db: asyncpg.Connection) -> None:
        self.http = http
        self.publisher = publisher
        self.db = db

    @staticmethod
    def auth(key: str = ADMIN_A) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def create_endpoint(
        self,
        url: str,
        event_types: list[str] | None = None,
        *,
        format: str = "flowchat",
        key: str = ADMIN_A,
    ) -> dict[str, Any]:
        r = await self.http.post(
            "/v1/endpoints",
            json={
                "url": url,
                "event_types": event_types or ["message.status", "message.received"],
                "format": format,
                "description": "test",
            },
            headers=self.auth(key),
        )
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def endpoint(self, endpoint_id: str, key: str = ADMIN_A) -> dict[str, Any]:
        r = await self.http.get(f"/v1/endpoints/{endpoint_id}", headers=self.auth(key))
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def attempts(self, endpoint_id: str) -> list[dict[str, Any]]:
        r = await self.http.get(
            f"/v1/endpoints/{endpoint_id}/deliveries", params={"limit": 100}, headers=self.auth()
        )
        assert r.status_code == 200, r.text
        return r.json()["items"]  # type: ignore[no-any-return]

    async def publish_status(
        self,
        *,
        status: str = "delivered",
        tenant: str = "tnt_a",
        account: str = "acc_1",
        recipient: str = "15551230001",
        message_id: str | None = None,
        event_id: str | None = None,
        error: tuple[int, str] | None = None,
    ) -> dict[str, Any]:
        body = {
            "schema_version": 1,
            "kind": "message_status_changed",
            "event_id": event_id or uuid.uuid4().hex,
            "message_id": message_id or f"msg_{uuid.uuid4().hex[:12]}",
            "tenant_id": tenant,
            "account_id": account,
            "status": status,
            "previous_status": "sent",
            "provider": "meta",
            "provider_message_id": f"wamid.HBgL{uuid.uuid4().hex}",
            "recipient": recipient,
            "category": "utility",
            "campaign_id": None,
            "correlation_id": uuid.uuid4().hex,
            "error_code": error[0] if error else None,
            "error_title": error[1] if error else None,
            "timestamp": T0.isoformat(),
            "recorded_at": T0.isoformat(),
        }
        await self.publisher.publish(
            topology.EXCHANGE_EVENTS,
            topology.events_routing_key(tenant, account, status),
            orjson.dumps(body),
            message_id=str(body["event_id"]),
            mandatory=False,
        )
        return body

    async def publish_inbound(
        self,
        *,
        text: str = "hello",
        tenant: str = "tnt_a",
        account: str = "acc_1",
        wa_id: str = "15551230001",
    ) -> InboundMessageV2:
        message = InboundMessageV2(
            tenant_id=tenant,
            account_id=account,
            provider="meta",
            provider_message_id=f"wamid.IN{uuid.uuid4().hex}",
            phone_number_id=PHONE_NUMBER_ID,
            customer_name="Ada",
            customer=CustomerIdentity(wa_id=wa_id, user_id=f"US.{wa_id}"),
            customer_wa_id=wa_id,
            type="text",
            timestamp=T0,
            text=text,
        )
        await self.publisher.publish(
            topology.EXCHANGE_INBOUND,
            topology.inbound_routing_key(tenant, account, "text"),
            message,
        )
        return message

    async def publish_fact(
        self, body: BaseModel | dict[str, Any], *, tenant: str = "tnt_a", account: str = "acc_1"
    ) -> None:
        """Any event on ``flowchat.events`` (key ``<tenant>.<account>.<kind>``; a
        ``business_event`` under its Meta field, as the gateway publishes it)."""
        raw = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
        word = str(raw.get("kind", "unknown"))
        if word == "business_event":
            word = str(raw.get("field", word))
        await self.publisher.publish(
            topology.EXCHANGE_EVENTS,
            topology.events_routing_key(tenant, account, word),
            orjson.dumps(raw),
            message_id=str(raw.get("event_id") or uuid.uuid4().hex),
            mandatory=False,
        )

    async def count(self, sql: str, *args: Any) -> int:
        return int(await self.db.fetchval(sql, *args))


@contextlib.asynccontextmanager
async def running(settings: Settings, resolve: Resolve = system_resolve) -> AsyncIterator[Harness]:
    app = create_app(settings, resolve=resolve)
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=10) as http:

        async def ready() -> bool:
            return (await http.get("/readyz")).status_code == 200

        await eventually(ready, timeout_s=30)
        publisher = Amqp(settings.amqp_url, service="test-publisher")
        await publisher.connect()
        db = await asyncpg.connect(settings.database_url, server_settings={"search_path": SCHEMA})
        try:
            yield Harness(http, publisher, db)
        finally:
            await db.close()
            await publisher.close(grace_s=0)


@pytest.fixture
async def tenant_url() -> AsyncIterator[str]:
    async with serve(tenant_stub_app()) as url:
        yield url


StartRelay = Callable[..., contextlib.AbstractAsyncContextManager[Harness]]


@pytest.fixture
def start_relay(amqp_url: str, database_url: str, tenant_url: str, redis_url: str) -> StartRelay:
    """``async with start_relay(**settings_overrides, resolve=…) as h``."""

    def start(
        resolve: Resolve = system_resolve, **over: Any
    ) -> contextlib.AbstractAsyncContextManager[Harness]:
        return running(
            relay_settings(amqp_url, database_url, tenant_url, redis_url, **over), resolve
        )

    return start


@pytest.fixture
async def harness(start_relay: StartRelay) -> AsyncIterator[Harness]:
    async with start_relay() as h:
        yield h


async def wait_for(predicate: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    return await eventually(predicate, timeout_s=timeout_s)
