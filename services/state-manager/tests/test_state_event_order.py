"""A message's history in the order FlowChat learned it (migration ``0004``:
``message_events.sequence``), Meta's whole-second timestamps kept beside it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from flowchat_platform.db import migrate
from flowchat_state_manager import SCHEMA
from flowchat_state_manager.app import MIGRATIONS
from flowchat_state_manager.query_service import QueryService
from flowchat_state_manager.repository import Repository
from flowchat_state_manager.service import StateService

T = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


async def test_migration_0004_numbers_existing_rows_in_the_order_they_were_recorded(
    database_url: str,
) -> None:
    await migrate(database_url, MIGRATIONS, schema=SCHEMA, revision="0003")
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})
    try:
        await conn.execute(
            "INSERT INTO messages (id, tenant_id, account_id, provider, status, status_rank) "
            "VALUES ('msg_old', 'tnt_a', 'acc_1', 'meta', 'read', 4)"
        )
        # recorded accepted, then read; Meta's timestamps say the opposite
        for status, meta_at, recorded_at in (("accepted", 9, 1), ("read", 3, 2)):
            await conn.execute(
                "INSERT INTO message_events (message_id, tenant_id, status, provider_timestamp, "
                "received_at, event_id) VALUES ('msg_old', 'tnt_a', $1, $2, $3, $1)",
                status,
                T + timedelta(seconds=meta_at),
                T + timedelta(seconds=recorded_at),
            )
        await migrate(database_url, MIGRATIONS, schema=SCHEMA)
        rows = await conn.fetch("SELECT status FROM message_events ORDER BY sequence")
        assert [r["status"] for r in rows] == ["accepted", "read"]
    finally:
        await conn.close()


async def test_a_held_status_keeps_its_place_and_time(state_pool: asyncpg.Pool, build: Any) -> None:
    """A status that beat its send result is listed where FlowChat learned it: first."""
    service = StateService(Repository(state_pool))
    mid, wamid = build.new_ids()
    await service.record_status(build.status_update(wamid, "delivered"))  # held
    held_at = await state_pool.fetchval(
        "SELECT received_at FROM pending_statuses WHERE provider_message_id = $1", wamid
    )
    await service.record_send_result(build.send_result(mid, wamid))
    history, next_cursor = await QueryService(Repository(state_pool)).history(
        "tnt_a", mid, cursor=None, limit=10
    )
    assert next((e.status.value, e.received_at) for e in history) == ("delivered", held_at)
    assert [e.status.value for e in history] == ["delivered", "accepted"]
    assert next_cursor is None
