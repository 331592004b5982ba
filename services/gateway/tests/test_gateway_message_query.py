"""``GET /v1/messages/{id}``: the tenant's key (read or send scope), proxied to the
state-manager's query API with the service token and ``X-Tenant-ID``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from gateway_testkit import SERVICE_TOKEN, Gateway, TenantStub, running_gateway

from flowchat_platform.testing import serve

pytestmark = pytest.mark.integration

KEY_SEND = "fc_tenant_a_send_0123456789abcdef"
KEY_READ = "fc_tenant_a_read_0123456789abcdef"
KEY_ADMIN = "fc_tenant_a_admin_0123456789abcde"
KEY_B = "fc_tenant_b_read_0123456789abcdef"


def record(message_id: str, tenant_id: str) -> dict[str, Any]:
    return {
        "id": message_id,
        "tenant_id": tenant_id,
        "account_id": "acc-meta-1",
        "idempotency_key": "order-1042",
        "recipient": "4915112345678",
        "message_type": "text",
        "category": "service",
        "campaign_id": None,
        "correlation_id": "corr-1",
        "provider": "meta",
        "provider_message_id": "wamid.HBgLNDkxNTExMjM0NTY3OBUCABEYEjQ",
        "status": "delivered",
        "error": None,
        "pricing_category": "service",
        "created_at": "2025-06-01T10:00:00Z",
        "updated_at": "2025-06-01T10:00:02Z",
    }


class StateStub:
    def __init__(self) -> None:
        self.messages = {
            "msg-a-1": record("msg-a-1", "tenant-a"),
            "msg-b-1": record("msg-b-1", "tenant-b"),
        }
        self.calls: list[tuple[str, str | None, str | None]] = []
        self.status: int | None = None

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/messages/{message_id}")
        async def message(message_id: str, request: Request) -> JSONResponse:
            self.calls.append(
                (
                    message_id,
                    request.headers.get("authorization"),
                    request.headers.get("x-tenant-id"),
                )
            )
            if self.status is not None:
                return JSONResponse({"error": {"code": "boom"}}, status_code=self.status)
            if request.headers.get("authorization") != f"Bearer {SERVICE_TOKEN}":
                return JSONResponse({"error": {"code": "unauthorized"}}, status_code=401)
            found = self.messages.get(message_id)
            if found is None or found["tenant_id"] != request.headers.get("x-tenant-id"):
                return JSONResponse({"error": {"code": "not_found"}}, status_code=404)
            return JSONResponse(found)

        return app


@pytest.fixture
async def state() -> AsyncIterator[tuple[StateStub, str]]:
    stub = StateStub()
    async with serve(stub.app()) as url:
        yield stub, url


@pytest.fixture
async def gw(
    module_amqp_url: str, redis_url: str, tenant_stub: TenantStub, state: tuple[StateStub, str]
) -> AsyncIterator[Gateway]:
    async with running_gateway(
        module_amqp_url, redis_url, tenant_stub, FLOWCHAT_STATE_URL=state[1]
    ) as gateway:
        tenant_stub.api_keys.update(
            {
                KEY_SEND: {"key_id": "k-send", "tenant_id": "tenant-a", "scopes": ["send"]},
                KEY_READ: {"key_id": "k-read", "tenant_id": "tenant-a", "scopes": ["read"]},
                KEY_ADMIN: {"key_id": "k-admin", "tenant_id": "tenant-a", "scopes": ["admin"]},
                KEY_B: {"key_id": "k-b", "tenant_id": "tenant-b", "scopes": ["read"]},
            }
        )
        yield gateway


async def get(gw: Gateway, message_id: str, key: str | None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return await gw.http.get(f"/v1/messages/{message_id}", headers=headers)


async def test_read_or_send_key_reads_its_tenants_message(
    gw: Gateway, state: tuple[StateStub, str]
) -> None:
    stub = state[0]
    for key in (KEY_READ, KEY_SEND):
        r = await get(gw, "msg-a-1", key)
        assert r.status_code == 200, r.text
        assert r.json() == stub.messages["msg-a-1"]
    assert stub.calls[-1] == ("msg-a-1", f"Bearer {SERVICE_TOKEN}", "tenant-a")


async def test_other_tenants_and_unknown_messages_are_404(
    gw: Gateway, state: tuple[StateStub, str]
) -> None:
    for key, message_id in ((KEY_READ, "msg-b-1"), (KEY_B, "msg-a-1"), (KEY_READ, "nope")):
        r = await get(gw, message_id, key)
        assert r.status_code == 404, (key, message_id)
        assert r.json()["error"]["code"] == "message_not_found"
        assert "tenant-b" not in r.text or key == KEY_B
    assert (await get(gw, "msg-b-1", KEY_B)).json()["tenant_id"] == "tenant-b"
    # The tenant the state-manager was asked for is always the key's own.
    assert {tenant for _, _, tenant in state[0].calls} == {"tenant-a", "tenant-b"}
    assert ("msg-b-1", f"Bearer {SERVICE_TOKEN}", "tenant-a") in state[0].calls


async def test_keys_are_checked_before_the_state_manager_is_asked(
    gw: Gateway, state: tuple[StateStub, str]
) -> None:
    assert (await get(gw, "msg-a-1", None)).status_code == 401
    assert (await get(gw, "msg-a-1", "fc_unknown_key_0000000000000000")).status_code == 401
    r = await get(gw, "msg-a-1", KEY_ADMIN)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    assert state[0].calls == []


async def test_state_manager_trouble_is_503(gw: Gateway, state: tuple[StateStub, str]) -> None:
    state[0].status = 500
    r = await get(gw, "msg-a-1", KEY_READ)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "unavailable"
    assert r.headers["retry-after"] == "2"


async def test_state_manager_unreachable_is_503(
    module_amqp_url: str, redis_url: str, tenant_stub: TenantStub
) -> None:
    async with running_gateway(
        module_amqp_url, redis_url, tenant_stub, FLOWCHAT_STATE_URL="http://127.0.0.1:9"
    ) as gateway:
        tenant_stub.api_keys[KEY_READ] = {
            "key_id": "k",
            "tenant_id": "tenant-a",
            "scopes": ["read"],
        }
        r = await get(gateway, "msg-a-1", KEY_READ)
        assert r.status_code == 503
