"""Media through the sender's internal API, against the real sandbox and Redis.

Upload once, reuse the id (cached below its 30-day life), send by id; refusals of
type, size, provider and tenant never reach the provider; a link is fetched once.
Downloads (``GET /internal/v1/media/content``): a customer's image by its media id
(Cloud API) or its MediaUrl (Twilio), with the account's credentials; unknown media,
another tenant's account and an expired id are refused with their codes.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.responses import Response
from sender_testkit import Number, World, own_redis_url, tenant_stub, world

from flowchat_contracts import MediaContent, OutboundCommand
from flowchat_contracts.whatsapp import MB
from flowchat_platform.testing import free_port, serve
from flowchat_sandbox.media import PLACEHOLDER_JPEG
from flowchat_sender.app import create_app

pytestmark = pytest.mark.integration

TOKEN = "media-test-service-token-012345"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 200
TWILIO_SID = "AC" + "1" * 32
TWILIO_TOKEN = "t" * 32


@dataclass
class Media:
    """The kit's world with a sender running, its API client, and the customer's files."""

    kit: World
    api: httpx.AsyncClient
    redis: aioredis.Redis
    #: Downloads of each file from the customer's web server.
    files: dict[str, int]

    async def uploads(self) -> list[dict[str, Any]]:
        media: list[dict[str, Any]] = (await self.kit.sandbox.get("/sandbox/media")).json()
        return [m for m in media if m["phone_number_id"] == self.kit.pnid]

    def upload(self, data: bytes, mime: str, **params: str) -> Any:
        query = {"tenant_id": self.kit.tenant, "account_id": "acc-m", **params}
        headers = {**AUTH, "Content-Type": mime}
        return self.api.post("/internal/v1/media", params=query, content=data, headers=headers)


def stub(number: Number, files: dict[str, int]) -> FastAPI:
    """Tenant credentials (a Meta and a Twilio account), a webhook sink, and a web
    server holding a customer's files."""
    twilio = {
        "account_id": "acc-t",
        "tenant_id": number.tenant_id,
        "provider": "twilio",
        "twilio_account_sid": TWILIO_SID,
        "twilio_auth_token": TWILIO_TOKEN,
        "twilio_number": "+16505550000",
        "app_secret": number.app_secret,
        "throughput_mps": 1000,
    }
    app = tenant_stub({"acc-m": number.account_json(), "acc-t": twilio})

    @app.get("/files/{name}")
    async def file(name: str) -> Response:
        files[name] = files.get(name, 0) + 1
        if name == "big.jpg":
            return Response(b"\xff" * (5 * MB + 10), media_type="image/jpeg")
        return Response(PLACEHOLDER_JPEG, media_type="image/jpeg")

    return app


@pytest.fixture
async def w(amqp_url: str, redis_url: str) -> AsyncIterator[Media]:
    number = Number.fresh(
        "tm", "acc-m", pnid_prefix="10699", display_phone_number="+1 650 555 9901"
    )
    tenant = number.tenant_id
    files: dict[str, int] = {}
    url = own_redis_url(redis_url)
    async with world(
        amqp_url, url, number, token=TOKEN, stub=stub(number, files), forget=[f"*{tenant}*"]
    ) as kit:
        redis = aioredis.Redis.from_url(url)
        try:
            async with (
                serve(create_app(kit.settings(twilio_url=kit.sandbox_url))) as sender_url,
                httpx.AsyncClient(base_url=sender_url, timeout=30) as api,
            ):
                yield Media(kit, api, redis, files)
        finally:
            await redis.aclose()


async def test_upload_once_reuse_the_id_and_send_by_id(w: Media) -> None:
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
    [key] = [k async for k in w.redis.scan_iter(match=f"flowchat:sender:media:{w.kit.tenant}:*")]
    ttl = await w.redis.ttl(key)
    assert 28 * 24 * 3600 < ttl <= 29 * 24 * 3600  # below Meta's 30 days
    assert stored["expires_at"] - stored["uploaded_at"] == 29 * 24 * 3600

    other = (await w.upload(PNG + b"!", "image/png")).json()
    assert other["media_id"] != stored["media_id"]

    cmd = OutboundCommand(
        tenant_id=w.kit.tenant,
        account_id="acc-m",
        idempotency_key=f"{w.kit.tenant}-1",
        message_id=f"{w.kit.tenant}-m1",
        to="+16509990001",
        content=MediaContent(type="image", media_id=stored["media_id"], caption="our logo"),
    )
    # the customer writes first: a free-form message needs the 24 h window
    await w.kit.open_windows(["16509990001"])
    await w.kit.publish([cmd])
    got = await w.kit.results(1, timeout_s=15)
    assert await w.kit.ledger_ids() == [cmd.message_id]
    assert list(got) == [cmd.message_id]


