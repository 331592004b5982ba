"""The inbox's test kit: the real service on a RabbitMQ vhost and a
PostgreSQL database of the module's own, a stub tenant internal API, and builders and
publishers of the queue messages the inbox reads.

API keys of the stub carry their tenant and scope (``fc-<tenant>-<scope>-<n>``), so each
test takes fresh tenants and the module shares one service.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
import httpx
import orjson
from fastapi import FastAPI, Header, Response
from prometheus_client import REGISTRY
from pydantic import BaseModel

from flowchat_contracts import (
    CustomerIdentity,
    HandoffRequested,
    InboundMessage,
    InboundMessageV2,
    OutboundCommand,
    TemplateContent,
    TextContent,
    topology,
)
from flowchat_inbox import SCHEMA
from flowchat_inbox.app import create_app
from flowchat_inbox.sealing import InboxSealer
from flowchat_inbox.settings import Settings
from flowchat_platform.amqp import Amqp
from flowchat_platform.crypto import SecretBox
from flowchat_platform.privacy import BlindIndex, IdentitySealer
from flowchat_platform.testing import eventually, serve

SERVICE_TOKEN = "svc-token-inbox-0123456789abcdef"
#: The inbox's keys in the tests (customers' data encrypted at rest).
ENCRYPTION_KEY = "q3S8kY5w4n2wQm0vXb7b8m4kq7c5Zs8gWc1x3yZ0aQ4="
PRIVACY_KEY = "privacy-key-inbox-tests-0123456789"


def sealer(*keys: str) -> InboxSealer:
    """The inbox's encryption under ``keys`` (default: the tests' key, as the kit's inbox)."""
    box = SecretBox([k.encode() for k in (keys or (ENCRYPTION_KEY,))])
    return InboxSealer(IdentitySealer(box, BlindIndex(PRIVACY_KEY.encode())))


class VerifyBody(BaseModel):
    key: str


def tenant_stub_app() -> FastAPI:
    """The tenant service's internal key check (docs/interfaces.md), keys self-describing."""
    app = FastAPI()

    @app.post("/internal/v1/api-keys/verify")
    async def verify(body: VerifyBody, authorization: str = Header("")) -> Response:
        if authorization != f"Bearer {SERVICE_TOKEN}":
            return Response(status_code=401)
        parts = body.key.split("-")
        if len(parts) != 4 or parts[0] != "fc":
            return Response(
                orjson.dumps({"error": {"code": "not_found", "message": "unknown key"}}),
                status_code=404,
                media_type="application/json",
            )
        _, tenant, scope, n = parts
        return Response(
            orjson.dumps(
                {"key_id": f"{tenant}_{scope}_{n}", "tenant_id": tenant, "scopes": [scope]}
            ),
            media_type="application/json",
        )

    return app


def consumed() -> float:
    total = 0.0
    for fate in ("ack", "poison", "dead_letter", "discard", "retry", "requeue"):
        total += (
            REGISTRY.get_sample_value(
                "flowchat_amqp_consumed_total",
                {"service": "inbox", "queue": topology.QUEUE_INBOX_HISTORY, "fate": fate},
            )
            or 0.0
        )
    return total


def new_tenant() -> str:
    return f"tnt{uuid.uuid4().hex[:10]}"


def phone() -> str:
    return f"1555{uuid.uuid4().int % 10**7:07d}"


