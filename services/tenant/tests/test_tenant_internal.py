"""Internal API: service token, decrypted credentials, cache headers, ETag/304, suspension."""

from __future__ import annotations

import aiohttp
import pytest

from flowchat_platform.accounts import AccountCredentials
from flowchat_platform.tenant_client import TenantClient
from flowchat_platform.testing import serve
from flowchat_tenant.app import create_app


@pytest.fixture
async def registered(api):
    tenant = await api.tenant()
    meta = api.meta_body()
    twilio = api.twilio_body()
    m = await api.account(tenant["tenant_id"], meta)
    t = await api.account(tenant["tenant_id"], twilio)
    key = await api.key(tenant["tenant_id"], ["send", "read"])
    return {"tenant": tenant, "meta": meta, "twilio": twilio, "m": m, "t": t, "key": key}


async def test_every_internal_route_requires_the_service_token(api, registered, people):
    m = registered["m"]
    someone = await people.user(registered["tenant"]["tenant_id"])
    routes = [
        ("GET", f"/internal/v1/accounts/{m['account_id']}", None),
        ("GET", f"/internal/v1/accounts/by-phone-number/{m['phone_number_id']}", None),
        ("GET", f"/internal/v1/accounts/by-waba/{m['waba_id']}", None),
        ("POST", "/internal/v1/accounts/batch", {"account_ids": [m["account_id"]]}),
        ("GET", f"/internal/v1/accounts/by-twilio-number/{registered['t']['twilio_number']}", None),
        ("POST", "/internal/v1/verify-tokens/check", {"token": registered["meta"]["verify_token"]}),
        ("POST", "/internal/v1/api-keys/verify", {"key": registered["key"]["key"]}),
        ("GET", f"/internal/v1/tenants/{registered['tenant']['tenant_id']}", None),
        ("POST", "/internal/v1/users/resolve", {"token": someone["access_token"]}),
        ("GET", "/internal/v1/dev/outbox", None),
        (
            "POST",
            "/internal/v1/audit",
            {"actor_type": "service", "action": "a.b", "target_type": "t"},
        ),
    ]
    paths = api.client._transport.app.openapi()["paths"]
    internal = {
        (method.upper(), path)
        for path, ops in paths.items()
        if path.startswith("/internal/")
        for method in ops
    }
    assert len(internal) == len(routes)
    admin = api.bearer((await api.key(registered["tenant"]["tenant_id"], ["admin"]))["key"])
    for method, url, body in routes:
        no_token: dict[str, str] = {}
        for headers in (no_token, api.bearer("x" * 40), api.operator, admin):
            r = await api.client.request(method, url, json=body, headers=headers)
            assert r.status_code == 401, (method, url, headers)
            assert "secret" not in r.text
        r = await api.client.request(method, url, json=body, headers=api.service)
        assert r.status_code in (200, 204), (method, url, r.text)


async def test_lookups_return_decrypted_credentials_with_cache_headers(api, registered):
    m, meta = registered["m"], registered["meta"]
    for url in (
        f"/internal/v1/accounts/{m['account_id']}",
        f"/internal/v1/accounts/by-phone-number/{meta['phone_number_id']}",
    ):
        r = await api.client.get(url, headers=api.service)
        assert r.status_code == 200
        creds = AccountCredentials.model_validate_json(r.content)
        assert creds.account_id == m["account_id"]
        assert creds.tenant_id == registered["tenant"]["tenant_id"]
        assert creds.tenant_status == "active"
        assert creds.access_token == meta["access_token"]
        assert creds.app_secret == meta["app_secret"]
        assert creds.throughput_mps == 80
        assert creds.version == 1
        assert "verify_token" not in r.json()
        assert r.headers["cache-control"] == "private, max-age=60"
        assert r.headers["etag"] == f'"{m["account_id"]}-1"'

    t, twilio = registered["t"], registered["twilio"]
    for number in (twilio["twilio_number"], "whatsapp:" + twilio["twilio_number"]):
        r = await api.client.get(
            f"/internal/v1/accounts/by-twilio-number/{number}", headers=api.service
        )
        assert r.status_code == 200
        creds = AccountCredentials.model_validate_json(r.content)
        assert creds.account_id == t["account_id"]
        assert creds.twilio_auth_token == twilio["twilio_auth_token"]
        assert creds.twilio_account_sid == twilio["twilio_account_sid"]

    for url in (
        "/internal/v1/accounts/acc_0000",
        "/internal/v1/accounts/by-phone-number/999",
        "/internal/v1/accounts/by-twilio-number/+14155550000",
        "/internal/v1/accounts/by-twilio-number/garbage",
    ):
        r = await api.client.get(url, headers=api.service)
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "not_found"