async def test_refusals_never_reach_the_provider(w: Media) -> None:
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
        params={"tenant_id": w.kit.tenant, "account_id": "acc-t"},
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
        params={"tenant_id": w.kit.tenant, "account_id": "acc-m"},
        content=PNG,
        headers={"Content-Type": "image/png"},
    )
    assert anonymous.status_code == 401
    assert await w.uploads() == []
    scraped = (await w.api.get("/metrics")).text
    assert 'flowchat_sender_media_uploads_total{kind="unknown",outcome="refused"}' in scraped


async def test_a_link_is_fetched_and_uploaded_once(w: Media) -> None:
    body = {
        "tenant_id": w.kit.tenant,
        "account_id": "acc-m",
        "link": f"{w.kit.stub_url}/files/cat.jpg",
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
        json={**body, "link": f"{w.kit.stub_url}/files/big.jpg", "mime_type": "image/jpeg"},
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


def content(w: Media, account_id: str = "acc-m", **params: str) -> Any:
    query = {"tenant_id": w.kit.tenant, "account_id": account_id, **params}
    return w.api.get("/internal/v1/media/content", params=query, headers=AUTH)


async def test_a_customers_image_by_its_media_id(w: Media) -> None:
    picture = PNG + b"customer"
    r = await w.kit.sandbox.post(
        "/sandbox/customers/16509990002/messages",
        json={
            "phone_number_id": w.kit.pnid,
            "image": {"mime_type": "image/png", "data_base64": base64.b64encode(picture).decode()},
        },
    )
    assert r.status_code == 200, r.text
    [inbound] = [m for m in await w.uploads() if m["source"] == "inbound"]

    got = await content(w, media_id=inbound["id"])
    assert got.status_code == 200, got.text
    assert got.content == picture
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-flowchat-media-sha256"] == hashlib.sha256(picture).hexdigest()
    assert got.headers["x-content-type-options"] == "nosniff"

    unknown = await content(w, media_id="999999999")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "media_not_found"
    stranger = await w.api.get(
        "/internal/v1/media/content",
        params={"tenant_id": "someone-else", "account_id": "acc-m", "media_id": inbound["id"]},
        headers=AUTH,
    )
    assert stranger.status_code == 404
    assert stranger.json()["error"]["code"] == "not_found"
    both = await content(w, media_id=inbound["id"], url="https://x.test/a")
    assert both.status_code == 400
    wrong = await content(w, account_id="acc-t", media_id=inbound["id"])
    assert wrong.status_code == 409
    anonymous = await w.api.get(
        "/internal/v1/media/content",
        params={"tenant_id": w.kit.tenant, "account_id": "acc-m", "media_id": inbound["id"]},
    )
    assert anonymous.status_code == 401

    # ids of what customers send live 7 days at Meta
    await w.kit.sandbox.post("/sandbox/clock", json={"advance_s": 7 * 24 * 3600 + 1})
    expired = await content(w, media_id=inbound["id"])
    assert expired.status_code == 404
    assert expired.json()["error"]["code"] == "media_not_found"


async def test_a_customers_image_by_its_twilio_media_url(w: Media) -> None:
    r = await w.kit.sandbox.post(
        "/sandbox/twilio/accounts",
        json={
            "account_sid": TWILIO_SID,
            "auth_token": TWILIO_TOKEN,
            "number": "+16505550000",
            "webhook_url": f"{w.kit.stub_url}/webhook",
        },
    )
    assert r.status_code == 201, r.text
    r = await w.kit.sandbox.post(
        "/sandbox/customers/16509990003/messages",
        json={"twilio_number": "+16505550000", "image": {}},
    )
    assert r.status_code == 200, r.text
    deliveries = (await w.kit.sandbox.get("/sandbox/webhooks", params={"key": TWILIO_SID})).json()
    url = deliveries[-1]["payload"]["MediaUrl0"]

    got = await content(w, account_id="acc-t", url=url)
    assert got.status_code == 200, got.text
    assert got.content == PLACEHOLDER_JPEG
    assert got.headers["content-type"] == "image/jpeg"

    # the auth token goes to the account's own media only
    foreign = url.replace(TWILIO_SID, "AC" + "2" * 32)
    assert (await content(w, account_id="acc-t", url=foreign)).status_code == 404
    elsewhere = "https://example.com/2010-04-01/Accounts/" + TWILIO_SID + "/Messages/MM/Media/ME"
    assert (await content(w, account_id="acc-t", url=elsewhere)).status_code == 404
    gone = url.rsplit("/", 1)[0] + "/ME" + "0" * 32
    missing = await content(w, account_id="acc-t", url=gone)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "media_not_found"
