"""Contacts and campaigns through the tenant API, against real RabbitMQ and PostgreSQL,
the sandbox as the Cloud API (template lookups), and a stub of the tenant service."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from flowchat_contracts import InboundMessage, OutboundCommand, Reply, topology
from flowchat_contracts.tenant_events import CampaignChanged
from flowchat_conversation.app import create_app
from flowchat_conversation.sealing import identities
from flowchat_conversation.settings import Settings
from flowchat_platform.testing import eventually, serve
from flowchat_sandbox.app import create_app as create_sandbox
from flowchat_sandbox.settings import Settings as SandboxSettings
from kindskit import subscribe, watch

pytestmark = pytest.mark.integration

TOKEN = "service-token-0123456789abcdef"
#: The service's keys (none set: derived from the token): customers stored as digests.
IDS = identities(None, None, SecretStr(TOKEN))


def stored(customer_id: str) -> str:
    """How tenant t1's customer ``customer_id`` is stored (its keyed digest)."""
    return IDS.key("t1", customer_id)


WABA = "200100300"
PHONE_NUMBER_ID = "100200300"
ACCESS = "EAAG-outreach-test-token-0123456789"
ADMIN_T2 = "fc_admin_t2"
#: The console's users: access token → (tenant, role).
USERS = {
    "fca.owner-t1": ("t1", "owner"),
    "fca.admin-t1": ("t1", "admin"),
    "fca.agent-t1": ("t1", "agent"),
    "fca.viewer-t1": ("t1", "viewer"),
    "fca.admin-t2": ("t2", "admin"),
    "fca.operator": (None, "operator"),
}
#: Contacts in the big campaign (FLOWCHAT_OUTREACH_CONTACTS=10000 for the full size).
N = int(os.environ.get("FLOWCHAT_OUTREACH_CONTACTS", "500"))


def tenant_stub(throughput: int) -> FastAPI:
    app = FastAPI()

    def ok(authorization: str) -> bool:
        return authorization == f"Bearer {TOKEN}"

    @app.post("/internal/v1/api-keys/verify")
    async def verify(body: dict[str, Any], authorization: str = Header("")) -> JSONResponse:
        if not ok(authorization):
            return JSONResponse({}, 401)
        if body.get("key") == ADMIN_T2:
            return JSONResponse({"key_id": "k3", "tenant_id": "t2", "scopes": ["admin"]})
        return JSONResponse({"error": {"code": "not_found", "message": "", "details": []}}, 404)

    @app.post("/internal/v1/users/resolve")
    async def resolve(body: dict[str, Any], authorization: str = Header("")) -> JSONResponse:
        if not ok(authorization) or body.get("token") not in USERS:
            return JSONResponse({"error": {"code": "not_found", "message": ""}}, 404)
        tenant_id, role = USERS[body["token"]]
        return JSONResponse(
            {"user_id": f"u-{role}", "tenant_id": tenant_id, "role": role, "session_id": "s1"}
        )

    @app.get("/internal/v1/accounts/{account_id}")
    async def account(account_id: str, authorization: str = Header("")) -> JSONResponse:
        if not ok(authorization) or account_id != "a1":
            return JSONResponse({}, 404)
        return JSONResponse(
            {
                "account_id": "a1",
                "tenant_id": "t1",
                "provider": "meta",
                "phone_number_id": PHONE_NUMBER_ID,
                "waba_id": WABA,
                "access_token": ACCESS,
                "throughput_mps": throughput,
            }
        )

    @app.get("/internal/v1/tenants/{tenant_id}")
    async def tenant(tenant_id: str) -> JSONResponse:
        return JSONResponse({"tenant_id": tenant_id, "timezone": "Africa/Lagos"})

    return app


