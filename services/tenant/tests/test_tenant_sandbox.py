"""Number validation and business profile against the real sandbox (tools/sandbox) over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from flowchat_platform.testing import serve
from flowchat_sandbox.app import create_app as create_sandbox
from flowchat_sandbox.settings import Settings as SandboxSettings


@pytest.fixture
async def sandbox_url() -> AsyncIterator[str]:
    async with serve(create_sandbox(SandboxSettings())) as url:
        yield url


@pytest.fixture
async def tenant_on_sandbox(
    another_service, monkeypatch, sandbox_url
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("FLOWCHAT_TENANT_GRAPH_URL", sandbox_url)
    async with another_service() as client:
        yield client


async def test_register_number_validated_by_the_sandbox(api, sandbox_url, tenant_on_sandbox):
    client = tenant_on_sandbox
    number = {
        "phone_number_id": "109876543210001",
        "waba_id": "102290129340398",
        "display_phone_number": "+1 555-020-0001",
        "access_token": "EAAG-sandbox-access-token-0001",
        "app_secret": "sandbox-app-secret-0001",
        "webhook_url": "http://127.0.0.1:9/webhooks/meta",
        "throughput_mps": 1000,
        "quality_rating": "YELLOW",
    }
    async with httpx.AsyncClient(base_url=sandbox_url) as sandbox:
        r = await sandbox.post("/sandbox/numbers", json=number)
        assert r.status_code == 201, r.text

    tenant = (await client.post("/v1/tenants", json={"name": "S"}, headers=api.operator)).json()
    accounts = f"/v1/tenants/{tenant['tenant_id']}/accounts"
    body = {
        "provider": "meta",
        "phone_number_id": number["phone_number_id"],
        "waba_id": number["waba_id"],
        "display_phone_number": number["display_phone_number"],
        "app_id": "123456789012345",
        "app_secret": number["app_secret"],
        "verify_token": "sandbox-verify-token-0001",
        "access_token": "EAAG-not-the-sandbox-token",
    }
    refused = await client.post(accounts, json=body, headers=api.operator)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "invalid_credentials"

    r = await client.post(
        accounts, json={**body, "access_token": number["access_token"]}, headers=api.operator
    )
    assert r.status_code == 201, r.text
    account = r.json()
    assert account["health"]["quality_rating"] == "YELLOW"
    assert account["health"]["throughput_level"] == "HIGH"
    assert account["throughput_mps"] == 1000
    assert account["health"]["verified_name"]

    profile_url = f"{accounts}/{account['account_id']}/business-profile"
    r = await client.post(profile_url, json={"about": "Baked today"}, headers=api.operator)
    assert r.status_code == 200, r.text
    r = await client.get(profile_url, headers=api.operator)
    assert r.status_code == 200
    assert r.json()["data"][0]["about"] == "Baked today"
