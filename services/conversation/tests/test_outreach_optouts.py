"""The opt-out set the sender's guard reads (``optout_key``), against real Redis and
PostgreSQL: every opt-out / opt-in path keeps it in step with the contacts table, and a
rebuild at start repairs it (idempotent, paged). STOP / START to the bot are in
test_conversation_integration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from flowchat_contracts import CustomerIdentity, optout_key
from flowchat_conversation.outreach.campaign_service import CampaignService
from flowchat_conversation.outreach.contact_service import ContactsService
from flowchat_conversation.outreach.contacts import ContactIn, Segment
from flowchat_conversation.outreach.events import OutreachEvents
from flowchat_conversation.outreach.redis_optouts import RedisOptOuts
from flowchat_conversation.outreach.repository import OutreachRepository, resolve_customer
from flowchat_conversation.sealing import identities
from flowchat_platform.db import create_pool, migrate

pytestmark = pytest.mark.integration

#: Customers' ids encrypted at rest under keys derived from a test token.
IDS = identities(None, None, SecretStr("conversation-test-token-0123456789"))

MIGRATIONS = Path(__file__).resolve().parents[1] / "src" / "flowchat_conversation" / "migrations"
A, B, C, D, E, F = (f"23480{n:08d}" for n in range(1, 7))


@pytest.fixture
async def pool(database_url):
    await migrate(database_url, MIGRATIONS, schema="conversation")
    p = await create_pool(database_url, schema="conversation", max_size=4)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def redis(redis_url):
    client = aioredis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def members(redis: aioredis.Redis, tenant_id: str) -> set[str]:
    return {
        m.decode() if isinstance(m, bytes) else m
        for m in await redis.smembers(optout_key(tenant_id))
    }


def contact(wa_id: str, **kw: Any) -> ContactIn:
    return ContactIn(phone="+" + wa_id, **kw)


def events(contacts: ContactsService, repo: OutreachRepository) -> OutreachEvents:
    # campaigns: only on_status runs here, for messages of no campaign (no lookups)
    campaigns = CampaignService(repo, accounts=None, templates=None, zones=None)  # type: ignore[arg-type]
    return OutreachEvents(campaigns, contacts)


async def test_every_opt_out_and_opt_in_path_keeps_the_set_in_step(pool, redis):
    repo = OutreachRepository(pool, IDS)
    contacts = ContactsService(repo, optouts=RedisOptOuts(redis))
    # API upsert: a contact created opted out joins the set
    await contacts.upsert("t1", [contact(A), contact(B), contact(C, marketing_opt_in=False)])
    assert await members(redis, "t1") == {C}
    # API preference: out, then back in
    now = datetime.now(UTC)
    await contacts.set_preference("t1", A, False, source="api", at=now)
    assert await members(redis, "t1") == {A, C}
    await contacts.set_preference("t1", A, True, source="api", at=now + timedelta(seconds=1))
    assert await members(redis, "t1") == {C}
    # the customer's own opt-out (webhook) is kept through an import that says "yes";
    # an import's own "no" opts out, its "yes" opts back in a contact the tenant opted out
    handler = events(contacts, repo)
    await handler.handle(
        {
            "kind": "business_event",
            "event_id": "ev1",
            "tenant_id": "t1",
            "account_id": "a1",
            "field": "user_marketing_preferences",
            "occurred_at": now.isoformat(),
            "data": {"user_preferences": [{"wa_id": B, "value": "stop"}]},
        },
        None,
    )
    assert await members(redis, "t1") == {B, C}
    report = await contacts.import_csv(
        "t1",
        f"phone,marketing_opt_in\n+{B},yes\n+{C},yes\n+{D},no\n",
    )
    assert (report.created, report.updated, report.opt_out_kept) == (1, 2, 1)
    assert await members(redis, "t1") == {B, D}
    # an older webhook does not override a newer preference, in PostgreSQL or in Redis
    applied = await contacts.set_preference(
        "t1", D, True, source="webhook", at=now - timedelta(days=1)
    )
    assert applied is False
    assert await members(redis, "t1") == {B, D}
    # error 131050 on a send: the customer stopped marketing (a contact is created)
    await handler.handle(
        {
            "kind": "message_status_changed",
            "event_id": "ev2",
            "message_id": "m1",
            "tenant_id": "t1",
            "account_id": "a1",
            "status": "failed",
            "recipient": "+" + E,
            "error_code": 131050,
            "timestamp": now.isoformat(),
        },
        None,
    )
    # a redelivered event writes the same state again
    for _ in range(2):
        await handler.handle(
            {
                "kind": "business_event",
                "event_id": "ev3",
                "tenant_id": "t1",
                "account_id": "a1",
                "field": "user_marketing_preferences",
                "occurred_at": (now + timedelta(seconds=2)).isoformat(),
                "data": {"user_preferences": [{"wa_id": B, "value": "resume"}]},
            },
            None,
        )
    assert await members(redis, "t1") == {D, E}
    states = await repo.marketing_states("t1", [A, B, C, D, E])
    assert {wa for wa, opt_in in states.items() if not opt_in} == {D, E}
    assert await members(redis, "t2") == set()  # per tenant


async def test_rebuild_repairs_the_sets_from_postgresql_paged_and_idempotent(pool, redis):
    repo = OutreachRepository(pool, IDS)
    contacts = ContactsService(repo)  # no mirror: the sets drift, as after a lost write
    await contacts.upsert(
        "t1",
        [contact(A), contact(B, marketing_opt_in=False), contact(C, marketing_opt_in=False)],
    )
    await contacts.upsert(
        "t2", [contact(A, marketing_opt_in=False), contact(D), contact(E, marketing_opt_in=False)]
    )
    await contacts.upsert("t3", [contact(F)])
    await redis.sadd(optout_key("t1"), A, C, "15550000000")  # A opted in; no such contact
    await redis.sadd(optout_key("t3"), F)  # F may receive marketing
    mirror = RedisOptOuts(redis)
    report = await mirror.rebuild(repo, page=2)
    assert await members(redis, "t1") == {B, C}
    assert await members(redis, "t2") == {A, E}
    assert await members(redis, "t3") == set()
    assert (report.tenants, report.added, report.removed) == (3, 3, 3)
    again = await mirror.rebuild(repo, page=2)
    assert (again.added, again.removed) == (0, 0)
    assert await members(redis, "t1") == {B, C}
    assert await members(redis, "t2") == {A, E}


# --------------------------------------------------------------------- identities (BSUIDs)

BSUID, BSUID_ONLY = "US.13491208655302741918", "US.77770000000000000001"


def preferences(event_id: str, at: datetime, *items: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "business_event",
        "event_id": event_id,
        "tenant_id": "t1",
        "account_id": "a1",
        "field": "user_marketing_preferences",
        "occurred_at": at.isoformat(),
        "data": {},
        "marketing_preferences": [{**item, "timestamp": at.isoformat()} for item in items],
    }


async def test_opt_outs_hold_for_every_id_of_the_person(pool, redis):
    repo = OutreachRepository(pool, IDS)
    contacts = ContactsService(repo, optouts=RedisOptOuts(redis))
    handler = events(contacts, repo)
    await contacts.upsert("t1", [contact(A)])  # known by phone only
    now = datetime.now(UTC)
    # user_preferences names the person by phone and BSUID: both ids join the set
    await handler.handle(
        preferences("p1", now, {"customer": {"wa_id": A, "user_id": BSUID}, "value": "stop"})
    )
    assert await members(redis, "t1") == {A, BSUID}
    states = await repo.marketing_states("t1", [BSUID])
    assert states == {A: False, BSUID: False}
    # resume by the BSUID alone: the whole person leaves the set
    later = now + timedelta(seconds=1)
    await handler.handle(
        preferences("p2", later, {"customer": {"user_id": BSUID}, "value": "resume"})
    )
    assert await members(redis, "t1") == set()
    # 131050 on a send to the BSUID: the person stops again, both ids
    await handler.handle(
        {
            "kind": "message_status_changed",
            "event_id": "s1",
            "message_id": "m1",
            "tenant_id": "t1",
            "account_id": "a1",
            "status": "failed",
            "recipient": BSUID,
            "error_code": 131050,
            "timestamp": (now + timedelta(seconds=2)).isoformat(),
        },
        None,
    )
    assert await members(redis, "t1") == {A, BSUID}
    # a customer known only by a BSUID: the contact is created under it
    await handler.handle(
        preferences("p3", now, {"customer": {"user_id": BSUID_ONLY}, "value": "stop"})
    )
    assert await members(redis, "t1") == {A, BSUID, BSUID_ONLY}
    rows = await pool.fetch("SELECT customer_wa_id FROM contacts WHERE tenant_id = 't1'")
    # one per person, stored under the keyed digest of its key
    stored = sorted(IDS.key("t1", i) for i in (A, BSUID_ONLY))
    assert sorted(r["customer_wa_id"] for r in rows) == stored
    # the rebuild at start puts back every id, and keeps them
    await redis.delete(optout_key("t1"))
    await redis.sadd(optout_key("t1"), B)  # a stray member
    report = await RedisOptOuts(redis).rebuild(repo, page=1)
    assert await members(redis, "t1") == {A, BSUID, BSUID_ONLY}
    assert (report.added, report.removed) == (3, 1)


async def test_migration_keeps_phone_keyed_rows_and_links_a_bsuid_to_them(database_url, redis):
    # the schema and rows as they were before customer aliases (revision 0002 + 0003)
    await migrate(database_url, MIGRATIONS, schema="conversation", revision="0002_commerce")
    await migrate(database_url, MIGRATIONS, schema="conversation", revision="0003_outreach")
    p = await create_pool(database_url, schema="conversation", max_size=2)
    try:
        await p.execute(
            "INSERT INTO contacts (tenant_id, customer_wa_id, name, tags, marketing_opt_in) "
            "VALUES ('t1', $1, 'Ada', '{vip}', false), ('t1', $2, 'Bo', '{}', true)",
            A,
            B,
        )
        await p.execute(
            "INSERT INTO orders (order_id, tenant_id, account_id, customer_wa_id, status, "
            "currency, subtotal, tax, total, payment_reference, source_message_id) "
            "VALUES ('o1', 't1', 'a1', $1, 'confirmed', 'USD', 1, 0, 1, 'ref1', 'wamid.1')",
            C,  # a customer with an order and no contact row
        )
    finally:
        await p.close()
    await migrate(database_url, MIGRATIONS, schema="conversation")  # upgrade to heads
    p = await create_pool(database_url, schema="conversation", max_size=2)
    try:
        aliases = await p.fetch("SELECT alias, customer_key, kind FROM customer_aliases")
        assert sorted(tuple(r) for r in aliases) == [(x, x, "phone") for x in sorted([A, B, C])]
        repo = OutreachRepository(p, IDS)
        (ada,) = await repo.search_contacts("t1", Segment(q="Ada"), limit=10, after_id=0)
        assert (ada.phone, ada.wa_id, ada.tags, ada.marketing_opt_in) == (
            "+" + A,
            A,
            ["vip"],
            False,
        )
        # the old customer writes with phone and BSUID: the same customer, the BSUID linked
        async with p.acquire() as conn, conn.transaction():
            customer = await resolve_customer(
                conn, IDS, "t1", CustomerIdentity(wa_id=A, user_id=BSUID)
            )
        # sealed on the spot (stored in clear before): its key is now the digest
        assert (customer.key, set(customer.ids)) == (IDS.key("t1", A), {A, BSUID})
        async with p.acquire() as conn, conn.transaction():
            again = await resolve_customer(conn, IDS, "t1", CustomerIdentity(user_id=BSUID))
        assert again.key == IDS.key("t1", A)  # by the BSUID alone too
        # the opt-out stored by phone now covers the BSUID (rebuild at start)
        await RedisOptOuts(redis).rebuild(repo)
        assert await members(redis, "t1") == {A, BSUID}
        count = await p.fetchval("SELECT count(*) FROM contacts WHERE tenant_id = 't1'")
        assert count == 2
    finally:
        await p.close()