class Outreach:
    def __init__(
        self,
        amqp_url: str,
        database_url: str,
        redis_url: str,
        tenant_url: str,
        sandbox: httpx.AsyncClient,
    ) -> None:
        self.settings = Settings(
            AMQP_URL=amqp_url,
            REDIS_URL=redis_url,
            DATABASE_URL=database_url,
            FLOWCHAT_TENANT_URL=tenant_url,
            FLOWCHAT_SERVICE_TOKEN=TOKEN,
            graph_url=str(sandbox.base_url),
            campaign_tick_s=0.02,
            campaign_idle_s=30,  # idle: only a wake (start, resume) starts the runner early
            campaign_max_inflight=0,  # no sender here: nothing ever leaves 'queued'
            subscriptions_ttl_s=0.1,
        )
        self.amqp_url = amqp_url
        self.dsn = database_url
        self.sandbox = sandbox
        self.http: httpx.AsyncClient | None = None
        self.commands: list[OutboundCommand] = []
        self._stack = contextlib.AsyncExitStack()

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    async def start(self) -> None:
        base = await self._stack.enter_async_context(serve(create_app(self.settings)))
        self.http = await self._stack.enter_async_context(
            httpx.AsyncClient(base_url=base, headers=self.admin, timeout=30)
        )
        http = self.http

        async def ready() -> bool:
            return (await http.get("/readyz")).status_code == 200

        await eventually(ready, timeout_s=90)  # migrations take long on a loaded machine

    async def stop(self) -> None:
        await self._stack.aclose()
        self._stack = contextlib.AsyncExitStack()

    async def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        assert self.http is not None
        return await self.http.request(method, f"/v1/tenants/t1{path}", **kw)

    async def drain(self) -> list[OutboundCommand]:
        """Every command published to both outbound lanes so far (kept in self.commands)."""
        conn = await aio_pika.connect(self.amqp_url)
        try:
            channel = await conn.channel()
            for name in (topology.QUEUE_OUTBOUND, topology.QUEUE_OUTBOUND_BULK):
                queue = await channel.get_queue(name)
                while (m := await queue.get(no_ack=True, fail=False)) is not None:
                    self.commands.append(OutboundCommand.model_validate_json(m.body))
        finally:
            await conn.close()
        return self.commands

    async def publish_event(self, body: dict[str, Any], key: str) -> None:
        conn = await aio_pika.connect(self.amqp_url)
        try:
            channel = await conn.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(topology.EXCHANGE_EVENTS)
            import json

            await exchange.publish(
                aio_pika.Message(json.dumps(body, default=str).encode()), routing_key=key
            )
        finally:
            await conn.close()


