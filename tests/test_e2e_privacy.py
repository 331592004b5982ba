"""Erasure through the whole platform (issue 28): a customer of the demo shop writes
through the sandbox (history in the inbox, a contact, a session, an order with its
invoice), gets a campaign message, opts out with STOP, and the tenant's webhook
endpoint gets deliveries of it all. The relay is down when the tenant asks to forget the
customer; every other service acts and reports at once, the relay when it comes back.

Afterwards no table of any service and no Redis key or value holds the customer's phone
number, BSUID or name, in clear or in any form it was stored in: what remains is the
suppression entry (a keyed digest) and the order, kept under a pseudonym. The tenant
imports the number again by mistake: a new campaign does not message it.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from flowchat_platform.testing import eventually, free_port
from stackkit import ProcessStack, load_script
from test_e2e_conversation_commerce import Shop, open_shop, order_id_in

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

#: Schemas of the platform's services (the sandbox keeps none).
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


async def stored_anywhere(database_url: str, needles: list[str]) -> list[str]:
    """``schema.table: needle`` for every table with a row whose text holds a needle."""
    found: list[str] = []
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema <> ALL($1::text[]) "
            "AND table_schema NOT LIKE 'pg_%'",
            list(SYSTEM_SCHEMAS),
        )
        for t in tables:
            name = f'"{t["table_schema"]}"."{t["table_name"]}"'
            for needle in needles:
                hit = await conn.fetchval(
                    f"SELECT count(*) FROM {name} AS r WHERE r::text ILIKE $1",
                    f"%{needle}%",
                )
                if hit:
                    found.append(f"{t['table_schema']}.{t['table_name']}: {needle}")
    finally:
        await conn.close()
    return found


async def in_redis(redis_url: str, needles: list[str]) -> list[str]:
    """``key: needle`` for every key whose name or value holds a needle."""
    client: Any = aioredis.from_url(redis_url)  # bytes in, bytes out (no decoding)
    found: list[str] = []
    try:
        async for raw in client.scan_iter(count=1000):
            key = raw.decode(errors="replace")
            kind = (await client.type(raw)).decode()
            if kind == "string":
                values: list[Any] = [await client.get(raw)]
            elif kind == "hash":
                values = [*(await client.hgetall(raw)).items()]
            elif kind == "set":
                values = list(await client.smembers(raw))
            elif kind == "zset":
                values = list(await client.zrange(raw, 0, -1))
            elif kind == "list":
                values = list(await client.lrange(raw, 0, -1))
            elif kind == "stream":
                values = list(await client.xrange(raw))
            else:
                values = []
            text = key + " " + repr(values)
            found += [f"{key}: {n}" for n in needles if n.lower() in text.lower()]
    finally:
        await client.aclose()
    return found


async def outbound_count(shop: Shop, customer: str) -> int:
    return len(await shop.outbound(customer))


async def run_campaign(shop: Shop, name: str) -> dict[str, Any]:
    """A marketing campaign to every contact, started; its metrics once completed."""
    body = {
        "name": name,
        "account_id": shop.seeded.account_id,
        "template": {"name": "spring_sale", "language": "en"},
        "parameters": {"body": ["{{name|friend}}"]},
        "rate_mps": 20,
    }
    r = await shop.http.post(f"{shop.api}/campaigns", json=body, headers=shop.admin)
    assert r.status_code == 201, r.text
    campaign_id = r.json()["campaign_id"]
    r = await shop.http.post(f"{shop.api}/campaigns/{campaign_id}/start", headers=shop.admin)
    assert r.status_code == 200, r.text

    async def completed() -> dict[str, Any] | None:
        r = await shop.http.get(f"{shop.api}/campaigns/{campaign_id}", headers=shop.admin)
        if r.json()["status"] != "completed":
            return None
        m = await shop.http.get(f"{shop.api}/campaigns/{campaign_id}/metrics", headers=shop.admin)
        return dict(m.json())

    result: dict[str, Any] = await eventually(completed, timeout_s=60, interval_s=0.2)
    return result


async def customer_with_an_order(
    stack: ProcessStack, shop: Shop, c: str, name: str, hook_url: str
) -> tuple[str, str]:
    """The campaign's template at the sandbox, the tenant's webhook endpoint (every
    received message and status, at ``hook_url``), and customer ``c``'s history, contact,
    session, order and invoice; the order id and the customer's BSUID."""
    http = shop.http
    waba_id = "2099" + shop.seeded.phone_number_id[4:]
    r = await http.post(
        f"{shop.sandbox}/sandbox/templates",
        json={
            "waba_id": waba_id,
            "name": "spring_sale",
            "language": "en",
            "category": "MARKETING",
            "components": [{"type": "BODY", "text": "Spring sale, {{1}}: 10% off."}],
        },
    )
    assert r.status_code == 201, r.text
    r = await http.post(
        f"{stack.urls['relay']}/v1/endpoints",
        json={"url": hook_url, "event_types": ["message.received", "message.status"]},
        headers=shop.admin,
    )
    assert r.status_code == 201, r.text

    hello = await shop.say(c, {"text": "Hi", "name": name}, 1)
    assert "Acme Hardware" in hello[0]
    await shop.tap(c, "list", "Building", 1)
    await shop.tap(c, "list", "Cement 50kg", 1)
    await shop.say(c, "10", 2)
    invoice, _ = await shop.tap(c, "button", "Confirm", 2)
    customer = (await http.get(f"{shop.sandbox}/sandbox/customers/{c}")).json()
    assert customer["user_id"]
    return order_id_in(invoice), str(customer["user_id"])


