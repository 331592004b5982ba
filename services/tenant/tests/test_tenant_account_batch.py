"""Internal batch lookup: many accounts in one query, and the client that batches misses."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from flowchat_platform.accounts import ACCOUNT_BATCH_MAX, AccountBatch, AccountCredentials
from flowchat_platform.tenant_client import TenantClient
from flowchat_platform.testing import serve
from flowchat_tenant.app import create_app


async def test_batch_answers_the_known_ids_with_secrets_and_leaves_out_the_rest(api):
    tid = (await api.tenant())["tenant_id"]
    first_body, second_body = api.meta_body(), api.twilio_body()
    first = await api.account(tid, first_body)
    second = await api.account(tid, second_body)
    ids = [first["account_id"], "acc_404404", second["account_id"], first["account_id"]]
    r = await api.client.post(
        "/internal/v1/accounts/batch", json={"account_ids": ids}, headers=api.service
    )
    assert r.status_code == 200, r.text
    found = {a.account_id: a for a in AccountBatch.model_validate_json(r.content).accounts}
    assert set(found) == {first["account_id"], second["account_id"]}
    assert found[first["account_id"]].access_token == first_body["access_token"]
    assert found[first["account_id"]].tenant_id == tid
    assert found[second["account_id"]].twilio_auth_token == second_body["twilio_auth_token"]
    assert r.headers["cache-control"] == "private, max-age=60"


async def test_batch_refuses_empty_and_oversized_requests(api):
    for ids in ([], [f"acc_{i:x}" for i in range(ACCOUNT_BATCH_MAX + 1)], ["x" * 129]):
        r = await api.client.post(
            "/internal/v1/accounts/batch", json={"account_ids": ids}, headers=api.service
        )
        assert r.status_code == 422, (len(ids), r.text)


async def _started(app, client: TenantClient) -> None:
    for _ in range(1500):  # a loaded machine: up to 30 s
        if app.state.resources.service is not None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the tenant app did not start")


async def test_client_batches_concurrent_misses_and_caches_each_answer(settings, api):
    tid = (await api.tenant())["tenant_id"]
    accounts = [await api.account(tid, api.meta_body()) for _ in range(3)]
    ids = [a["account_id"] for a in accounts]
    app = create_app(settings)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        client = TenantClient(url, api.service_token, session=session, batch_accounts=True)
        await _started(app, client)
        found = await asyncio.gather(*(client.account(i) for i in [*ids, "acc_404404", ids[0]]))
        assert client.batches == 1
        assert [a.account_id if a else None for a in found] == [*ids, None, ids[0]]
        # every answer cached under its own key: no request for a hit or a known miss
        assert await client.account(ids[1]) == found[1]
        assert await client.account("acc_404404") is None
        assert await client.account("x" * 200) is None  # no account has such an id
        assert client.batches == 1
        # revocation: the account deleted is served until invalidated (max-age), then not
        r = await api.client.delete(f"/v1/tenants/{tid}/accounts/{ids[2]}", headers=api.operator)
        assert r.status_code == 204
        assert await client.account(ids[2]) == found[2]
        assert found[2] is not None
        client.invalidate(found[2])
        assert await client.account(ids[2]) is None
        assert client.batches == 2


async def test_client_falls_back_to_single_lookups_without_the_batch_route():
    """A tenant service from before the batch route (404 for it): one GET per id."""
    known = AccountCredentials(
        account_id="acc_1", tenant_id="tnt_1", provider="meta", access_token="EAAG-x"
    )
    asked: list[str] = []

    async def one(request: web.Request) -> web.Response:
        asked.append(request.method + " " + request.path)
        if request.match_info["account_id"] != known.account_id:
            return web.json_response({"error": {"code": "not_found"}}, status=404)
        return web.Response(body=known.model_dump_json(), content_type="application/json")

    app = web.Application()
    app.router.add_get("/internal/v1/accounts/{account_id}", one)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            client = TenantClient(
                f"http://127.0.0.1:{port}", "token", session=session, batch_accounts=True
            )
            found, missing = await asyncio.gather(
                client.account("acc_1"), client.account("acc_404404")
            )
            assert found == known
            assert missing is None
            assert client.batch_accounts is False  # asked once, then one id at a time
            assert client.batches == 1
            assert await client.account("acc_1") == known  # cached
            assert sorted(asked) == [
                "GET /internal/v1/accounts/acc_1",
                "GET /internal/v1/accounts/acc_404404",
            ]
    finally:
        await runner.cleanup()


async def test_client_batch_failure_reaches_only_its_callers(settings, api):
    tid = (await api.tenant())["tenant_id"]
    account = await api.account(tid, api.meta_body())
    async with aiohttp.ClientSession() as session:
        # nothing listens there: the batch fails, each caller sees UpstreamError
        client = TenantClient(
            "http://127.0.0.1:9", api.service_token, session=session, batch_accounts=True
        )
        results = await asyncio.gather(
            client.account(account["account_id"]),
            client.account("acc_1"),
            return_exceptions=True,
        )
        assert [type(r).__name__ for r in results] == ["UpstreamError", "UpstreamError"]
        assert client._inflight == {}
        assert client._wanted == []
