"""Fixtures: the sandbox served over real HTTP, and a receiver that records webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flowchat_platform.testing import eventually, serve
from flowchat_sandbox.app import create_app
from flowchat_sandbox.settings import Settings


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


@dataclass
class Receiver:
    """A webhook endpoint: records every POST, answers with queued statuses (else 200)."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    answers: deque[int] = field(default_factory=deque)

    async def handle(self, request: Request) -> Response:
        self.requests.append(
            Received(request.url.path, dict(request.headers), await request.body())
        )
        return Response(status_code=self.answers.popleft() if self.answers else 200)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=["POST"])])

    def values(self) -> Iterator[dict[str, Any]]:
        """The ``value`` of every change of every Meta (JSON) webhook received."""
        for received in self.requests:
            if not received.headers.get("content-type", "").startswith("application/json"):
                continue
            for entry in received.json().get("entry", []):
                for change in entry["changes"]:
                    yield change["value"]

    def statuses(self, wamid: str | None = None) -> list[dict[str, Any]]:
        return [
            status
            for value in self.values()
            for status in value.get("statuses", [])
            if wamid is None or status["id"] == wamid
        ]

    def messages(self) -> list[dict[str, Any]]:
        return [message for value in self.values() for message in value.get("messages", [])]


def meta_signature_ok(received: Received, app_secret: str) -> bool:
    expected = "sha256=" + hmac.new(app_secret.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received.headers.get("x-hub-signature-256", ""))


@pytest.fixture
def settings() -> Settings:
    return Settings(
        status_delay_s=0.01,
        webhook_retry_base_s=0.05,
        webhook_retry_max_s=0.2,
        webhook_max_attempts=3,
        webhook_timeout_s=2.0,
        fault_timeout_s=0.3,
    )


async def _serve_until(app: Any, url: asyncio.Future[str], stop: asyncio.Event) -> None:
    async with serve(app) as base:
        url.set_result(base)
        await stop.wait()


@pytest.fixture
async def servers(settings: Settings) -> AsyncIterator[tuple[str, Receiver]]:
    """The sandbox and a receiver, started and stopped side by side (stops take ~0.15 s)."""
    receiver = Receiver()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    urls = [loop.create_future(), loop.create_future()]
    tasks = [
        asyncio.create_task(_serve_until(create_app(settings), urls[0], stop)),
        asyncio.create_task(_serve_until(receiver.app(), urls[1], stop)),
    ]
    try:
        for url, task in zip(urls, tasks, strict=True):
            await asyncio.wait([url, task], return_when=asyncio.FIRST_COMPLETED)
            if not url.done():
                task.result()  # the server failed to start: raise its error
        sandbox_url, receiver.url = urls[0].result(), urls[1].result()
        yield sandbox_url, receiver
    finally:
        stop.set()
        await asyncio.gather(*tasks)


@pytest.fixture
def receiver(servers: tuple[str, Receiver]) -> Receiver:
    return servers[1]


@pytest.fixture
async def client(servers: tuple[str, Receiver]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=servers[0], timeout=10) as client:
        yield client


@dataclass
class BusinessNumber:
    phone_number_id: str
    waba_id: str
    display_phone_number: str
    access_token: str
    app_secret: str
    webhook_url: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    @property
    def messages_path(self) -> str:
        return f"/v23.0/{self.phone_number_id}/messages"


async def register(client: httpx.AsyncClient, receiver: Receiver, **extra: Any) -> BusinessNumber:
    suffix = f"{secrets.randbelow(10**6):06d}"
    number = BusinessNumber(
        phone_number_id=f"1099{suffix}",
        waba_id=f"2099{suffix}",
        display_phone_number="15550001111",
        access_token="EAAG" + secrets.token_urlsafe(24),
        app_secret=secrets.token_hex(16),
        webhook_url=f"{receiver.url}/webhooks/meta",
    )
    r = await client.post("/sandbox/numbers", json={**number.__dict__, **extra})
    assert r.status_code == 201, r.text
    return number


@pytest.fixture
async def number(client: httpx.AsyncClient, receiver: Receiver) -> BusinessNumber:
    return await register(client, receiver)


async def open_window(client: httpx.AsyncClient, number: BusinessNumber, wa_id: str) -> str:
    r = await client.post(
        f"/sandbox/customers/{wa_id}/messages",
        json={"phone_number_id": number.phone_number_id, "text": "hello", "name": "Ada"},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def text(to: str, body: str = "hi", **extra: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": body},
        **extra,
    }


async def wait_statuses(receiver: Receiver, wamid: str, count: int) -> list[str]:
    await eventually(lambda: len(receiver.statuses(wamid)) >= count, timeout_s=5)
    return [s["status"] for s in receiver.statuses(wamid)]


@pytest.fixture
def h() -> SimpleNamespace:
    """The helpers above, for test modules (conftest is not importable under importlib)."""
    return SimpleNamespace(
        register=register,
        open_window=open_window,
        text=text,
        wait_statuses=wait_statuses,
        signature_ok=meta_signature_ok,
    )
