"""Internal lookup by WABA id: every number of a WABA, with list ETags, and the client."""

from __future__ import annotations

import asyncio

import aiohttp

from flowchat_platform.tenant_client import TenantClient, WabaAccounts
from flowchat_platform.testing import serve
from flowchat_tenant.app import create_app

WABA = "102290129340398"
OTHER_WABA = "555000111222333"


async def test_by_waba_lists_every_number_of_the_waba_oldest_first(api):
    tenant = await api.tenant()
    tid = tenant["tenant_id"]
    first = await api.account(tid, api.meta_body(waba_id=WABA))
    second_body = api.meta_body(waba_id=WABA)
    second = await api.account(tid, second_body)
    await api.account(tid, api.meta_body(waba_id=OTHER_WABA))
    await api.account(tid, api.twilio_body())

    r = await api.client.get(f"/internal/v1/accounts/by-waba/{WABA}", headers=api.service)
    assert r.status_code == 200, r.text
    found = WabaAccounts.model_validate_json(r.content).accounts
    assert [a.account_id for a in found] == [first["account_id"], second["account_id"]]
    assert {a.waba_id for a in found} == {WABA}
    assert found[1].app_secret == second_body["app_secret"]
    assert found[1].access_token == second_body["access_token"]
    assert found[0].tenant_id == tid
    assert r.headers["cache-control"] == "private, max-age=60"
    assert r.headers["etag"].startswith('"waba-')

    other = await api.client.get(f"/internal/v1/accounts/by-waba/{OTHER_WABA}", headers=api.service)
    assert len(other.json()["accounts"]) == 1

    missing = await api.client.get("/internal/v1/accounts/by-waba/404404", headers=api.service)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


async def test_by_waba_etag_moves_when_any_account_changes_or_leaves(api):
    tid = (await api.tenant())["tenant_id"]
    first = await api.account(tid, api.meta_body(waba_id=WABA))
    url = f"/internal/v1/accounts/by-waba/{WABA}"
    etag = (await api.client.get(url, headers=api.service)).headers["etag"]
    r = await api.client.get(url, headers={**api.service, "If-None-Match": etag})
    assert r.status_code == 304
    assert r.headers["etag"] == etag

    await api.client.patch(
        f"/v1/tenants/{tid}/accounts/{first['account_id']}",
        json={"app_secret": "a-rotated-app-secret"},
        headers=api.operator,
    )
    r = await api.client.get(url, headers={**api.service, "If-None-Match": etag})
    assert r.status_code == 200
    assert r.json()["accounts"][0]["app_secret"] == "a-rotated-app-secret"
    changed = r.headers["etag"]
    assert changed != etag

    second = await api.account(tid, api.meta_body(waba_id=WABA))
    r = await api.client.get(url, headers={**api.service, "If-None-Match": changed})
    assert r.status_code == 200
    assert len(r.json()["accounts"]) == 2
    grown = r.headers["etag"]

    await api.client.delete(
        f"/v1/tenants/{tid}/accounts/{second['account_id']}", headers=api.operator
    )
    r = await api.client.get(url, headers={**api.service, "If-None-Match": grown})
    assert r.status_code == 200
    assert r.headers["etag"] == changed  # the same list as before, the same tag


async def test_by_waba_needs_the_service_token(api):
    tid = (await api.tenant())["tenant_id"]
    await api.account(tid, api.meta_body(waba_id=WABA))
    admin = api.bearer((await api.key(tid, ["admin"]))["key"])
    no_token: dict[str, str] = {}
    for headers in (no_token, api.operator, admin):
        r = await api.client.get(f"/internal/v1/accounts/by-waba/{WABA}", headers=headers)
        assert r.status_code == 401
        assert "secret" not in r.text


async def test_tenant_client_accounts_by_waba(settings, api):
    tid = (await api.tenant())["tenant_id"]
    body = api.meta_body(waba_id=WABA)
    account = await api.account(tid, body)
    app = create_app(settings)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        client = TenantClient(url, api.service_token, session=session)
        for _ in range(300):
            if app.state.resources.service is not None:
                break
            await asyncio.sleep(0.02)
        found = await client.accounts_by_waba(WABA)
        assert [a.account_id for a in found] == [account["account_id"]]
        assert found[0].app_secret == body["app_secret"]
        assert await client.accounts_by_waba("404404") == []
        r = await api.client.delete(
            f"/v1/tenants/{tid}/accounts/{account['account_id']}", headers=api.operator
        )
        assert r.status_code == 204
        # cached for max-age: the deleted account is still served until invalidated
        assert await client.accounts_by_waba(WABA) == found
        client.invalidate(found[0])
        assert await client.accounts_by_waba(WABA) == []
