"""Customers stored in clear before migration 0008 are sealed by the background pass,
and a key rotation re-encrypts every token (real PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest
from cryptography.fernet import Fernet
from prometheus_client import REGISTRY
from pydantic import SecretStr

from flowchat_contracts import CustomerIdentity
from flowchat_conversation.outreach.contact_service import ContactsService
from flowchat_conversation.outreach.contacts import ContactIn, Segment
from flowchat_conversation.outreach.repository import OutreachRepository, resolve_customer
from flowchat_conversation.privacy.repository import PrivacyRepository
from flowchat_conversation.sealing import (
    CLEAR_HANDLED_SQL,
    CLEAR_KEYS_SQL,
    Identities,
    identities,
    rotate_tokens,
    seal_loop,
)
from flowchat_platform.crypto import InvalidToken
from flowchat_platform.db import create_pool, migrate
from flowchat_platform.sealing import SealingState
from flowchat_platform.testing import row_versions

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).resolve().parents[1] / "src" / "flowchat_conversation" / "migrations"
TOKEN = SecretStr("conversation-sealing-test-token-0123")
PHONE, BSUID, NAME = "2348100000555", "US.10000000000000000555", "Ngozi Clearwater"
OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def keyed(keys: str) -> Identities:
    return identities(SecretStr(keys), None, TOKEN)


@pytest.fixture
async def pool(database_url):
    await migrate(database_url, MIGRATIONS, schema="conversation")
    p = await create_pool(database_url, schema="conversation", max_size=4)
    try:
        yield p
    finally:
        await p.close()


async def store_in_clear(pool: asyncpg.Pool) -> None:
    """A customer (phone and BSUID) as the service stored them before encryption."""
    async with pool.acquire() as conn, conn.transaction():
        # the trigger links the contact's key to itself, as before
        await conn.execute(
            "INSERT INTO contacts (tenant_id, customer_wa_id, name) VALUES ('t1', $1, $2)",
            PHONE,
            NAME,
        )
        await conn.execute(
            "INSERT INTO customer_aliases (tenant_id, alias, customer_key, kind) "
            "VALUES ('t1', $1, $2, 'bsuid')",
            BSUID,
            PHONE,
        )
        await conn.execute(
            "INSERT INTO orders (order_id, tenant_id, account_id, customer_wa_id, status, "
            "currency, subtotal, tax, total, payment_reference, source_message_id, "
            "delivery_address) VALUES ('o1', 't1', 'a1', $1, 'confirmed', 'USD', 1, 0, 1, "
            "'ref1', 'wamid.1', $2::jsonb)",
            PHONE,
            json.dumps({"name": NAME, "phone": "+" + PHONE, "city": "Lagos"}),
        )
        await conn.execute(
            "INSERT INTO handoffs (tenant_id, account_id, customer_wa_id) VALUES ('t1', 'a1', $1)",
            PHONE,
        )
        await conn.execute(
            "INSERT INTO reminders (reminder_id, tenant_id, account_id, wa_id, kind, due_at, "
            "message_id) VALUES ('r1', 't1', 'a1', $1, 'custom', now(), 'm1')",
            PHONE,
        )
        await conn.execute(
            "INSERT INTO campaigns (campaign_id, tenant_id, account_id, name, status, category, "
            "template, parameters, segment, timezone, rate_mps, cap_messages, cap_window_s) "
            "VALUES ('c1', 't1', 'a1', 'sale', 'completed', 'marketing', '{}', '{}', '{}', "
            "'UTC', 1, 1, 3600)"
        )
        await conn.execute(
            "INSERT INTO campaign_recipients (campaign_id, contact_id, tenant_id, wa_id, state, "
            "message_id, components) SELECT 'c1', contact_id, 't1', $1, 'sent', 'cm1', $2::jsonb "
            "FROM contacts WHERE customer_wa_id = $1",
            PHONE,
            json.dumps([{"type": "body", "parameters": [{"type": "text", "text": NAME}]}]),
        )
        await conn.execute(
            "INSERT INTO handled_messages (tenant_id, provider_message_id, conversation) "
            "VALUES ('t1', 'wamid.1', $1)",
            f"t1:a1:{PHONE}",
        )


async def in_clear(pool: asyncpg.Pool, needles: list[str]) -> list[str]:
    found = []
    for t in await pool.fetch(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'conversation' AND table_type = 'BASE TABLE'"
    ):
        for needle in needles:
            sql = f'SELECT count(*) FROM conversation."{t["table_name"]}" r WHERE r::text ILIKE $1'
            if await pool.fetchval(sql, f"%{needle}%"):
                found.append(f"{t['table_name']}: {needle}")
    return found


async def test_the_pass_seals_every_row_stored_in_clear_and_rotation_re_encrypts(pool):
    await store_in_clear(pool)
    needles = [PHONE, BSUID, NAME, "Clearwater"]
    assert len(await in_clear(pool, needles)) >= 7  # the state before the upgrade
    old = keyed(OLD)
    await seal_loop(pool, old, batch=1, pause_s=0)
    assert old.legacy is False
    assert await in_clear(pool, needles) == []
    key = old.key("t1", PHONE)
    for table, column in (
        ("contacts", "customer_wa_id"),
        ("orders", "customer_wa_id"),
        ("handoffs", "customer_wa_id"),
        ("reminders", "wa_id"),
        ("campaign_recipients", "wa_id"),
    ):
        assert await pool.fetchval(f"SELECT {column} FROM {table}") == key, table
    assert await pool.fetchval("SELECT conversation FROM handled_messages") == f"t1:a1:{key}"
    # read back in clear, found by either id
    repo = OutreachRepository(pool, old)
    for q in (PHONE, "+" + PHONE, BSUID):
        (contact,) = await repo.search_contacts("t1", Segment(q=q), limit=5)
        assert (contact.wa_id, contact.phone, contact.user_id, contact.name) == (
            PHONE,
            "+" + PHONE,
            BSUID,
            NAME,
        )
    async with pool.acquire() as conn, conn.transaction():
        customer = await resolve_customer(conn, old, "t1", CustomerIdentity(user_id=BSUID))
    assert (customer.key, set(customer.ids)) == (key, {PHONE, BSUID})
    # a second pass finds nothing left
    await seal_loop(pool, keyed(OLD), batch=1, pause_s=0)
    assert await pool.fetchval("SELECT count(*) FROM customer_aliases") == 2

    # rotation: the new key first, the old one still listed; then the old one dropped
    await seal_loop(pool, keyed(f"{NEW},{OLD}"), batch=1, pause_s=0)
    new_only = keyed(NEW)
    (contact,) = await OutreachRepository(pool, new_only).search_contacts(
        "t1", Segment(q=BSUID), limit=5
    )
    assert contact.name == NAME
    tokens = await pool.fetch(
        "SELECT alias_enc AS t FROM customer_aliases UNION ALL SELECT name_enc FROM contacts "
        "UNION ALL SELECT delivery_address_enc FROM orders "
        "UNION ALL SELECT components_enc FROM campaign_recipients"
    )
    assert len(tokens) == 5
    for row in tokens:
        assert new_only.open(row["t"]) is not None
        with pytest.raises(InvalidToken):
            old.open(row["t"])


async def test_export_opens_and_erasure_finds_a_sealed_customer_by_any_id(pool):
    ids = keyed(OLD)
    await ContactsService(OutreachRepository(pool, ids)).upsert(
        "t1", [ContactIn(phone="+" + PHONE, user_id=BSUID, name=NAME)]
    )
    privacy = PrivacyRepository(pool, ids)
    assert await privacy.linked_ids("t1", BSUID) == sorted([PHONE, BSUID])
    data = await privacy.customer_data("t1", [PHONE, BSUID])
    assert [c["name"] for c in data["contacts"]] == [NAME]  # decrypted in the export
    assert sorted(a["alias"] for a in data["customer_aliases"]) == sorted([PHONE, BSUID])
    assert "name_enc" not in data["contacts"][0]
    digests = {i: ids.key("t1", i) for i in (PHONE, BSUID)}
    erased = await privacy.erase("t1", "era_1", [PHONE, BSUID], digests, "erased:x")
    assert erased.actions["contacts_deleted"] == 1
    assert erased.actions["aliases_deleted"] == 2
    assert await pool.fetchval("SELECT count(*) FROM contacts") == 0
    assert await pool.fetchval("SELECT count(*) FROM customer_aliases") == 0
    assert await privacy.linked_ids("t1", PHONE) == []


async def test_a_customer_that_cannot_be_sealed_does_not_stop_the_pass(pool):
    ids = keyed(OLD)
    other = "2348100000666"
    # the same person twice: in clear (before) and under its digest (a duplicate)
    await pool.execute(
        "INSERT INTO contacts (tenant_id, customer_wa_id, name) "
        "VALUES ('t1', $1, 'A'), ('t1', $2, NULL), ('t1', $3, 'B')",
        PHONE,
        ids.key("t1", PHONE),
        other,
    )
    await seal_loop(pool, ids, batch=1, pause_s=0)
    keys = {r["customer_wa_id"] for r in await pool.fetch("SELECT customer_wa_id FROM contacts")}
    assert keys == {PHONE, ids.key("t1", PHONE), ids.key("t1", other)}  # the other one sealed
    assert ids.legacy is True  # resolving still looks for ids in clear


def rotated_total() -> float:
    sample = REGISTRY.get_sample_value("flowchat_conversation_sealed_total", {"action": "rotated"})
    return sample or 0.0


async def test_the_pass_finds_rows_in_clear_through_the_partial_indexes(pool):
    plans = []
    async with pool.acquire() as conn, conn.transaction():
        # a predicate an index does not imply leaves a seq scan, however costly
        await conn.execute("SET LOCAL enable_seqscan = off")
        for sql, args in ((CLEAR_KEYS_SQL, (10, "", "")), (CLEAR_HANDLED_SQL, (10,))):
            rows = await conn.fetch(f"EXPLAIN {sql}", *args)
            plans.append("\n".join(r[0] for r in rows))
    assert all("Seq Scan" not in plan for plan in plans), plans
    assert [plan.count("_unsealed") for plan in plans] == [6, 1]


async def test_a_start_with_nothing_to_do_writes_nothing_and_a_rotation_runs_once(pool):
    await store_in_clear(pool)
    await seal_loop(pool, keyed(OLD), batch=2, pause_s=0)
    async with pool.acquire() as conn:
        before = await row_versions(conn, "conversation")
        # a second start: no row updated, deleted or locked
        await seal_loop(pool, keyed(OLD), batch=2, pause_s=0)
        assert await row_versions(conn, "conversation") == before
        # an old key listed behind a new one: every token re-encrypted, once
        rotating = keyed(f"{NEW},{OLD}")
        counted = rotated_total()
        await seal_loop(pool, rotating, batch=2, pause_s=0)
        assert rotated_total() - counted == 5
        state = await conn.fetch("SELECT name, key_id, cursor FROM sealing_state ORDER BY 1")
        assert [tuple(r) for r in state] == [
            (t, rotating.sealer.box.key_id, None)
            for t in ("campaign_recipients", "contacts", "customer_aliases", "orders")
        ]
        before = await row_versions(conn, "conversation")
        await seal_loop(pool, keyed(f"{NEW},{OLD}"), batch=2, pause_s=0)  # the next start
        assert rotated_total() - counted == 5
        assert await row_versions(conn, "conversation") == before
        tokens = await conn.fetch(
            "SELECT alias_enc AS t FROM customer_aliases UNION ALL SELECT name_enc FROM contacts"
        )
        for row in tokens:
            assert keyed(NEW).open(row["t"]) is not None


async def test_a_rotation_cut_short_resumes_where_it_stopped(pool):
    await store_in_clear(pool)
    await seal_loop(pool, keyed(OLD), batch=2, pause_s=0)
    rotating = keyed(f"{NEW},{OLD}")
    key_id = rotating.sealer.box.key_id

    async def one_batch(after, limit):
        async with pool.acquire() as conn, conn.transaction():
            return await rotate_tokens(conn, rotating, "customer_aliases", after, limit)

    # one batch of one alias, then the replica stops
    step = SealingState(pool).step("customer_aliases", one_batch, key_id=key_id, start=None)
    assert (await step("", 1))[0] == 1
    (state,) = await pool.fetch("SELECT key_id, cursor FROM sealing_state")
    assert state["key_id"] == key_id
    assert json.loads(state["cursor"])[0] == "t1"  # (tenant, alias) of the alias done
    counted = rotated_total()
    await seal_loop(pool, rotating, batch=1, pause_s=0)
    assert rotated_total() - counted == 4  # the other alias, the contact, order and send
    for row in await pool.fetch("SELECT alias_enc FROM customer_aliases"):
        assert keyed(NEW).open(row["alias_enc"]) is not None