async def test_etag_304_until_the_account_changes(api, registered):
    m = registered["m"]
    url = f"/internal/v1/accounts/{m['account_id']}"
    first = await api.client.get(url, headers=api.service)
    etag = first.headers["etag"]
    r = await api.client.get(url, headers={**api.service, "If-None-Match": etag})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == etag
    assert r.headers["cache-control"] == "private, max-age=60"
    r = await api.client.get(url, headers={**api.service, "If-None-Match": f'"x", W/{etag}'})
    assert r.status_code == 304

    await api.client.patch(
        f"/v1/tenants/{m['tenant_id']}/accounts/{m['account_id']}",
        json={"app_secret": "a-brand-new-app-secret"},
        headers=api.operator,
    )
    r = await api.client.get(url, headers={**api.service, "If-None-Match": etag})
    assert r.status_code == 200
    assert r.headers["etag"] == f'"{m["account_id"]}-2"'
    assert r.json()["app_secret"] == "a-brand-new-app-secret"
    assert r.json()["version"] == 2


async def test_suspended_tenant_still_resolves_marked_suspended(api, registered):
    m = registered["m"]
    tid = registered["tenant"]["tenant_id"]
    url = f"/internal/v1/accounts/by-phone-number/{m['phone_number_id']}"
    etag = (await api.client.get(url, headers=api.service)).headers["etag"]
    r = await api.client.patch(
        f"/v1/tenants/{tid}", json={"status": "suspended"}, headers=api.operator
    )
    assert r.status_code == 200
    assert r.json()["status"] == "suspended"

    r = await api.client.get(url, headers={**api.service, "If-None-Match": etag})
    assert r.status_code == 200  # the answer changed, so the version moved
    assert r.json()["tenant_status"] == "suspended"
    assert r.json()["access_token"] == registered["meta"]["access_token"]
    r = await api.client.post(
        "/internal/v1/api-keys/verify", json={"key": registered["key"]["key"]}, headers=api.service
    )
    assert r.status_code == 200
    assert r.json()["tenant_status"] == "suspended"
    # Webhook verification keeps working for a suspended tenant (nothing inbound is lost).
    r = await api.client.post(
        "/internal/v1/verify-tokens/check",
        json={"token": registered["meta"]["verify_token"]},
        headers=api.service,
    )
    assert r.json() == {"valid": True}


async def test_verify_tokens_and_api_keys(api, registered):
    check = "/internal/v1/verify-tokens/check"
    ok = await api.client.post(
        check, json={"token": registered["meta"]["verify_token"]}, headers=api.service
    )
    assert ok.json() == {"valid": True}
    bad = await api.client.post(check, json={"token": "not-a-token-we-issued"}, headers=api.service)
    assert bad.json() == {"valid": False}

    verify = "/internal/v1/api-keys/verify"
    key = registered["key"]
    r = await api.client.post(verify, json={"key": key["key"]}, headers=api.service)
    assert r.status_code == 200
    body = r.json()
    assert (body["key_id"], body["tenant_id"], body["scopes"]) == (
        key["key_id"],
        registered["tenant"]["tenant_id"],
        ["read", "send"],
    )
    forged = key["key"][:-4] + "0000"
    for wrong in (forged, "fc_key_123_" + "a" * 64, "nope", ""):
        r = await api.client.post(verify, json={"key": wrong}, headers=api.service)
        assert r.status_code == 404, wrong


async def test_platform_tenant_client_speaks_this_api(settings, api, registered):
    """The client the gateway and sender use, over real HTTP against this service."""
    app = create_app(settings)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        client = TenantClient(url, api.service_token, session=session)
        meta = registered["meta"]
        creds = None
        for _ in range(200):
            try:
                creds = await client.account_by_phone_number(meta["phone_number_id"])
                break
            except Exception:  # noqa: BLE001 - 503 while the app connects
                import asyncio

                await asyncio.sleep(0.02)
        assert creds is not None
        assert creds.access_token == meta["access_token"]
        assert creds.app_secret == meta["app_secret"]
        assert (await client.account(creds.account_id)) == creds
        twilio = await client.account_by_twilio_number(registered["twilio"]["twilio_number"])
        assert twilio is not None
        assert twilio.twilio_auth_token == registered["twilio"]["twilio_auth_token"]
        assert await client.account_by_phone_number("404404") is None
        assert await client.verify_token_known(meta["verify_token"]) is True
        assert await client.verify_token_known("unknown-token") is False
        info = await client.api_key(registered["key"]["key"])
        assert info is not None
        assert info.tenant_id == registered["tenant"]["tenant_id"]
        assert await client.api_key("fc_key_00_" + "0" * 64) is None
