"""Number health (read at the provider, stored, refreshed) and the business profile passthrough."""

from __future__ import annotations

from flowchat_platform.testing import eventually
from flowchat_tenant.app import create_app
from flowchat_tenant.permissions import Principal
from flowchat_tenant.settings import Settings


async def test_refresh_reads_quality_throughput_and_limit(api):
    tenant = await api.tenant()
    body = api.meta_body()
    account = await api.account(tenant["tenant_id"], body)
    url = f"/v1/tenants/{tenant['tenant_id']}/accounts/{account['account_id']}"
    number = api.graph.state.numbers[body["phone_number_id"]]
    number.update(quality_rating="YELLOW", throughput_level="HIGH", messaging_limit_tier="TIER_10K")

    r = await api.client.post(f"{url}/health/refresh", headers=api.operator)
    assert r.status_code == 200
    health = r.json()["health"]
    assert (
        health["quality_rating"],
        health["throughput_level"],
        health["messaging_limit_tier"],
    ) == (
        "YELLOW",
        "HIGH",
        "TIER_10K",
    )
    assert health["error"] is None
    assert r.json()["throughput_mps"] == 1000
    assert r.json()["version"] == 2
    creds = await api.client.get(
        f"/internal/v1/accounts/{account['account_id']}", headers=api.service
    )
    assert creds.json()["throughput_mps"] == 1000

    # The same reading again changes nothing, so caches stay valid.
    r = await api.client.post(f"{url}/health/refresh", headers=api.operator)
    assert r.json()["version"] == 2

    # The provider now refuses the token: the error is kept, the last good reading too.
    number["token"] = "EAAG-someone-revoked-it"
    r = await api.client.post(f"{url}/health/refresh", headers=api.operator)
    assert r.status_code == 200
    assert r.json()["health"]["error"].startswith("invalid_credentials")
    assert r.json()["health"]["quality_rating"] == "YELLOW"
    assert "EAAG" not in r.text


async def test_pinned_throughput_is_kept(api):
    tenant = await api.tenant()
    body = api.meta_body(throughput_mps=20)
    account = await api.account(tenant["tenant_id"], body)
    assert account["throughput_mps"] == 20
    api.graph.state.numbers[body["phone_number_id"]]["throughput_level"] = "HIGH"
    r = await api.client.post(
        f"/v1/tenants/{tenant['tenant_id']}/accounts/{account['account_id']}/health/refresh",
        headers=api.operator,
    )
    assert r.json()["throughput_mps"] == 20
    assert r.json()["health"]["throughput_level"] == "HIGH"


async def test_background_task_refreshes_every_number(api, monkeypatch):
    tenant = await api.tenant()
    bodies = [api.meta_body(), api.meta_body()]
    accounts = [await api.account(tenant["tenant_id"], b) for b in bodies]
    for b in bodies:
        api.graph.state.numbers[b["phone_number_id"]]["quality_rating"] = "RED"
    monkeypatch.setenv("FLOWCHAT_TENANT_HEALTH_REFRESH_INTERVAL_S", "0.05")
    app = create_app(Settings())
    async with app.router.lifespan_context(app):

        async def all_red() -> bool:
            service = app.state.resources.service
            if service is None:
                return False
            views = await service.list_accounts(Principal.the_operator(), tenant["tenant_id"])
            return all(v.health.quality_rating == "RED" for v in views)

        await eventually(all_red, timeout_s=10)
    r = await api.client.get(f"/v1/tenants/{tenant['tenant_id']}/accounts", headers=api.operator)
    assert {a["account_id"] for a in r.json()["items"]} == {a["account_id"] for a in accounts}
    assert all(a["health"]["quality_rating"] == "RED" for a in r.json()["items"])


async def test_business_profile_passthrough(api):
    tenant = await api.tenant()
    body = api.meta_body()
    account = await api.account(tenant["tenant_id"], body)
    url = f"/v1/tenants/{tenant['tenant_id']}/accounts/{account['account_id']}/business-profile"
    r = await api.client.get(url, headers=api.operator)
    assert r.status_code == 200
    assert r.json() == {"data": [{"messaging_product": "whatsapp", "about": "Hello"}]}

    update = {
        "about": "Fresh bread daily",
        "websites": ["https://acme.example"],
        "email": "hi@acme.example",
    }
    r = await api.client.post(url, json=update, headers=api.operator)
    assert r.status_code == 200
    assert r.json() == {"success": True}
    assert api.graph.state.numbers[body["phone_number_id"]]["profile"] == update
    method, path, _ = api.graph.state.requests[-1]
    assert (method, path) == ("POST", f"/v23.0/{body['phone_number_id']}/whatsapp_business_profile")

    r = await api.client.post(url, json={"about": "x" * 140}, headers=api.operator)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["loc"] == ["body", "about"]

    twilio = await api.account(tenant["tenant_id"], api.twilio_body())
    r = await api.client.get(
        f"/v1/tenants/{tenant['tenant_id']}/accounts/{twilio['account_id']}/business-profile",
        headers=api.operator,
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "not_applicable"


async def test_provider_down_is_a_502_and_registers_nothing(api, monkeypatch, another_service):
    monkeypatch.setenv("FLOWCHAT_TENANT_GRAPH_URL", "http://127.0.0.1:9")
    async with another_service() as client:
        tenant = (await client.post("/v1/tenants", json={"name": "X"}, headers=api.operator)).json()
        r = await client.post(
            f"/v1/tenants/{tenant['tenant_id']}/accounts",
            json=api.meta_body(),
            headers=api.operator,
        )
        assert r.status_code == 502
        assert r.json()["error"]["code"] == "provider_unavailable"
        listed = await client.get(
            f"/v1/tenants/{tenant['tenant_id']}/accounts", headers=api.operator
        )
        assert listed.json()["items"] == []
