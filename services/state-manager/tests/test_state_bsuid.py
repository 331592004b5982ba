"""Recipients that are BSUIDs, and messages found by either id of their customer (issue 21).

A message's recipient is the id the send used, stored as given: a phone number (its
WhatsApp id) or a BSUID. When a status names the customer by both ids
(``StatusUpdate.customer``), the other id is recorded with the message (migration
``0003``: ``messages.recipient_alias``; held statuses keep it too), so a lookup by
recipient finds the message by the phone number or the BSUID, whichever is typed.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from flowchat_contracts import CustomerIdentity
from flowchat_platform.db import migrate
from flowchat_state_manager import SCHEMA
from flowchat_state_manager.app import MIGRATIONS
from flowchat_state_manager.models import MessageFilter
from flowchat_state_manager.query_service import QueryService
from flowchat_state_manager.repository import Repository
from flowchat_state_manager.service import StateService

BSUID = "US.13491208655302741918"
PHONE = "15551230001"


async def found(pool: asyncpg.Pool, recipient: str) -> list[str]:
    page = await QueryService(Repository(pool)).list_messages(
        "tnt_a", MessageFilter(recipient=recipient), cursor=None, limit=10
    )
    return [m.id for m in page.items]


def with_customer(update: Any, **ids: str) -> Any:
    return update.model_copy(update={"customer": CustomerIdentity(**ids)})


async def test_a_message_to_a_bsuid_is_stored_as_given_and_found_by_it(
    state_pool: asyncpg.Pool, build: Any
) -> None:
    service = StateService(Repository(state_pool))
    mid, wamid = build.new_ids()
    await service.record_send_result(build.send_result(mid, wamid, to=BSUID))
    assert await state_pool.fetchval("SELECT recipient FROM messages WHERE id = $1", mid) == BSUID
    assert await found(state_pool, BSUID) == [mid]
    assert await found(state_pool, f" {BSUID} ") == [mid]


async def test_a_status_naming_both_ids_makes_the_message_findable_by_either(
    state_pool: asyncpg.Pool, build: Any
) -> None:
    service = StateService(Repository(state_pool))
    to_phone, wamid_1 = build.new_ids()
    to_bsuid, wamid_2 = build.new_ids()
    await service.record_send_result(build.send_result(to_phone, wamid_1, to=PHONE))
    await service.record_send_result(build.send_result(to_bsuid, wamid_2, to="US.777000111"))
    assert await found(state_pool, BSUID) == []
    await service.apply_batch(
        [
            with_customer(build.status_update(wamid_1, "sent"), user_id=BSUID, wa_id=PHONE),
            with_customer(
                build.status_update(wamid_2, "delivered"),
                user_id="US.777000111",
                wa_id="14155550111",
            ),
        ]
    )
    assert await found(state_pool, BSUID) == [to_phone]
    assert await found(state_pool, "+" + PHONE) == [to_phone]
    assert await found(state_pool, "+1 415-555-0111") == [to_bsuid]
    assert await found(state_pool, "US.777000111") == [to_bsuid]
    rows = await state_pool.fetch(
        "SELECT id, recipient, recipient_alias FROM messages WHERE id = ANY($1)",
        [to_phone, to_bsuid],
    )
    assert {r["id"]: (r["recipient"], r["recipient_alias"]) for r in rows} == {
        to_phone: (PHONE, BSUID),
        to_bsuid: ("US.777000111", "14155550111"),
    }


async def test_a_status_held_before_its_send_result_keeps_the_other_id(
    state_pool: asyncpg.Pool, build: Any
) -> None:
    service = StateService(Repository(state_pool))
    mid, wamid = build.new_ids()
    early = with_customer(build.status_update(wamid, "delivered"), user_id=BSUID, wa_id=PHONE)
    await service.record_status(early)  # held: the WAMID is not mapped yet
    await service.record_send_result(build.send_result(mid, wamid, to=PHONE))
    assert await found(state_pool, BSUID) == [mid]


async def test_migration_0003_adds_the_alias_and_keeps_the_rows(database_url: str) -> None:
    await migrate(database_url, MIGRATIONS, schema=SCHEMA, revision="0002")
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})
    try:
        await conn.execute(
            "INSERT INTO messages (id, tenant_id, account_id, recipient, provider, status, "
            "status_rank) VALUES ('msg_old', 'tnt_a', 'acc_1', '14155550100', 'meta', 'sent', 2)"
        )
        await migrate(database_url, MIGRATIONS, schema=SCHEMA)
        row = await conn.fetchrow("SELECT recipient, recipient_alias FROM messages")
        assert row is not None
        assert (row["recipient"], row["recipient_alias"]) == ("14155550100", None)
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == "0008"
        held = await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = 'pending_statuses'",
            SCHEMA,
        )
        assert {"customer_wa_id", "customer_user_id"} <= {r["column_name"] for r in held}
    finally:
        await conn.close()
