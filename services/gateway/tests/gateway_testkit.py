"""Gateway test kit (imported by the tests; fixtures in conftest.py).

A stub of the tenant service's internal API speaking the exact JSON of
docs/interfaces.md, the gateway app run in-process with its lifespan against real
RabbitMQ and Redis, a TCP proxy to cut the broker away, and helpers to sign
webhooks and read what was published.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from flowchat_contracts import topology
from flowchat_gateway.app import create_app
from flowchat_gateway.settings import Settings
from flowchat_platform.testing import eventually, free_port

SERVICE_TOKEN = "svc-token-0123456789abcdef"
APP_SECRET = "meta-app-secret-0123456789"
OTHER_APP_SECRET = "other-app-secret-9876543210"
TWILIO_TOKEN = "twilio-auth-token-0123456789ab"
VERIFY_TOKEN = "verify-token-abcdef"
PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "419561257915477"


def account_json(**overrides: Any) -> dict[str, Any]:
    base = {
        "account_id": "acc-meta-1",
        "tenant_id": "tenant-a",
        "tenant_status": "active",
        "status": "active",
        "provider": "meta",
        "phone_number_id": PHONE_NUMBER_ID,
        "waba_id": WABA_ID,
        "display_phone_number": "15550783881",
        "tier": "standard",
        "throughput_mps": 80,
        "app_secret": APP_SECRET,
        "access_token": "EAAG-access-token-xyz",
        "twilio_account_sid": None,
        "twilio_auth_token": None,
        "twilio_number": None,
        "version": 1,
    }
    base.update(overrides)
    return base


@dataclass
class TenantStub:
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    verify_tokens: set[str] = field(default_factory=set)
    api_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    down: bool = False
    url: str = ""

    def reset(self) -> None:
        """Back to one Meta account (``acc-meta-1`` of ``tenant-a``) and one verify token."""
        self.accounts.clear()
        self.api_keys.clear()
        self.calls.clear()
        self.down = False
        self.verify_tokens = {VERIFY_TOKEN}
        self.add()

    def add(self, **overrides: Any) -> dict[str, Any]:
        account = account_json(**overrides)
        self.accounts[account["account_id"]] = account
        return account

    def app(self) -> FastAPI:
        app = FastAPI()

        def check(request: Request) -> JSONResponse | None:
            self.calls.append(request.url.path)
            if self.down:
                return JSONResponse({"error": "down"}, status_code=500)
            if request.headers.get("authorization") != f"Bearer {SERVICE_TOKEN}":
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            return None

        def found(account: dict[str, Any] | None) -> JSONResponse:
            if account is None:
                return JSONResponse({"error": {"code": "not_found"}}, status_code=404)
            return JSONResponse(
                account,
                headers={
                    "Cache-Control": "private, max-age=60",
                    "ETag": f'"{account["account_id"]}-{account["version"]}"',
                },
            )

        @app.get("/internal/v1/accounts/by-phone-number/{phone_number_id}")
        async def by_phone(phone_number_id: str, request: Request) -> JSONResponse:
            if (refused := check(request)) is not None:
                return refused
            return found(
                next(
                    (a for a in self.accounts.values() if a["phone_number_id"] == phone_number_id),
                    None,
                )
            )

        @app.get("/internal/v1/accounts/by-waba/{waba_id}")
        async def by_waba(waba_id: str, request: Request) -> JSONResponse:
            if (refused := check(request)) is not None:
                return refused
            accounts = [a for a in self.accounts.values() if a["waba_id"] == waba_id]
            if not accounts:
                return JSONResponse({"error": {"code": "not_found"}}, status_code=404)
            return JSONResponse(
                {"accounts": accounts},
                headers={"Cache-Control": "private, max-age=60", "ETag": f'"waba-{waba_id}"'},
            )

        @app.get("/internal/v1/accounts/by-twilio-number/{number}")
        async def by_twilio(number: str, request: Request) -> JSONResponse:
            if (refused := check(request)) is not None:
                return refused
            return found(
                next((a for a in self.accounts.values() if a["twilio_number"] == number), None)
            )

        @app.get("/internal/v1/accounts/{account_id}")
        async def by_id(account_id: str, request: Request) -> JSONResponse:
            if (refused := check(request)) is not None:
                return refused
            return found(self.accounts.get(account_id))

        @app.post("/internal/v1/verify-tokens/check")
        async def verify_tokens(request: Request) -> JSONResponse:
            if (refused := check(request)) is not None:
                return refused
            body = await request.json()
            return JSONResponse({"valid": body.get("token") in self.verify_tokens})

        @app.post("/internal/v1/api-keys/verify")
        async def api_keys(request: Request) -> JSONResponse:
            if (refused := check(request)) is not None:
                return refused
            body = await request.json()
            info = self.api_keys.get(body.get("key", ""))
            if info is None:
                return JSONResponse({"error": {"code": "not_found"}}, status_code=404)
            return JSONResponse(info)

        return app


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def meta_body(*changes: dict[str, Any], waba_id: str = WABA_ID) -> bytes:
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": waba_id, "changes": list(changes)}],
        }
    ).encode()


def _messages_field(phone_number_id: str, **value: Any) -> dict[str, Any]:
    metadata = {"display_phone_number": "15550783881", "phone_number_id": phone_number_id}
    return {
        "field": "messages",
        "value": {"messaging_product": "whatsapp", "metadata": metadata, **value},
    }


def messages_change(
    *messages: dict[str, Any], phone_number_id: str = PHONE_NUMBER_ID
) -> dict[str, Any]:
    contacts = [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}]
    return _messages_field(phone_number_id, contacts=contacts, messages=list(messages))


def status_change(
    *statuses: dict[str, Any], phone_number_id: str = PHONE_NUMBER_ID
) -> dict[str, Any]:
    return _messages_field(phone_number_id, statuses=list(statuses))


#: A ``message_template_status_update``: names only the WABA.
TEMPLATE_APPROVED: dict[str, Any] = {
    "field": "message_template_status_update",
    "value": {
        "event": "APPROVED",
        "message_template_id": 1234,
        "message_template_name": "order_update",
        "message_template_language": "en_US",
        "reason": "NONE",
    },
}


def quality_update(display_phone_number: str, event: str = "FLAGGED") -> dict[str, Any]:
    """A ``phone_number_quality_update``: it names only the WABA and the number."""
    return {
        "field": "phone_number_quality_update",
        "value": {
            "display_phone_number": display_phone_number,
            "event": event,
            "current_limit": "TIER_1K",
        },
    }


def text_message(wamid: str | None = None, body: str = "hello") -> dict[str, Any]:
    return {
        "from": "16505551234",
        "id": wamid or f"wamid.{uuid.uuid4().hex}",
        "timestamp": "1749416383",
        "type": "text",
        "text": {"body": body},
    }


@dataclass
class Broker:
    """A test's view of the vhost: read what the gateway published."""

    url: str
    connection: aio_pika.abc.AbstractRobustConnection | None = None
    channel: aio_pika.abc.AbstractChannel | None = None
    events_queue: aio_pika.abc.AbstractQueue | None = None

    async def open(self) -> None:
        self.connection = await aio_pika.connect_robust(self.url)
        self.channel = await self.connection.channel()
        # flowchat.events has no queue of its own: bind an exclusive one for the test.
        self.events_queue = await self.channel.declare_queue(exclusive=True)
        await self.events_queue.bind(topology.EXCHANGE_EVENTS, "#")
        # The vhost is shared by the tests of a module: start from empty queues.
        for spec in topology.ALL_QUEUES:
            queue = await self.channel.get_queue(spec.name, ensure=False)
            await queue.purge()

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()

    async def drain(self, queue: str) -> list[tuple[aio_pika.abc.AbstractIncomingMessage, Any]]:
        assert self.channel is not None
        q = (
            self.events_queue
            if queue == topology.EXCHANGE_EVENTS
            else await self.channel.get_queue(queue, ensure=False)
        )
        assert q is not None
        out: list[tuple[aio_pika.abc.AbstractIncomingMessage, Any]] = []
        while True:
            message = await q.get(no_ack=True, fail=False, timeout=5)
            if message is None:
                return out
            try:
                data = json.loads(message.body)
            except ValueError:
                data = None
            out.append((message, data))


