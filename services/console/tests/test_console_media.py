"""Media previews without the other services (a mock transport plays the tenant service
and the sender): a thread's media URLs are signed for the user's tenant, another
tenant's URL is refused without asking the sender, types outside the whitelist are
attachments, cache headers, revalidation, and the sender's refusals."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from flowchat_console.app import create_app
from flowchat_console.auth import SESSION_COOKIE
from flowchat_console.service import MediaLinks, media_display, message_view, served_as
from flowchat_console.settings import Settings
from flowchat_console.upstream import ServiceClients

JPEG = b"\xff\xd8\xff\xe0" + b"jpeg" * 10


@dataclass
class Services:
    """The tenant service (sessions of two users of two tenants) and the sender."""

    sender_calls: list[httpx.Request] = field(default_factory=list)
    answer: tuple[int, bytes, str] = (200, JPEG, "image/jpeg")

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/auth/refresh":
            session = request.headers["authorization"].removeprefix("Bearer ")
            return httpx.Response(200, json={"access_token": f"fca.{session}", "expires_in": 900})
        if path == "/v1/me":
            who = request.headers["authorization"].removeprefix("Bearer fca.")
            tenant = {"sess-a": "tenant-a", "sess-b": "tenant-b"}[who]
            return httpx.Response(
                200,
                json={
                    "user_id": f"u-{who}",
                    "tenant_id": tenant,
                    "email": "x@y.z",
                    "role": "agent",
                },
            )
        if path == "/internal/v1/media/content":
            self.sender_calls.append(request)
            status, body, kind = self.answer
            if status != 200:
                return httpx.Response(
                    status, content=body, headers={"content-type": "application/json"}
                )
            return httpx.Response(200, content=body, headers={"content-type": kind})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": path}})


@pytest.fixture
def services() -> Services:
    return Services()


@pytest.fixture
async def app(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    from flowchat_console.pages import _kit

    monkeypatch.setenv("FLOWCHAT_SERVICE_TOKEN", "svc-token-for-media-tests-0123456789")
    _kit.service_token.cache_clear()
    settings = Settings.model_validate({"FLOWCHAT_ENV": "test"})
    clients = ServiceClients(settings.service_urls(), transport=httpx.MockTransport(services))
    console = create_app(settings, clients=clients)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=console), base_url="http://console"
    ) as client:
        client.app = console  # type: ignore[attr-defined]
        yield client
    _kit.service_token.cache_clear()


def who(session: str) -> dict[str, str]:
    """A browser signed in with ``session``."""
    return {"Cookie": f"{SESSION_COOKIE}={session}"}


def links(client: httpx.AsyncClient) -> MediaLinks:
    return client.app.state.runtime.media_links  # type: ignore[attr-defined,no-any-return]


def image_message(media: dict[str, object], direction: str = "inbound") -> dict[str, object]:
    return {
        "id": 1,
        "direction": direction,
        "author": "customer",
        "type": "image",
        "content": {"media": media},
    }


def src_for(client: httpx.AsyncClient, tenant: str, media: dict[str, object]) -> str:
    view = message_view(image_message(media), {}, links(client).sources(tenant, "acc-1"))
    assert view.media is not None
    assert view.media.src is not None
    return view.media.src


async def test_a_thread_image_streams_through_the_console(
    app: httpx.AsyncClient, services: Services
):
    src = src_for(app, "tenant-a", {"id": "777", "mime_type": "image/jpeg", "caption": "hi"})
    assert src.startswith("/media/acc-1?id=777&sig=")
    r = await app.get(src, headers=who("sess-a"))
    assert r.status_code == 200, r.text
    assert r.content == JPEG
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["content-disposition"] == "inline"
    assert r.headers["cache-control"] == "private, max-age=86400"
    assert r.headers["vary"] == "Cookie"
    assert r.headers["content-security-policy"] == "default-src 'none'; sandbox"
    [call] = services.sender_calls
    assert call.headers["authorization"] == "Bearer svc-token-for-media-tests-0123456789"
    assert call.headers["x-tenant-id"] == "tenant-a"
    assert parse_qs(call.url.query.decode()) == {
        "tenant_id": ["tenant-a"],
        "account_id": ["acc-1"],
        "media_id": ["777"],
    }
    # the browser revalidates: 304 without asking the sender again
    again = await app.get(src, headers={**who("sess-a"), "If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    assert len(services.sender_calls) == 1


async def test_another_tenants_media_url_is_unknown(app: httpx.AsyncClient, services: Services):
    src = src_for(app, "tenant-a", {"id": "777", "mime_type": "image/jpeg"})
    r = await app.get(src, headers=who("sess-b"))
    assert r.status_code == 404
    # nor can a URL be made up: the signature covers the tenant, the number and the id
    parts = urlsplit(src)
    sig = parse_qs(parts.query)["sig"][0]
    for forged in (
        f"/media/acc-1?id=778&sig={sig}",
        f"/media/acc-2?id=777&sig={sig}",
        "/media/acc-1?id=777&sig=" + "0" * 32,
        f"/media/acc-1?url=https://x.test/y&sig={sig}",
    ):
        assert (await app.get(forged, headers=who("sess-a"))).status_code == 404
    assert services.sender_calls == []
    anonymous = await app.get(src, follow_redirects=False)
    assert anonymous.status_code == 303


async def test_what_is_not_an_image_audio_or_video_is_an_attachment(
    app: httpx.AsyncClient, services: Services
):
    services.answer = (200, b"<html><script>alert(1)</script>", "text/html")
    media: dict[str, object] = {"id": "9", "mime_type": "image/jpeg"}
    r = await app.get(src_for(app, "tenant-a", media), headers=who("sess-a"))
    assert r.status_code == 200
    assert r.headers["content-disposition"] == "attachment; filename*=UTF-8''file"
    assert r.headers["x-content-type-options"] == "nosniff"
    doc = message_view(
        {
            "id": 2,
            "direction": "inbound",
            "type": "document",
            "content": {
                "media": {"id": "10", "mime_type": "application/pdf", "filename": "bill 1.pdf"}
            },
        },
        {},
        links(app).sources("tenant-a", "acc-1"),
    )
    assert doc.media is not None
    assert doc.media.display == "download"
    services.answer = (200, b"%PDF-1.4", "application/pdf")
    r = await app.get(str(doc.media.src), headers=who("sess-a"))
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"] == "attachment; filename*=UTF-8''bill%201.pdf"


async def test_the_senders_refusals(app: httpx.AsyncClient, services: Services):
    src = src_for(app, "tenant-a", {"id": "404"})
    body = json.dumps({"error": {"code": "media_not_found", "message": "gone"}}).encode()
    services.answer = (404, body, "")
    r = await app.get(src, headers=who("sess-a"))
    assert r.status_code == 404
    assert "media_not_found" in r.text
    services.answer = (401, b'{"error": {"code": "unauthorized", "message": "no"}}', "")
    r = await app.get(src, headers=who("sess-a"), follow_redirects=False)
    assert r.status_code == 502  # never the user's sign-in
    assert SESSION_COOKIE not in r.headers.get("set-cookie", "")


def test_which_media_show_inline() -> None:
    assert media_display("image", "image/jpeg") == "image"
    assert media_display("sticker", "image/webp") == "image"
    assert media_display("image", None) == "image"
    assert media_display("audio", "audio/ogg; codecs=opus") == "audio"
    assert media_display("video", "video/mp4") == "video"
    assert media_display("image", "image/svg+xml") == "download"
    assert media_display("document", "image/png") == "download"
    assert served_as("image/png") == ("image/png", True)
    assert served_as("image/svg+xml") == ("image/svg+xml", False)
    assert served_as("") == ("application/octet-stream", False)


def test_only_provider_media_get_a_console_url() -> None:
    signer = MediaLinks(b"k" * 32)
    sources = signer.sources("t", "acc")
    # a Twilio customer's MediaUrl goes through the sender; an outbound link stays a link
    twilio = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
    inbound = message_view(image_message({"link": twilio}), {}, sources)
    assert inbound.media is not None
    assert inbound.media.src is not None
    assert "url=https%3A%2F%2Fapi.twilio.com" in inbound.media.src
    sent = message_view(image_message({"link": "https://shop.test/a.jpg"}, "outbound"), {}, sources)
    assert sent.media is not None
    assert sent.media.src is None
    assert sent.media.link == "https://shop.test/a.jpg"
    foreign = message_view(image_message({"link": "https://evil.test/x.jpg"}), {}, sources)
    assert foreign.media is not None
    assert foreign.media.src is None


def test_a_media_messages_text_is_its_caption_once() -> None:
    message = image_message({"id": "1", "caption": "the label"})
    message["text"] = "the label the label"  # the inbox's text: the message's and the caption
    assert message_view(message, {}).text == "the label"
