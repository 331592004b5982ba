"""Media uploads through the sender's internal API, against the real sandbox and Redis.

Upload once, reuse the id (cached below its 30-day life), send by id; refusals of
type, size, provider and tenant never reach the provider; a link is fetched once.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from flowchat_contracts import MediaContent, OutboundCommand, SendResult, send_results_in, topology
from flowchat_contracts.whatsapp import MB
from flowchat_platform.amqp import Amqp
from flowchat_platform.testing import drain_queue, eventually, free_port, serve
from flowchat_sandbox.app import create_app as create_sandbox
from flowchat_sandbox.media import PLACEHOLDER_JPEG
from flowchat_sandbox.settings import Settings as SandboxSettings
from flowchat_sender.app import create_app
from flowchat_sender.settings import Settings

pytestmark = pytest.mark.integration

TOKEN = "media-test-service-token-012345"
ACCESS = "media-access-token"
REDIS_DB = 9  # not the shared, often flushed test database; keys carry the test's tenant
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 200


@dataclass
class World:
    api: httpx.AsyncClient
    sandbox: httpx.AsyncClient
    redis: aioredis.Redis
    amqp_url: str
    tenant: str
    pnid: str
    files: dict[str, int]
    stub_url: str

    async def uploads(self) -> list[dict[str, Any]]:
        media: list[dict[str, Any]] = (await self.sandbox.get("/sandbox/media")).json()
        return [m for m in media if m["phone_number_id"] == self.pnid]

    def upload(self, data: bytes, mime: str, **params: str) -> Any:
        query = {"tenant_id": self.tenant, "account_id": "acc-m", **params}
        headers = {**AUTH, "Content-Type": mime}
        return self.api.post("/internal/v1/media", params=query, content=data, headers=headers)


def stub(tenant: str, pnid: str, files: dict[str, int]) -> FastAPI:
    """Tenant credentials, a webhook sink, and a web server holding a customer's files."""
    app = FastAPI()

    @app.get("/internal/v1/accounts/{account_id}")
    async def account(account_id: str) -> Response:
        common = {"tenant_id": tenant, "app_secret": "m" * 24, "throughput_mps": 1000}
        if account_id == "acc-m":
            data = {
                "account_id": "acc-m",
                "provider": "meta",
                "phone_number_id": pnid,
                "waba_id": f"w-{tenant}",
                "access_token": ACCESS,
                **common,
            }
        elif account_id == "acc-t":
            data = {
                "account_id": "acc-t",
                "provider": "twilio",
                "twilio_account_sid": "AC" + "1" * 32,
                "twilio_auth_token": "t" * 32,
                "twilio_number": "+16505550000",
                **common,
            }
        else:
            return JSONResponse({"error": {"code": "not_found"}}, status_code=404)
        return JSONResponse(data, headers={"Cache-Control": "max-age=60"})

    @app.post("/webhook")
    async def sink() -> Response:
        return Response(status_code=200)

    @app.get("/files/{name}")
    async def file(name: str) -> Response:
        files[name] = files.get(name, 0) + 1
        if name == "big.jpg":
            return Response(b"\xff" * (5 * MB + 10), media_type="image/jpeg")
        return Response(PLACEHOLDER_JPEG, media_type="image/jpeg")

    return app


@pytest.fixture
async def w(amqp_url: str, redis_url: str) -> AsyncIterator[World]:
    url = redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    tenant = f"tm{uuid.uuid4().hex[:8]}"
    pnid = f"10699{uuid.uuid4().int % 10**8:08d}"
    files: dict[str, int] = {}
    redis = aioredis.Redis.from_url(url)
    declarer = Amqp(amqp_url, service="test")  # the topology, before the test publishes
    await declarer.connect()
    await declarer.close(grace_s=1)
    async with (
        serve(create_sandbox(SandboxSettings(status_delay_s=30))) as sandbox_url,
        serve(stub(tenant, pnid, files)) as stub_url,
        httpx.AsyncClient(base_url=sandbox_url) as sandbox,
    ):
        r = await sandbox.post(
            "/sandbox/numbers",
            json={
                "phone_number_id": pnid,
                "waba_id": f"w-{tenant}",
                "display_phone_number": "+1 650 555 9901",
                "access_token": ACCESS,
                "app_secret": "m" * 24,
                "webhook_url": f"{stub_url}/webhook",
                "throughput_mps": 1000,
            },
        )
        assert r.status_code == 201, r.text
        settings = Settings(
            AMQP_URL=amqp_url,
            REDIS_URL=url,
            FLOWCHAT_TENANT_URL=stub_url,
            FLOWCHAT_GATEWAY_URL=stub_url,
            FLOWCHAT_SERVICE_TOKEN=TOKEN,
            graph_url=sandbox_url,
            shutdown_grace_s=5,
            http_port=free_port(),
        )
        try:
            async with (
                serve(create_app(settings)) as sender_url,
                httpx.AsyncClient(base_url=sender_url, timeout=30) as api,
            ):
                yield World(api, sandbox, redis, amqp_url, tenant, pnid, files, stub_url)
        finally:
            async for key in redis.scan_iter(match=f"*{tenant}*", count=1000):
                await redis.delete(key)
            async for key in redis.scan_iter(match=f"flowchat:sender:rl:*{pnid}*", count=1000):
                await redis.delete(key)
            await redis.aclose()