async def add_template(sandbox: httpx.AsyncClient, name: str, **kw: Any) -> dict[str, Any]:
    body = {
        "waba_id": WABA,
        "name": name,
        "language": "en",
        "status": "APPROVED",
        "category": "MARKETING",
        "components": [
            {"type": "BODY", "text": "Hi {{1}}, the {{2}} sale is on in {{3}}!"},
        ],
        **kw,
    }
    r = await sandbox.post("/sandbox/templates", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.fixture
async def outreach(amqp_url, database_url, redis_url):
    sandbox_app = create_sandbox(SandboxSettings())
    async with (
        serve(sandbox_app) as sandbox_url,
        httpx.AsyncClient(base_url=sandbox_url) as sandbox,
        serve(tenant_stub(throughput=1000)) as tenant_url,
    ):
        r = await sandbox.post(
            "/sandbox/numbers",
            json={
                "phone_number_id": PHONE_NUMBER_ID,
                "waba_id": WABA,
                "display_phone_number": "+15550001000",
                "access_token": ACCESS,
                "app_secret": "0123456789abcdef0123",
                "webhook_url": "http://127.0.0.1:9/none",
            },
        )
        assert r.status_code == 201, r.text
        await add_template(sandbox, "new_year")
        o = Outreach(amqp_url, database_url, redis_url, tenant_url, sandbox)
        await o.start()
        try:
            yield o
        finally:
            await o.stop()


def csv_rows(n: int, start: int = 0, tags: str = "vip") -> str:
    lines = ["phone,name,tags,city"]
    lines += [f"+23480{start + i:08d},Customer {start + i},{tags},Lagos" for i in range(n)]
    return "\n".join(lines) + "\n"


CAMPAIGN = {
    "name": "New Year sale",
    "account_id": "a1",
    "template": {"name": "new_year", "language": "en"},
    "parameters": {"body": ["{{first_name|friend}}", "New Year", "{{city}}"]},
    "segment": {"tags_all": ["vip"]},
}


# --------------------------------------------------------------------- contacts


async def test_csv_import_reports_every_rejected_row_and_search_finds_segments(outreach):
    text = (
        "phone,name,tags,groups,status,marketing_opt_in,city\n"
        "+2348012345678,Ada Obi,vip;lagos,retail,active,yes,Lagos\n"
        "08012345679,No Plus,,,,,\n"
        "+2348012345680,Bad Status,,,sleeping,,\n"
        "+2348012345678,Duplicate,,,,,\n"
        "+14155550123,Bob,vip,wholesale,blocked,no,SF\n"
        "not-a-phone,Who,,,,,\n"
    )
    r = await outreach.api("POST", "/contacts/import", content=text.encode())
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["received"] == 6
    assert report["created"] == 2
    rejected = {row["line"]: row["errors"] for row in report["rejected"]}
    assert set(rejected) == {3, 4, 5, 7}
    assert "country code" in rejected[3][0]
    assert "status must be" in rejected[4][0]
    assert "duplicate of line 2" in rejected[5][0]
    assert "phone number" in rejected[7][0]

    page = (
        await outreach.api("GET", "/contacts", params={"tag": "vip", "attr": "city=Lagos"})
    ).json()
    assert [c["phone"] for c in page["items"]] == ["+2348012345678"]
    assert page["next_cursor"] is None
    # every contact, one a page, none twice: GET and the POST search page alike
    for method, cursor_in in (("GET", "params"), ("POST", "json")):
        seen: list[int] = []
        cursor = None
        while True:
            given = {"limit": 1, **({"cursor": cursor} if cursor else {})}
            r = await outreach.api(
                method, "/contacts" + ("/search" if method == "POST" else ""), **{cursor_in: given}
            )
            assert r.status_code == 200, r.text
            seen += [c["contact_id"] for c in r.json()["items"]]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(set(seen))
        assert len(seen) == 2  # Ada and Bob
    ada = page["items"][0]
    assert ada["tags"] == ["vip", "lagos"]
    assert ada["groups"] == ["retail"]
    assert ada["attributes"] == {"city": "Lagos"}
    assert ada["marketing_opt_in"] is True
    assert ada["opt_in_source"] == "import"
    assert ada["last_inbound_at"] is None  # imported: no 24 h window

    count = await outreach.api("POST", "/contacts/count", json={"groups_any": ["wholesale"]})
    assert count.json() == {"count": 1}
    bob = (await outreach.api("GET", "/contacts", params={"q": "+14155550123"})).json()["items"]
    assert bob[0]["status"] == "blocked"
    assert bob[0]["marketing_opt_in"] is False

    # opting back in through an import never overrides the customer's own STOP
    async with _db(outreach.dsn) as db:
        await db.execute(
            "UPDATE contacts SET marketing_opt_in = false WHERE customer_wa_id = $1",
            stored("2348012345678"),
        )
        row = await db.fetchrow(
            "SELECT opt_in_source, opt_in_changed_at FROM contacts WHERE customer_wa_id = $1",
            stored("2348012345678"),
        )
    assert row["opt_in_source"] == "keyword"  # the bot's STOP, recorded by the trigger
    assert row["opt_in_changed_at"] is not None
    again = await outreach.api(
        "POST", "/contacts/import", content=b"phone,marketing_opt_in\n+2348012345678,yes\n"
    )
    assert again.json()["opt_out_kept"] == 1
    # the tenant's API can record a consent it collected
    r = await outreach.api("PUT", f"/contacts/{ada['contact_id']}/marketing", json={"opt_in": True})
    assert r.json()["marketing_opt_in"] is True
    assert r.json()["opt_in_source"] == "api"


async def test_people_owners_admins_and_operators_manage_a_tenant_others_are_refused(outreach):
    """The console's users (access tokens resolved by the tenant service): owners and
    admins of the tenant and operators pass; agents and viewers 403; another tenant's
    admin 404; an unknown token 401."""
    assert outreach.http is not None
    await outreach.api("POST", "/contacts/import", content=csv_rows(2).encode())

    async def status(token: str, method: str = "GET", path: str = "/contacts") -> int:
        assert outreach.http is not None
        r = await outreach.http.request(
            method, f"/v1/tenants/t1{path}", headers={"Authorization": f"Bearer {token}"}
        )
        return int(r.status_code)

    for token in ("fca.owner-t1", "fca.admin-t1", "fca.operator"):
        assert await status(token) == 200, token
        assert await status(token, path="/campaigns") == 200, token
    assert await status("fca.agent-t1") == 403
    assert await status("fca.viewer-t1", "POST", "/campaigns/c1/start") == 403
    assert await status("fca.admin-t2") == 404
    assert await status("fca.nobody") == 401


async def test_contacts_are_isolated_per_tenant(outreach):
    assert outreach.http is not None
    r = await outreach.http.get(
        "/v1/tenants/t1/contacts", headers={"Authorization": f"Bearer {ADMIN_T2}"}
    )
    assert r.status_code == 403
    r = await outreach.http.get(
        "/v1/tenants/t2/contacts", headers={"Authorization": f"Bearer {ADMIN_T2}"}
    )
    assert r.status_code == 200
    assert r.json()["items"] == []
    r = await outreach.http.get("/v1/tenants/t1/contacts", headers={"Authorization": ""})
    assert r.status_code == 401


@contextlib.asynccontextmanager
async def _db(dsn: str):
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "conversation"})
    try:
        yield conn
    finally:
        await conn.close()


# --------------------------------------------------------------------- refusals


