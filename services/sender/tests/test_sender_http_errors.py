"""The sender's errors become FlowChat's error body in one exception handler
(``flowchat_sender.routes.error_response``), whichever route raised them.

The app runs without its lifespan (no broker, no Redis): the parking lot and the media
store it would build are replaced by stand-ins that raise.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from flowchat_contracts import ProviderError
from flowchat_platform.errors import StoreUnavailable
from flowchat_sender.app import create_app
from flowchat_sender.errors import MediaRefused, MediaUploadFailed
from flowchat_sender.settings import Settings

TOKEN = "errors-test-service-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Raising:
    """A parking lot and a media store whose every call raises ``exc``."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def replay(self, **_: Any) -> Any:
        raise self.exc

    async def put(self, *_: Any, **__: Any) -> Any:
        raise self.exc

    async def put_link(self, *_: Any, **__: Any) -> Any:
        raise self.exc


def client(exc: Exception) -> httpx.AsyncClient:
    settings = Settings(
        AMQP_URL="amqp://guest:guest@127.0.0.1:1/",
        REDIS_URL="redis://127.0.0.1:1/0",
        FLOWCHAT_TENANT_URL="http://127.0.0.1:1",
        FLOWCHAT_SERVICE_TOKEN=TOKEN,
    )
    app = create_app(settings)
    app.state.parking_lot = app.state.media = Raising(exc)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sender")


async def test_an_unavailable_store_answers_503_on_replay() -> None:
    async with client(StoreUnavailable("idempotency store: down", store="idempotency")) as api:
        r = await api.post("/internal/v1/dlq/replay", headers=AUTH, json={})
    assert r.status_code == 503
    assert r.json() == {
        "error": {
            "code": "redis_unavailable",
            "message": "the idempotency store did not answer",
            "details": [],
        }
    }


@pytest.mark.parametrize(
    ("reason", "status", "code"),
    [
        ("account", 404, "not_found"),
        ("provider", 409, "provider_unsupported"),
        ("size", 413, "too_large"),
        ("type", 415, "unsupported_media_type"),
        ("kind", 415, "unsupported_media_type"),
        ("empty", 400, "invalid_request"),
    ],
)
async def test_a_refused_upload_answers_by_its_reason(reason: Any, status: int, code: str) -> None:
    async with client(MediaRefused("refused: test", reason=reason)) as api:
        r = await api.post(
            "/internal/v1/media/link",
            headers=AUTH,
            json={"tenant_id": "t", "account_id": "a", "link": "https://x.test/a.jpg"},
        )
    assert r.status_code == status
    assert r.json()["error"] == {"code": code, "message": "refused: test", "details": []}


async def test_a_failed_upload_answers_422_or_502_with_the_providers_error() -> None:
    error = ProviderError(code=131053, title="Media upload error", message="bad file")
    async with client(MediaUploadFailed("upload refused", error=error)) as api:
        refused = await api.post(
            "/internal/v1/media?tenant_id=t&account_id=a",
            headers={**AUTH, "Content-Type": "image/png"},
            content=b"\x89PNG",
        )
    assert refused.status_code == 422
    body = refused.json()["error"]
    assert body["code"] == "provider_refused"
    assert body["details"] == [error.model_dump()]
    async with client(MediaUploadFailed("upload: timeout", retryable=True)) as api:
        down = await api.post(
            "/internal/v1/media?tenant_id=t&account_id=a",
            headers={**AUTH, "Content-Type": "image/png"},
            content=b"\x89PNG",
        )
    assert down.status_code == 502
    assert down.json()["error"] == {
        "code": "upstream_unavailable",
        "message": "upload: timeout",
        "details": [],
    }
