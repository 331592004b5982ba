"""Recipients in the one phone form (WhatsApp id: E.164 digits, no '+'): stored, migrated
(0002 strips the '+' older records carry) and looked up in any form."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from flowchat_platform.db import migrate
from flowchat_state_manager import SCHEMA
from flowchat_state_manager.app import MIGRATIONS
from flowchat_state_manager.models import MessageFilter
from flowchat_state_manager.query_service import QueryService
from flowchat_state_manager.recipients import recipient_for_lookup, stored_recipient
from flowchat_state_manager.repository import Repository
from flowchat_state_manager.service import StateService


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("+14155550100", "14155550100"),
        ("14155550100", "14155550100"),
        ("15551230001", "15551230001"),
    ],
)
def test_stored_recipient_drops_the_plus(raw: str, stored: str) -> None:
    assert stored_recipient(raw) == stored


@pytest.mark.parametrize(
    ("raw", "wanted"),
    [
        ("+14155550100", "14155550100"),
        ("14155550100", "14155550100"),
        ("+1 415-555-0100", "14155550100"),
        ("whatsapp:+14155550100", "14155550100"),
        ("+15551230001", "15551230001"),  # not a valid number (555): still the digits
        ("US.13491208655302741918", "US.13491208655302741918"),  # not a phone number
    ],
)
def test_a_lookup_searches_for_the_wa_id(raw: str, wanted: str) -> None:
    assert recipient_for_lookup(raw) == wanted


async def test_migration_0002_strips_the_plus_of_stored_recipients(database_url: str) -> None:
    await migrate(database_url, MIGRATIONS, schema=SCHEMA, revision="0001")
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})
    try:
        for message_id, recipient in (
            ("msg_old", "+14155550100"),
            ("msg_new", "14155550101"),
            ("msg_none", None),
        ):
            await conn.execute(
                "INSERT INTO messages (id, tenant_id, account_id, recipient, provider, status, "
                "status_rank) VALUES ($1, 'tnt_a', 'acc_1', $2, 'meta', 'sent', 2)",
                message_id,
                recipient,
            )
        await migrate(database_url, MIGRATIONS, schema=SCHEMA, revision="0002")
        rows = await conn.fetch("SELECT id, recipient FROM messages")
        assert {r["id"]: r["recipient"] for r in rows} == {
            "msg_old": "14155550100",
            "msg_new": "14155550101",
            "msg_none": None,
        }
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == "0002"
    finally:
        await conn.close()


async def test_a_plus_form_send_result_is_stored_and_found_as_digits(
    state_pool: asyncpg.Pool, build: Any
) -> None:
    service = StateService(Repository(state_pool))
    mid, wamid = build.new_ids()
    await service.record_send_result(build.send_result(mid, wamid, to="+14155550100"))

    stored = await state_pool.fetchval("SELECT recipient FROM messages WHERE id = $1", mid)
    assert stored == "14155550100"
    query = QueryService(Repository(state_pool))
    for typed in ("+14155550100", "14155550100", "+1 415-555-0100"):
        page = await query.list_messages(
            "tnt_a", MessageFilter(recipient=typed), cursor=None, limit=10
        )
        assert [m.id for m in page.items] == [mid], typed