async def test_bad_campaigns_are_refused_with_the_reason_before_anything_is_queued(outreach):
    await outreach.api("POST", "/contacts/import", content=csv_rows(3).encode())
    await outreach.api(
        "POST", "/contacts", json={"phone": "+2348099999999", "tags": ["vip"]}
    )  # no name, no city
    await add_template(outreach.sandbox, "pending_one", status="PENDING")

    async def refused(changes: dict[str, Any]) -> dict[str, Any]:
        r = await outreach.api("POST", "/campaigns", json={**CAMPAIGN, **changes})
        assert r.status_code in (409, 422), r.text
        return dict(r.json()["error"])

    assert (await refused({"template": {"name": "nope", "language": "en"}}))[
        "code"
    ] == "template_not_found"
    assert (await refused({"template": {"name": "pending_one", "language": "en"}}))[
        "code"
    ] == "template_not_approved"
    assert (await refused({"parameters": {"body": ["{{name}}"]}}))["code"] == "parameter_mismatch"
    missing = await refused({"parameters": {"body": ["{{name}}", "x", "{{city}}"]}})
    assert missing["code"] == "missing_parameters"
    assert missing["details"][0]["phone"] == "+2348099999999"
    assert sorted(missing["details"][0]["missing"]) == ["city", "name"]
    assert (await refused({"segment": {"tags_all": ["nobody"]}}))["code"] == "empty_segment"
    past = (datetime.now(UTC) - timedelta(minutes=5)).replace(tzinfo=None).isoformat()
    assert (await refused({"scheduled_at": past, "timezone": "UTC"}))["code"] == "schedule_in_past"
    assert (await refused({"account_id": "other"}))["code"] == "unknown_account"
    # nothing was written, nothing queued
    assert (await outreach.api("GET", "/campaigns")).json()["items"] == []
    await asyncio.sleep(0.2)
    assert await outreach.drain() == []


async def test_template_catalog_lists_every_status_of_the_numbers_waba_only(outreach):
    await add_template(outreach.sandbox, "pending_one", status="PENDING")
    r = await outreach.api("GET", "/accounts/a1/templates")
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["next_cursor"] is None
    assert [(t["name"], t["language"], t["status"]) for t in page["items"]] == [
        ("new_year", "en", "APPROVED"),
        ("pending_one", "en", "PENDING"),
    ]
    assert page["items"][0]["body"] == "Hi {{1}}, the {{2}} sale is on in {{3}}!"
    assert page["items"][0]["category"] == "MARKETING"
    first = (await outreach.api("GET", "/accounts/a1/templates", params={"limit": 1})).json()
    assert [t["name"] for t in first["items"]] == ["new_year"]
    rest = await outreach.api(
        "GET", "/accounts/a1/templates", params={"limit": 1, "cursor": first["next_cursor"]}
    )
    assert [t["name"] for t in rest.json()["items"]] == ["pending_one"]
    assert rest.json()["next_cursor"] is None
    other = await outreach.api("GET", "/accounts/other/templates")
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "unknown_account"
    # another tenant's admin key: refused before the provider is asked
    assert outreach.http is not None
    foreign = await outreach.http.get(
        "/v1/tenants/t1/accounts/a1/templates", headers={"Authorization": f"Bearer {ADMIN_T2}"}
    )
    assert foreign.status_code == 403
    as_t2 = await outreach.http.get(
        "/v1/tenants/t2/accounts/a1/templates", headers={"Authorization": f"Bearer {ADMIN_T2}"}
    )
    assert as_t2.json()["error"]["code"] == "unknown_account"


# --------------------------------------------------------------------- campaigns


async def _metrics(outreach: Outreach, campaign_id: str) -> dict[str, Any]:
    return dict((await outreach.api("GET", f"/campaigns/{campaign_id}/metrics")).json())