async def test_upload_once_reuse_the_id_and_send_by_id(w: World) -> None:
    first = await w.upload(PNG, "image/png", filename="logo.png")
    assert first.status_code == 200, first.text
    stored = first.json()
    assert stored["kind"] == "image"
    assert stored["cached"] is False
    assert stored["file_size"] == len(PNG)
    [uploaded] = await w.uploads()
    assert uploaded["id"] == stored["media_id"]
    assert uploaded["sha256"] == stored["sha256"]
    assert uploaded["mime_type"] == "image/png"

    again = (await w.upload(PNG, "image/png")).json()
    assert again["media_id"] == stored["media_id"]
    assert again["cached"] is True
    assert len(await w.uploads()) == 1  # no second upload
    [key] = [k async for k in w.redis.scan_iter(match=f"flowchat:sender:media:{w.tenant}:*")]
    ttl = await w.redis.ttl(key)
    assert 28 * 24 * 3600 < ttl <= 29 * 24 * 3600  # below Meta's 30 days
    assert stored["expires_at"] - stored["uploaded_at"] == 29 * 24 * 3600

    other = (await w.upload(PNG + b"!", "image/png")).json()
    assert other["media_id"] != stored["media_id"]

    cmd = OutboundCommand(
        tenant_id=w.tenant,
        account_id="acc-m",
        idempotency_key=f"{w.tenant}-1",
        message_id=f"{w.tenant}-m1",
        to="+16509990001",
        content=MediaContent(type="image", media_id=stored["media_id"], caption="our logo"),
    )
    # the customer writes first: a free-form message needs the 24 h window
    r = await w.sandbox.post(
        "/sandbox/customers/16509990001/messages", json={"phone_number_id": w.pnid, "text": "hi"}
    )
    assert r.status_code == 200, r.text
    client = Amqp(w.amqp_url, service="test", declare=False)
    await client.connect()
    await client.publish(
        topology.EXCHANGE_OUTBOUND, topology.outbound_routing_key(w.tenant, "acc-m"), cmd
    )
    await client.close(grace_s=1)
    got: list[SendResult] = []

    async def answered() -> bool:
        for m in await drain_queue(w.amqp_url, topology.QUEUE_STATE_STATUS):
            got.extend(send_results_in(m.body))
        return bool(got)

    await eventually(answered, timeout_s=15)
    ledger = (await w.sandbox.get("/sandbox/messages", params={"phone_number_id": w.pnid})).json()
    assert [e["biz_opaque_callback_data"] for e in ledger] == [cmd.message_id]
    assert got[0].message_id == cmd.message_id


async def test_refusals_never_reach_the_provider(w: World) -> None:
    too_big = await w.upload(b"x" * (5 * MB + 1), "image/png")
    assert too_big.status_code == 413, too_big.text
    assert too_big.json()["error"]["code"] == "too_large"
    html = await w.upload(b"<html>", "text/html")
    assert html.status_code == 415
    assert "text/html" in html.json()["error"]["message"]
    empty = await w.upload(b"", "image/png")
    assert empty.status_code == 400
    kind = await w.upload(PNG, "image/png", kind="document")
    assert kind.status_code == 415
    twilio = await w.api.post(
        "/internal/v1/media",
        params={"tenant_id": w.tenant, "account_id": "acc-t"},
        content=PNG,
        headers={**AUTH, "Content-Type": "image/png"},
    )
    assert twilio.status_code == 409
    assert "link" in twilio.json()["error"]["message"]
    stranger = await w.api.post(
        "/internal/v1/media",
        params={"tenant_id": "someone-else", "account_id": "acc-m"},
        content=PNG,
        headers={**AUTH, "Content-Type": "image/png"},
    )
    assert stranger.status_code == 404
    anonymous = await w.api.post(
        "/internal/v1/media",
        params={"tenant_id": w.tenant, "account_id": "acc-m"},
        content=PNG,
        headers={"Content-Type": "image/png"},
    )
    assert anonymous.status_code == 401
    assert await w.uploads() == []
    scraped = (await w.api.get("/metrics")).text
    assert 'flowchat_sender_media_uploads_total{kind="unknown",outcome="refused"}' in scraped


async def test_a_link_is_fetched_and_uploaded_once(w: World) -> None:
    body = {
        "tenant_id": w.tenant,
        "account_id": "acc-m",
        "link": f"{w.stub_url}/files/cat.jpg",
    }
    first = await w.api.post("/internal/v1/media/link", json=body, headers=AUTH)
    assert first.status_code == 200, first.text
    assert first.json()["mime_type"] == "image/jpeg"
    second = await w.api.post("/internal/v1/media/link", json=body, headers=AUTH)
    assert second.json()["media_id"] == first.json()["media_id"]
    assert second.json()["cached"] is True
    assert len(await w.uploads()) == 1
    big = await w.api.post(
        "/internal/v1/media/link",
        json={**body, "link": f"{w.stub_url}/files/big.jpg", "mime_type": "image/jpeg"},
        headers=AUTH,
    )
    assert big.status_code == 413, big.text
    missing = await w.api.post(
        "/internal/v1/media/link",
        json={**body, "link": f"http://127.0.0.1:{free_port()}/gone.jpg"},
        headers=AUTH,
    )
    assert missing.status_code == 502
    assert len(await w.uploads()) == 1