@dataclass
class Gateway:
    url: str
    http: httpx.AsyncClient
    tenant: TenantStub
    app: FastAPI
    broker: Broker | None
    settings: Settings

    async def post_meta(
        self, body: bytes, signature: str | None = "auto", **headers: str
    ) -> httpx.Response:
        sent = {"Content-Type": "application/json", **headers}
        if signature == "auto":
            signature = sign(body)
        if signature is not None:
            sent["X-Hub-Signature-256"] = signature
        return await self.http.post("/webhooks/meta", content=body, headers=sent)


def gateway_settings(amqp_url: str, redis_url: str, tenant_url: str, **extra: Any) -> Settings:
    return Settings(
        AMQP_URL=amqp_url,
        REDIS_URL=redis_url,
        FLOWCHAT_TENANT_URL=tenant_url,
        FLOWCHAT_SERVICE_TOKEN=SERVICE_TOKEN,
        FLOWCHAT_ENV="test",
        publish_timeout_s=extra.pop("publish_timeout_s", 2.0),
        **extra,
    )


@contextlib.contextmanager
def threaded_server(app: Any) -> Iterator[str]:
    """Serve ``app`` from a thread of its own (its own event loop), so one server can
    outlive the per-test event loops; yields the base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="tenant-stub", daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            time.sleep(0.01)
        else:
            raise TimeoutError("stub server did not start in 5 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.asynccontextmanager
async def running_gateway(
    amqp_url: str,
    redis_url: str,
    tenant: TenantStub,
    *,
    wait_ready: bool = True,
    observe_url: str | None = None,
    **extra: Any,
) -> AsyncIterator[Gateway]:
    """The gateway app with its lifespan running, called in-process over ASGI, against
    the stub tenant service (reset to one Meta account). ``observe_url`` (default
    ``amqp_url``) is where the test reads what was published."""
    tenant.reset()
    settings = gateway_settings(amqp_url, redis_url, tenant.url, **extra)
    app = create_app(settings)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        http = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=settings.public_url, timeout=15
            )
        )
        if wait_ready:

            async def ready() -> bool:
                return (await http.get("/readyz")).status_code == 200

            await eventually(ready, timeout_s=15, interval_s=0.01)
        broker: Broker | None = None
        if wait_ready or observe_url:
            broker = Broker(observe_url or amqp_url)
            stack.push_async_callback(broker.close)
            await broker.open()
        yield Gateway(settings.public_url, http, tenant, app, broker, settings)


def closed_port_url(scheme: str) -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if scheme == "amqp":
        return f"amqp://guest:guest@127.0.0.1:{port}/"
    return f"redis://127.0.0.1:{port}/0"


async def settle() -> None:
    await asyncio.sleep(0)


class TcpProxy:
    """A TCP forwarder we can cut and restore, to take "the broker" away and back."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        for coro in (pipe(reader, up_writer), pipe(up_reader, writer)):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


def with_port(url: str, port: int) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


class ToGateway(httpx.BaseTransport):
    """Sends every request pywa addresses to graph.facebook.com to the gateway instead."""

    def __init__(self, base: str) -> None:
        self._base = httpx.URL(base)
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        base = self._base
        request.url = request.url.copy_with(scheme=base.scheme, host=base.host, port=base.port)
        request.headers["host"] = f"{base.host}:{base.port}"
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()