async def test_campaign_excludes_with_reasons_pauses_resumes_after_restart_exactly_once(outreach):
    r = await outreach.api("POST", "/contacts/import", content=csv_rows(N).encode())
    assert r.json()["created"] == N
    # three contacts that must not be messaged, each for its reason
    special = "phone,name,tags,status,marketing_opt_in,city\n"
    special += "+2348100000001,Opted Out,vip,active,no,Abuja\n"
    special += "+2348100000002,Blocked,vip,blocked,,Abuja\n"
    special += "+2348100000003,Capped,vip;capped,active,,Abuja\n"
    await outreach.api("POST", "/contacts/import", content=special.encode())
    # "Capped" got a campaign message an hour ago: the default cap is 1 per 24 h
    first = await outreach.api(
        "POST",
        "/campaigns",
        json={**CAMPAIGN, "name": "earlier", "segment": {"tags_all": ["capped"]}},
    )
    assert first.status_code == 201, first.text
    await outreach.api("POST", f"/campaigns/{first.json()['campaign_id']}/start")
    await eventually(
        lambda: _status(outreach, first.json()["campaign_id"], "completed"), timeout_s=10
    )

    dry = await outreach.api("POST", "/campaigns/dry-run", json={**CAMPAIGN, "previews": 3})
    assert dry.status_code == 200, dry.text
    dry_run = dry.json()
    assert dry_run["targeted"] == N + 3
    assert dry_run["eligible"] == N
    assert dry_run["excluded"] == {"opted_out": 1, "blocked": 1, "frequency_cap": 1}
    assert dry_run["previews"][0]["text"] == "Hi Customer, the New Year sale is on in Lagos!"
    assert len(dry_run["previews"]) == 3

    rate = min(1000, max(50, N // 4))  # about 4 s (10 s for 10,000)
    created = await outreach.api("POST", "/campaigns", json={**CAMPAIGN, "rate_mps": rate})
    assert created.status_code == 201, created.text
    campaign_id = created.json()["campaign_id"]
    assert created.json()["status"] == "draft"
    assert created.json()["timezone"] == "Africa/Lagos"
    started = time.monotonic()
    assert (await outreach.api("POST", f"/campaigns/{campaign_id}/start")).json()["status"] == (
        "running"
    )

    async def some_queued() -> bool:
        return bool((await _metrics(outreach, campaign_id))["queued"] >= N // 5)

    await eventually(some_queued, timeout_s=20)
    paused = await outreach.api("POST", f"/campaigns/{campaign_id}/pause")
    assert paused.json()["status"] == "paused"
    at_pause = (await _metrics(outreach, campaign_id))["queued"]
    await asyncio.sleep(0.5)
    assert (await _metrics(outreach, campaign_id))["queued"] == at_pause  # pause holds
    assert at_pause < N

    # restart the service: the campaign resumes from its checkpoint
    await outreach.stop()
    await outreach.start()
    assert (await outreach.api("POST", f"/campaigns/{campaign_id}/resume")).json()["status"] == (
        "running"
    )
    await eventually(lambda: _status(outreach, campaign_id, "completed"), timeout_s=60)
    elapsed = time.monotonic() - started
    commands = [c for c in await outreach.drain() if c.campaign_id == campaign_id]
    keys = [c.idempotency_key for c in commands]
    assert len(keys) == N
    assert len(set(keys)) == N  # each contact exactly once
    assert len({c.to for c in commands}) == N
    assert not {"2348100000001", "2348100000002", "2348100000003"} & {c.to for c in commands}
    sample = commands[0]
    assert sample.category == "marketing"
    assert sample.idempotency_key == f"campaign:{campaign_id}:{sample.message_id.rsplit('-', 1)[1]}"
    assert sample.content.type == "template"
    assert sample.content.components[0].parameters[1].text == "New Year"
    metrics = await _metrics(outreach, campaign_id)
    assert metrics["queued"] == N
    assert metrics["pending"] == 0
    assert metrics["excluded"] == {"opted_out": 1, "blocked": 1, "frequency_cap": 1}
    # paced: N messages at `rate`/s take N / rate, less one burst (1 s) per start
    assert elapsed >= N / rate - 2 * 1.0
    print(f"\n{N} contacts at {rate}/s: completed in {elapsed:.1f} s (paused, restarted)")


async def _status(outreach: Outreach, campaign_id: str, status: str) -> bool:
    r = await outreach.api("GET", f"/campaigns/{campaign_id}")
    return bool(r.json()["status"] == status)


async def test_status_events_feed_metrics_opt_outs_and_automatic_pauses(outreach):
    await outreach.api("POST", "/contacts/import", content=csv_rows(6).encode())
    created = await outreach.api("POST", "/campaigns", json={**CAMPAIGN, "rate_mps": 2})
    campaign_id = created.json()["campaign_id"]
    await outreach.api("POST", f"/campaigns/{campaign_id}/start")

    async def queued(n: int) -> bool:
        return bool((await _metrics(outreach, campaign_id))["queued"] >= n)

    await eventually(lambda: queued(3), timeout_s=10)
    commands = [c for c in await outreach.drain() if c.campaign_id == campaign_id]
    a, b, c = commands[:3]
    now = datetime.now(UTC).isoformat()

    def event(cmd: OutboundCommand, status: str, code: int | None = None) -> dict[str, Any]:
        return {
            "kind": "message_status_changed",
            "event_id": f"e-{cmd.message_id}-{status}",
            "message_id": cmd.message_id,
            "tenant_id": "t1",
            "account_id": "a1",
            "status": status,
            "recipient": cmd.to,
            "campaign_id": campaign_id,
            "error_code": code,
            "timestamp": now,
        }

    for body in (
        event(a, "sent"),
        event(a, "delivered"),
        event(a, "read"),
        event(a, "delivered"),  # late: never goes back
        event(b, "sent"),
        event(c, "failed", 131050),
        event(c, "failed", 131050),  # duplicate
    ):
        # routing keys v2: a campaign message's status ends in ".campaign"
        key = topology.status_event_key("t1", "a1", body["status"], campaign=True)
        await outreach.publish_event(body, key)

    async def counted() -> bool:
        m = await _metrics(outreach, campaign_id)
        return bool(m["read"] == 1 and m["failed"] == 1 and m["sent"] == 2)

    await eventually(counted, timeout_s=10)
    m = await _metrics(outreach, campaign_id)
    assert m["delivered"] == 1
    assert m["failed_by_code"] == {"131050": 1}
    # 131050: the customer stopped marketing messages
    page = (await outreach.api("GET", "/contacts", params={"q": c.to})).json()["items"]
    assert page[0]["marketing_opt_in"] is False
    assert page[0]["opt_in_source"] == "error_131050"
    # a reply after the campaign message counts (the bot records the inbound time)
    async with _db(outreach.dsn) as db:
        await db.execute(
            "UPDATE contacts SET last_seen_at = now() WHERE customer_wa_id = $1", stored(a.to)
        )
    assert (await _metrics(outreach, campaign_id))["replied"] == 1

    # Meta pauses the template: the campaign pauses itself
    await outreach.publish_event(
        {
            "kind": "business_event",
            "event_id": "b1",
            "tenant_id": "t1",
            "account_id": "a1",
            "field": "message_template_status_update",
            "event": "PAUSED",
            "occurred_at": now,
            "data": {
                "event": "PAUSED",
                "message_template_name": "new_year",
                "message_template_language": "en",
            },
        },
        "t1.a1.message_template_status_update",
    )
    await eventually(lambda: _status(outreach, campaign_id, "paused"), timeout_s=10)
    got = (await outreach.api("GET", f"/campaigns/{campaign_id}")).json()
    assert got["pause_reason"] == "template_paused"
    # the marketing preferences webhook records a STOP for a number not seen before
    await outreach.publish_event(
        {
            "kind": "business_event",
            "event_id": "b2",
            "tenant_id": "t1",
            "account_id": "a1",
            "field": "user_marketing_preferences",
            "occurred_at": now,
            "data": {
                "user_preferences": [
                    {"wa_id": "16505551234", "value": "stop", "timestamp": 1731705721}
                ]
            },
        },
        "t1.a1.user_marketing_preferences",
    )

    async def stopped() -> bool:
        items = (await outreach.api("GET", "/contacts", params={"q": "16505551234"})).json()
        return bool(items["items"]) and items["items"][0]["opt_in_source"] == "webhook"

    await eventually(stopped, timeout_s=10)


@pytest.mark.parametrize(
    ("error_code", "reason"),
    [(131048, "spam_rate_limit"), (-21, "template_not_approved")],
    ids=["meta_spam_signal", "sender_template_refusal"],
)
async def test_failure_signal_pauses_the_campaign(outreach, error_code, reason):
    await outreach.api("POST", "/contacts/import", content=csv_rows(4).encode())
    created = await outreach.api("POST", "/campaigns", json={**CAMPAIGN, "rate_mps": 1})
    campaign_id = created.json()["campaign_id"]
    await outreach.api("POST", f"/campaigns/{campaign_id}/start")

    async def one() -> bool:
        return bool([c for c in await outreach.drain() if c.campaign_id == campaign_id])

    await eventually(one, timeout_s=10)
    cmd = next(c for c in outreach.commands if c.campaign_id == campaign_id)
    await outreach.publish_event(
        {
            "kind": "message_status_changed",
            "event_id": "spam",
            "message_id": cmd.message_id,
            "tenant_id": "t1",
            "account_id": "a1",
            "status": "failed",
            "campaign_id": campaign_id,
            "error_code": error_code,
            "timestamp": datetime.now(UTC).isoformat(),
        },
        "t1.a1.failed",
    )
    await eventually(lambda: _status(outreach, campaign_id, "paused"), timeout_s=10)
    got = (await outreach.api("GET", f"/campaigns/{campaign_id}")).json()
    assert got["pause_reason"] == reason
    # cancel is final
    assert (await outreach.api("POST", f"/campaigns/{campaign_id}/cancel")).json()["status"] == (
        "cancelled"
    )
    r = await outreach.api("POST", f"/campaigns/{campaign_id}/resume")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "invalid_state"


# --------------------------------------------------------------------- identities (BSUIDs)


async def test_csv_and_campaigns_take_bsuids_and_a_user_preferences_stop_excludes_the_person(
    outreach,
):
    only, both, in_phone = "US.10000000000000000001", "US.10000000000000000002", "US.1000003"
    rows = "phone,user_id,name,tags,city\n"
    rows += f",{only},Bee,ids,Lagos\n"  # a BSUID alone
    rows += f"+2348100000020,{both},Pea,ids,Lagos\n"  # phone and BSUID: one customer
    rows += f"{in_phone},,Cee,ids,Lagos\n"  # a BSUID in the phone column
    rows += "+2348100000021,US.10000000000000000004,Dee,ids,Lagos\n"
    rows += ",not-a-bsuid,Bad,ids,Lagos\n"
    report = (await outreach.api("POST", "/contacts/import", content=rows.encode())).json()
    assert (report["created"], len(report["rejected"])) == (4, 1)
    assert report["rejected"][0]["line"] == 6
    listed = (await outreach.api("GET", "/contacts", params={"tag": "ids"})).json()["items"]
    assert {(c["wa_id"], c["phone"], c["user_id"]) for c in listed} == {
        (only, None, only),
        (both, "+2348100000020", both),  # new: keyed by the BSUID, the phone linked
        (in_phone, None, in_phone),
        ("US.10000000000000000004", "+2348100000021", "US.10000000000000000004"),
    }
    by_api = await outreach.api(
        "POST", "/contacts", json=[{"phone": "+2348100000020", "name": "Pea 2"}]
    )
    assert by_api.json()["updated"] == 1  # found by its phone, not a second contact
    # the person known by phone and BSUID stops marketing in WhatsApp (user_preferences)
    now = datetime.now(UTC)
    await outreach.publish_event(
        {
            "kind": "business_event",
            "event_id": "prefs-1",
            "tenant_id": "t1",
            "account_id": "a1",
            "field": "user_marketing_preferences",
            "occurred_at": now.isoformat(),
            "data": {"user_preferences": [{"value": "stop"}]},
            "marketing_preferences": [
                {"customer": {"user_id": both}, "value": "stop", "timestamp": now.isoformat()}
            ],
        },
        "t1.a1.user_marketing_preferences",
    )

    async def opted_out() -> bool:
        found = (await outreach.api("GET", "/contacts", params={"tag": "ids"})).json()["items"]
        return any(c["wa_id"] == both and not c["marketing_opt_in"] for c in found)

    await eventually(opted_out, timeout_s=10)
    created = await outreach.api(
        "POST", "/campaigns", json={**CAMPAIGN, "name": "ids", "segment": {"tags_all": ["ids"]}}
    )
    assert created.status_code == 201, created.text
    campaign_id = created.json()["campaign_id"]
    await outreach.api("POST", f"/campaigns/{campaign_id}/start")
    await eventually(lambda: _status(outreach, campaign_id, "completed"), timeout_s=10)
    commands = [c for c in await outreach.drain() if c.campaign_id == campaign_id]
    # to the BSUID when that is all there is, else to the phone number
    assert sorted(c.to for c in commands) == sorted([only, in_phone, "2348100000021"])
    metrics = await _metrics(outreach, campaign_id)
    assert metrics["excluded"] == {"opted_out": 1}


# ------------------------------------------------------------ facts for the relay
# ``campaign_changed`` on ``flowchat.events`` only while some endpoint of the tenant
# subscribes to its event type (the relay's sets in Redis, ``flowchat_platform.subscriptions``).

CAMPAIGN_TYPES = ["campaign.started", "campaign.paused", "campaign.completed"]


async def test_campaign_facts_only_while_an_endpoint_subscribes(
    outreach: Outreach, redis_url: str
) -> None:
    # one group of contacts per campaign (the frequency cap would exclude a second one)
    for n, tag in enumerate(("unheard", "heard", "paused")):
        rows = csv_rows(3, start=100 * n, tags=tag).encode()
        assert (await outreach.api("POST", "/contacts/import", content=rows)).status_code == 200
    conn = await aio_pika.connect(outreach.amqp_url)
    try:
        facts = await watch(await conn.channel(), "campaign_changed")

        async def run(name: str) -> str:
            body = {**CAMPAIGN, "name": name, "segment": {"tags_all": [name]}}
            r = await outreach.api("POST", "/campaigns", json=body)
            assert r.status_code == 201, r.text
            campaign_id = str(r.json()["campaign_id"])
            r = await outreach.api("POST", f"/campaigns/{campaign_id}/start")
            assert r.status_code == 200, r.text

            async def completed() -> bool:
                got = await outreach.api("GET", f"/campaigns/{campaign_id}")
                return bool(got.json()["status"] == "completed")

            await eventually(completed, timeout_s=15)
            return campaign_id

        await run("unheard")
        await asyncio.sleep(0.3)
        assert await facts.take() == []

        await subscribe(redis_url, "t1", CAMPAIGN_TYPES)
        heard = await run("heard")
        # a rate of one a second: still running when paused
        paused = await outreach.api(
            "POST",
            "/campaigns",
            json={**CAMPAIGN, "name": "paused", "rate_mps": 1, "segment": {"tags_all": ["paused"]}},
        )
        assert paused.status_code == 201, paused.text
        paused_id = paused.json()["campaign_id"]
        await outreach.api("POST", f"/campaigns/{paused_id}/start")
        r = await outreach.api("POST", f"/campaigns/{paused_id}/pause")
        assert r.status_code == 200, r.text
        got = await facts.count(4)
    finally:
        await conn.close()
    events = [CampaignChanged.model_validate_json(m.body) for m in got]
    by_campaign = [(e.campaign.campaign_id, e.change) for e in events]
    assert by_campaign == [
        (heard, "started"),
        (heard, "completed"),
        (paused_id, "started"),
        (paused_id, "paused"),
    ]
    assert events[0].campaign.name == "heard"
    assert events[3].campaign.reason == "operator"
    assert {(e.tenant_id, e.account_id) for e in events} == {("t1", "a1")}


# ------------------------------------------------------- customers sealed at rest


async def _clear_in_tables(dsn: str, needles: list[str]) -> list[str]:
    """``table: needle`` for every table of the conversation schema with a row whose
    text holds a needle."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'conversation' AND table_type = 'BASE TABLE'"
        )
        found = []
        for t in tables:
            for needle in needles:
                hit = await conn.fetchval(
                    f'SELECT count(*) FROM conversation."{t["table_name"]}" AS r '
                    "WHERE r::text ILIKE $1",
                    f"%{needle}%",
                )
                if hit:
                    found.append(f"{t['table_name']}: {needle}")
        return found
    finally:
        await conn.close()


async def _clear_in_redis(redis_url: str, needles: list[str]) -> tuple[int, list[str]]:
    """How many keys the service wrote (``conversation:*``) and ``key: needle`` for each
    whose name or value holds a needle."""
    client = aioredis.from_url(redis_url)
    found, count = [], 0

    def text(value: Any) -> str:
        return value.decode(errors="replace") if isinstance(value, bytes) else str(value)

    try:
        async for raw in client.scan_iter(match="conversation:*"):
            count += 1
            name = text(raw)
            kind = text(await client.type(raw))
            values: list[Any]
            if kind == "string":
                values = [await client.get(raw)]
            elif kind == "hash":
                values = list((await client.hgetall(raw)).values())
            elif kind == "set":
                values = list(await client.smembers(raw))
            else:
                values = []
            stored = name + " ".join(text(v) for v in values if v)
            found += [f"{name}: {n}" for n in needles if n.lower() in stored.lower()]
    finally:
        await client.aclose()
    return count, found


async def test_no_customer_phone_bsuid_or_name_is_stored_in_clear(outreach, redis_url):
    """Issue 28: after contacts imported, an order placed with the bot and a campaign
    sent, no table of the conversation schema and no Redis key or value the service
    wrote holds a customer's phone number, BSUID or name in clear; the API shows them."""
    phone, bsuid, name = "2348100000077", "US.10000000000000000077", "Zelda Quarrington"
    buyer, buyer_name = "2348100000088", "Quentin Zarzuela"
    rows = f"phone,user_id,name,tags,city\n+{phone},{bsuid},{name},sealed,Lagos\n"
    report = (await outreach.api("POST", "/contacts/import", content=rows.encode())).json()
    assert report["created"] == 1, report
    # the bot: a customer orders (profile name in the message)
    r = await outreach.api("PUT", "/settings", json={"business_name": "Acme", "currency": "USD"})
    assert r.status_code == 200, r.text
    product = {"sku": "CEM", "name": "Cement", "price": "12.50", "category": "B", "stock": 9}
    assert (await outreach.api("POST", "/products", json=[product])).status_code == 200
    conn = await aio_pika.connect(outreach.amqp_url)
    try:
        channel = await conn.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.EXCHANGE_INBOUND)
        for n, (text, reply) in enumerate(
            (("hi", None), ("Cement x 2", None), (None, "review:confirm"))
        ):
            message = InboundMessage(
                tenant_id="t1",
                account_id="a1",
                provider="meta",
                provider_message_id=f"wamid.sealed{n}",
                phone_number_id=PHONE_NUMBER_ID,
                customer_wa_id=buyer,
                customer_name=buyer_name,
                type="interactive" if reply else "text",
                timestamp=datetime.now(UTC),
                text=text,
                reply=Reply(id=reply, title="x") if reply else None,
            )
            await exchange.publish(
                aio_pika.Message(message.model_dump_json().encode()),
                routing_key=topology.inbound_routing_key("t1", "a1", "text"),
            )
            await asyncio.sleep(0.5)  # one after the other: the bot answers in order
    finally:
        await conn.close()

    async def ordered() -> bool:
        items = (await outreach.api("GET", "/orders")).json()["items"]
        return any(o["status"] == "confirmed" for o in items)

    await eventually(ordered, timeout_s=30)
    (order,) = (await outreach.api("GET", "/orders", params={"customer": "+" + buyer})).json()[
        "items"
    ]
    assert order["customer_wa_id"] == buyer  # decrypted on read
    # a campaign to the imported contact, with its name in the template's parameters
    created = await outreach.api(
        "POST",
        "/campaigns",
        json={**CAMPAIGN, "name": "sealed", "segment": {"tags_all": ["sealed"]}},
    )
    assert created.status_code == 201, created.text
    campaign_id = created.json()["campaign_id"]
    await outreach.api("POST", f"/campaigns/{campaign_id}/start")
    await eventually(lambda: _status(outreach, campaign_id, "completed"), timeout_s=15)
    sent = [c for c in await outreach.drain() if c.campaign_id == campaign_id]
    assert [c.to for c in sent] == [phone]
    # the API shows them in clear; found by phone and BSUID
    for q in ("+" + phone, bsuid):
        (contact,) = (await outreach.api("GET", "/contacts", params={"q": q})).json()["items"]
        assert (contact["phone"], contact["user_id"], contact["name"]) == ("+" + phone, bsuid, name)
    # ... and nothing holds them in clear
    needles = [phone, bsuid, name, "Zelda", buyer, buyer_name, "Quentin"]
    assert await _clear_in_tables(outreach.dsn, needles) == []
    written, in_redis = await _clear_in_redis(redis_url, needles)
    assert written > 0  # the bot's session and cart at least
    assert in_redis == []