async def forget_a_customer(stack: ProcessStack, shop: Shop) -> None:
    http = shop.http
    c = f"2348030{secrets.randbelow(10**6):06d}"  # a valid Nigerian mobile number (import)
    name = f"Ada Erasable {secrets.token_hex(3)}"
    # nothing listens at the endpoint: the deliveries wait, retried
    order_id, bsuid = await customer_with_an_order(
        stack, shop, c, name, f"http://127.0.0.1:{free_port()}/hook"
    )

    # a campaign message, then STOP
    sent = await run_campaign(shop, "Spring")
    assert sent["targeted"] == 1, sent
    assert not sent["excluded"], sent
    await eventually(lambda: _got_template(shop, c), timeout_s=30)
    await shop.send(c, {"text": "STOP", "name": name})

    async def opted_out() -> bool:
        # the contact is keyed by the BSUID the sandbox sends: found by it (names and
        # parts of numbers are not searchable: the contacts are stored sealed)
        r = await http.get(f"{shop.api}/contacts", params={"q": bsuid}, headers=shop.admin)
        items = r.json()["items"]
        return bool(items) and items[0]["marketing_opt_in"] is False

    await eventually(opted_out, timeout_s=20, interval_s=0.1)

    async def relay_stored() -> bool:
        # the relay keeps its events encrypted: found through the export (by digest)
        got = await export(shop, c)
        return len(got["services"].get("relay", {}).get("events", [])) >= 3

    await eventually(relay_stored, timeout_s=30, interval_s=0.2)
    await asyncio.sleep(1.0)  # the last statuses reach every service

    # the customer asks what the shop holds: one document from every service
    exported = await export(shop, c)
    assert set(exported["identities"]) >= {c, bsuid}, exported["identities"]
    assert exported["unavailable"] == []
    own = exported["services"]["conversation"]
    assert [o["order_id"] for o in own["orders"]] == [order_id]
    assert own["orders"][0]["invoice"]["pdf_url"].startswith(stack.urls["conversation"])
    pdf = await http.get(own["orders"][0]["invoice"]["pdf_url"])
    assert pdf.content.startswith(b"%PDF-")
    assert own["contacts"][0]["name"] == name
    assert own["campaign_recipients"], own
    (thread,) = exported["services"]["inbox"]["threads"]
    assert any(m.get("text") == "Hi" or "Hi" in str(m) for m in thread["messages"])
    assert exported["services"]["state-manager"]["messages"]
    relay_events = exported["services"]["relay"]["events"]
    assert {e["type"] for e in relay_events} >= {"message.received", "message.status"}
    assert all(e["deliveries"] for e in relay_events), relay_events
    assert any(c in str(e["body"]) for e in relay_events)
    needles = [c, bsuid, name]
    before = await stored_anywhere(stack.env["DATABASE_URL"], needles)
    # the inbox and the conversation service store the customer sealed (digests and
    # tokens) from the start (issue 28): nothing in clear there
    assert not [h for h in before if h.startswith(("inbox.", "conversation."))], before

    # the relay is down when the tenant asks
    code, _ = await asyncio.to_thread(stack.terminate, "relay", 30)
    assert code == 0
    r = await http.post(
        f"{shop.api}/erasures",
        json={"customer_id": f"+{c}", "requested_by": "ticket-1"},
        headers=shop.admin,
    )
    assert r.status_code == 202, r.text
    request_id = r.json()["request_id"]
    url = f"{shop.api}/erasures/{request_id}"

    async def report() -> dict[str, Any]:
        got = await http.get(url, headers=shop.admin)
        assert got.status_code == 200, got.text
        return dict(got.json())

    async def all_but_the_relay() -> dict[str, Any] | None:
        got = await report()
        done = {s["service"] for s in got["services"] if s["status"] == "done"}
        return got if done == {"conversation", "inbox", "sender", "state-manager"} else None

    partial = await eventually(all_but_the_relay, timeout_s=30, interval_s=0.2)
    assert partial["status"] == "pending"
    await asyncio.to_thread(stack.restart, "relay")

    async def completed() -> dict[str, Any] | None:
        got = await report()
        return got if got["status"] == "completed" else None

    final = await eventually(completed, timeout_s=30, interval_s=0.2)
    actions = {s["service"]: s["actions"] for s in final["services"]}
    assert actions["inbox"]["messages_deleted"] > 0, actions
    assert actions["relay"]["events_deleted"] >= 3, actions
    assert actions["conversation"]["orders_pseudonymised"] == 1, actions
    assert actions["conversation"]["contacts_deleted"] == 1, actions
    assert actions["conversation"]["suppression_entries"] >= 2, actions
    assert actions["state-manager"]["messages_pseudonymised"] > 0, actions
    # asked again: the same request, answered as it stands
    again = await http.post(f"{shop.api}/erasures", json={"customer_id": c}, headers=shop.admin)
    assert again.status_code == 200, again.text
    assert again.json()["request_id"] == request_id

    # nothing names the customer any more, in any service's tables or in Redis
    assert await stored_anywhere(stack.env["DATABASE_URL"], needles) == []
    left = await in_redis(stack.env["REDIS_URL"], needles)
    assert left == [], "\n".join(left)
    order = await shop.order(order_id)
    assert order["customer_wa_id"].startswith("erased:"), order
    after = await export(shop, c)
    assert after["services"]["conversation"]["contacts"] == []
    assert after["services"]["conversation"]["orders"] == []  # kept, under a pseudonym
    assert after["services"]["inbox"]["threads"] == []
    assert after["services"]["state-manager"]["messages"] == []
    assert after["services"]["relay"]["events"] == []
    conn = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        kept = await conn.fetch(
            "SELECT reason FROM conversation.suppressions WHERE tenant_id = $1",
            shop.seeded.tenant_id,
        )
    finally:
        await conn.close()
    assert kept
    assert {r["reason"] for r in kept} == {"opted_out"}

    # the tenant imports the number again by mistake: campaigns still leave it alone
    before_count = await outbound_count(shop, c)
    r = await http.post(
        f"{shop.api}/contacts",
        json={"phone": f"+{c}", "name": "Imported again", "marketing_opt_in": True},
        headers=shop.admin,
    )
    assert r.status_code == 200, r.text
    later = await run_campaign(shop, "Summer")
    assert later["excluded"] == {"suppressed": 1}, later
    await asyncio.sleep(1.0)
    assert await outbound_count(shop, c) == before_count


async def export(shop: Shop, customer: str) -> dict[str, Any]:
    r = await shop.http.get(f"{shop.api}/customers/{customer}/export", headers=shop.admin)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _got_template(shop: Shop, customer: str) -> bool:
    return any(m["type"] == "template" for m in await shop.outbound(customer))


def test_a_customer_is_forgotten_by_every_service_even_one_down_at_the_time(
    platform_stack: ProcessStack,
) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=20) as http:
            shop = await open_shop(platform_stack, load_script, http)
            await forget_a_customer(platform_stack, shop)

    asyncio.run(scenario())