class Kit:
    """The running service, a publisher, a database connection and helpers."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        publisher: Amqp,
        db: asyncpg.Connection,
        channel: aio_pika.abc.AbstractChannel,
        base_url: str,
    ) -> None:
        self.http = http
        self.publisher = publisher
        self.db = db
        self.channel = channel
        self.base_url = base_url
        #: The settings the service runs with (another replica runs with the same).
        self.settings: Settings | None = None

    new_tenant = staticmethod(new_tenant)
    phone = staticmethod(phone)

    # ---- auth
    @staticmethod
    def key(tenant: str, scope: str = "admin", n: int = 1) -> dict[str, str]:
        return {"Authorization": f"Bearer fc-{tenant}-{scope}-{n}"}

    # ---- builders
    @staticmethod
    def inbound(
        tenant: str,
        *,
        wa_id: str | None = None,
        user_id: str | None = None,
        text: str = "hello",
        account: str = "acc1",
        at: datetime | None = None,
        provider_message_id: str | None = None,
    ) -> InboundMessage | InboundMessageV2:
        common: dict[str, Any] = {
            "tenant_id": tenant,
            "account_id": account,
            "provider": "meta",
            "provider_message_id": provider_message_id or f"wamid.{uuid.uuid4().hex}",
            "phone_number_id": "pn1",
            "type": "text",
            "text": text,
            "timestamp": at or datetime.now(UTC),
            "customer_name": "Ada",
        }
        if user_id is None:
            assert wa_id is not None
            return InboundMessage(
                customer_wa_id=wa_id, customer=CustomerIdentity(wa_id=wa_id), **common
            )
        return InboundMessageV2(
            customer=CustomerIdentity(wa_id=wa_id, user_id=user_id), customer_wa_id=wa_id, **common
        )

    @staticmethod
    def outbound(
        tenant: str,
        to: str,
        *,
        text: str = "hi there",
        account: str = "acc1",
        key: str | None = None,
        message_id: str | None = None,
        campaign_id: str | None = None,
        template: bool = False,
        at: datetime | None = None,
    ) -> OutboundCommand:
        content: Any = (
            TemplateContent(name="order_update", language="en")
            if template
            else TextContent(body=text)
        )
        return OutboundCommand(
            tenant_id=tenant,
            account_id=account,
            idempotency_key=key or uuid.uuid4().hex,
            message_id=message_id or uuid.uuid4().hex,
            to=to,
            campaign_id=campaign_id,
            content=content,
            created_at=at or datetime.now(UTC),
        )

    @staticmethod
    def status(tenant: str, message_id: str, status: str, account: str = "acc1") -> dict[str, Any]:
        return {
            "schema_version": 1,
            "kind": "message_status_changed",
            "event_id": uuid.uuid4().hex,
            "message_id": message_id,
            "tenant_id": tenant,
            "account_id": account,
            "status": status,
            "timestamp": datetime.now(UTC).isoformat(),
        }

    @staticmethod
    def handoff(
        tenant: str,
        *,
        wa_id: str | None = None,
        user_id: str | None = None,
        account: str = "acc1",
        at: datetime | None = None,
    ) -> HandoffRequested:
        return HandoffRequested(
            tenant_id=tenant,
            account_id=account,
            customer=CustomerIdentity(wa_id=wa_id, user_id=user_id),
            reason="customer asked for an agent",
            bot_state="BROWSING_PRODUCTS",
            requested_at=at or datetime.now(UTC),
        )

    # ---- publishing
    async def publish(self, *items: BaseModel | dict[str, Any] | bytes, wait: bool = True) -> None:
        """Publish each item where its producer would; with ``wait``, until handled."""
        before = consumed()
        for item in items:
            if isinstance(item, bytes):
                exchange, key, body = topology.EXCHANGE_INBOUND, "x.y.text", item
            elif isinstance(item, dict):
                exchange = topology.EXCHANGE_EVENTS
                key = topology.events_routing_key(
                    item["tenant_id"], item["account_id"], item["status"]
                )
                body = orjson.dumps(item)
            elif isinstance(item, OutboundCommand):
                exchange = topology.EXCHANGE_OUTBOUND
                key = topology.outbound_routing_key(item.tenant_id, item.account_id, item.category)
                body = item.model_dump_json(exclude_none=True).encode()
            elif isinstance(item, HandoffRequested):
                exchange = topology.EXCHANGE_EVENTS
                key = topology.events_routing_key(
                    item.tenant_id, item.account_id, topology.HANDOFF_REQUESTED
                )
                body = item.model_dump_json(exclude_none=True).encode()
            else:
                assert isinstance(item, InboundMessage | InboundMessageV2)
                exchange = topology.EXCHANGE_INBOUND
                key = topology.inbound_routing_key(item.tenant_id, item.account_id, item.type)
                body = item.model_dump_json(exclude_none=True).encode()
            await self.publisher.publish(exchange, key, body, mandatory=False)
        if wait:
            await eventually(lambda: consumed() >= before + len(items), timeout_s=15)

    # ---- reading
    async def get(self, path: str, tenant: str, scope: str = "read", **params: Any) -> Any:
        r = await self.http.get(path, headers=self.key(tenant, scope), params=params)
        assert r.status_code == 200, r.text
        return r.json()

    async def thread_of(self, tenant: str) -> dict[str, Any]:
        async def listed() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = (await self.get("/v1/threads", tenant))["items"]
            return items

        threads = await eventually(listed, timeout_s=10)
        assert len(threads) == 1, threads
        return threads[0]  # type: ignore[no-any-return]

    async def messages(self, tenant: str, thread_id: int) -> list[dict[str, Any]]:
        page = await self.get(f"/v1/threads/{thread_id}/messages", tenant, limit=100)
        return page["items"]  # type: ignore[no-any-return]

    async def open_conversation(
        self, tenant: str, wa_id: str, *, inbound_at: datetime | None = None
    ) -> int:
        """A customer who wrote (at ``inbound_at``) and asked for an agent: the
        conversation id."""
        await self.publish(self.inbound(tenant, wa_id=wa_id, text="agent", at=inbound_at))
        await self.publish(self.handoff(tenant, wa_id=wa_id))

        async def listed() -> list[dict[str, Any]]:
            # ``publish`` counts every handled message: a late copy of an earlier test's
            # reply may be the one it saw, so wait for the conversation itself
            items: list[dict[str, Any]] = (await self.get("/v1/conversations", tenant))["items"]
            return items

        items = await eventually(listed, timeout_s=10)
        assert len(items) == 1, items
        return items[0]["id"]  # type: ignore[no-any-return]

    async def take(self, queue: str) -> list[dict[str, Any]]:
        q = await self.channel.get_queue(queue, ensure=False)
        out = []
        while (msg := await q.get(no_ack=True, fail=False, timeout=5)) is not None:
            out.append(
                {**orjson.loads(msg.body), "_routing_key": msg.routing_key, "_headers": msg.headers}
            )
        return out


def settings_for(amqp_url: str, database_url: str, tenant_url: str) -> Settings:
    return Settings(
        AMQP_URL=amqp_url,
        DATABASE_URL=database_url,
        FLOWCHAT_TENANT_URL=tenant_url,
        FLOWCHAT_SERVICE_TOKEN=SERVICE_TOKEN,
        FLOWCHAT_PRIVACY_KEY=PRIVACY_KEY,
        encryption_keys=ENCRYPTION_KEY,
        shutdown_grace_s=5,
        stream_keepalive_s=0.5,
        stream_reauth_s=0.5,
        gauge_interval_s=0.2,
    )


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Kit]:
    app = create_app(settings)
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=15) as http:

        async def ready() -> bool:
            return (await http.get("/readyz")).status_code == 200

        await eventually(ready, timeout_s=30)
        publisher = Amqp(settings.amqp_url, service="test-publisher")
        await publisher.connect()
        conn = await aio_pika.connect(settings.amqp_url)
        db = await asyncpg.connect(settings.database_url, server_settings={"search_path": SCHEMA})
        try:
            kit = Kit(http, publisher, db, await conn.channel(), base_url)
            kit.settings = settings
            yield kit
        finally:
            await db.close()
            await conn.close()
            await publisher.close(grace_s=0)


T_OLD_DAYS = 2


# ------------------------------------------------------------------ real users

OPERATOR_KEY = "operator-key-inbox-tests-0123456789"
PASSWORD = "correct horse battery staple"


def tenant_settings(database_url: str) -> Any:
    """The real tenant service (users, sessions, the internal resolve), cheap argon2id."""
    from cryptography.fernet import Fernet

    from flowchat_tenant.settings import Settings as TenantSettings

    return TenantSettings(
        DATABASE_URL=database_url,
        FLOWCHAT_SERVICE_TOKEN=SERVICE_TOKEN,
        FLOWCHAT_OPERATOR_KEY=OPERATOR_KEY,
        FLOWCHAT_ENV="test",
        encryption_keys=Fernet.generate_key().decode(),
        argon2_time_cost=1,
        argon2_memory_kib=8192,
        health_refresh_interval_s=3600,
        user_cache_max_age_s=0,
    )


class Staff:
    """Tenants and their people on a real tenant service: invited by the operator, the
    password set, logged in; each user's bearer headers for the inbox."""

    operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}

    def __init__(self, tenant: httpx.AsyncClient) -> None:
        self.tenant = tenant
        self._n = 0

    async def new_tenant(self) -> str:
        r = await self.tenant.post(
            "/v1/tenants",
            json={"name": "Acme", "business_name": "Acme Ltd", "timezone": "UTC"},
            headers=self.operator,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["tenant_id"])

    async def user(self, tenant_id: str | None, role: str = "agent") -> dict[str, Any]:
        """``{user_id, access_token, headers}`` of a new, logged-in user of ``role`` (an
        operator user, platform staff, when ``tenant_id`` is None)."""
        self._n += 1
        email = f"{role}{self._n}-{uuid.uuid4().hex[:8]}@example.com"
        url, body = (
            ("/v1/operator/users", {"email": email})
            if tenant_id is None
            else (f"/v1/tenants/{tenant_id}/users", {"email": email, "role": role})
        )
        r = await self.tenant.post(url, json=body, headers=self.operator)
        assert r.status_code == 201, r.text
        invited = r.json()
        r = await self.tenant.post(
            "/v1/auth/invitations/accept",
            json={"token": invited["invitation"]["token"], "password": PASSWORD},
        )
        assert r.status_code == 200, r.text
        r = await self.tenant.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        body = r.json()
        return {
            "user_id": body["user"]["user_id"],
            "access_token": body["access_token"],
            "headers": {"Authorization": f"Bearer {body['access_token']}"},
        }

    async def delete(self, tenant_id: str, user_id: str) -> None:
        r = await self.tenant.delete(
            f"/v1/tenants/{tenant_id}/users/{user_id}", headers=self.operator
        )
        assert r.status_code == 204, r.text


def service_headers(tenant: str) -> dict[str, str]:
    """FlowChat's own token acting for ``tenant`` (setting up a test's conversations)."""
    return {"Authorization": f"Bearer {SERVICE_TOKEN}", "X-Tenant-ID": tenant}
