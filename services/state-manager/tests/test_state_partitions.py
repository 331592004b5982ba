"""``messages`` and ``message_events`` partitioned by week (migration ``0005``): the
conversion keeps every row, retention drops whole weeks, and the guarantees the
dropped unique constraints gave (one record per id, a WAMID claimed by one message,
an event recorded once) still hold."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from flowchat_platform.db import migrate
from flowchat_state_manager import SCHEMA
from flowchat_state_manager.app import MIGRATIONS
from flowchat_state_manager.errors import RejectedEvent
from flowchat_state_manager.repository import Repository
from flowchat_state_manager.service import StateService

pytestmark = pytest.mark.integration

OLD = datetime(2026, 1, 14, 9, 30, tzinfo=UTC)  # a Wednesday: its week starts 2026-01-12


async def test_migration_0005_converts_the_tables_and_keeps_every_row(database_url: str) -> None:
    await migrate(database_url, MIGRATIONS, schema=SCHEMA, revision="0004")
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})
    try:
        for mid, created in (("msg_old", OLD), ("msg_new", datetime.now(UTC))):
            await conn.execute(
                "INSERT INTO messages (id, tenant_id, account_id, provider, provider_message_id, "
                "status, status_rank, created_at) VALUES ($1, 'tnt_a', 'acc_1', 'meta', $2, "
                "'sent', 2, $3)",
                mid,
                f"wamid.{mid}",
                created,
            )
            for status in ("accepted", "sent"):
                await conn.execute(
                    "INSERT INTO message_events (message_id, tenant_id, status, "
                    "provider_timestamp, event_id) VALUES ($1, 'tnt_a', $2, now(), $3)",
                    mid,
                    status,
                    f"{mid}:{status}",
                )
        before = await conn.fetch("SELECT * FROM message_events ORDER BY id")
        await migrate(database_url, MIGRATIONS, schema=SCHEMA)
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == "0008"
        rows = await conn.fetch(
            "SELECT id, created_at, tableoid::regclass::text AS part FROM messages ORDER BY id"
        )
        assert [(r["id"], r["part"]) for r in rows] == [
            ("msg_new", f"messages_p{_monday(datetime.now(UTC).date()):%Y%m%d}"),
            ("msg_old", "messages_p20260112"),  # the migration covers the oldest record's week
        ]
        after = await conn.fetch(
            "SELECT *, tableoid::regclass::text AS part FROM message_events ORDER BY id"
        )
        assert [(r["id"], r["message_id"], r["sequence"]) for r in after] == [
            (r["id"], r["message_id"], r["sequence"]) for r in before
        ]
        assert {r["part"] for r in after if r["message_id"] == "msg_old"} == {
            "message_events_p20260112"
        }
        # new history rows keep numbering after the copied ones
        assert await conn.fetchval("SELECT nextval('message_events_id_seq')") > after[-1]["id"]
        assert await conn.fetchval("SELECT count(*) FROM messages_default") == 0
    finally:
        await conn.close()


def _monday(d: date) -> date:
    return d - timedelta(days=d.weekday())


async def test_retention_drops_whole_weeks_with_their_history(state_pool: Any, build: Any) -> None:
    service = StateService(Repository(state_pool))
    repo = Repository(state_pool)
    now = datetime.now(UTC)
    old_week = _monday((now - timedelta(days=120)).date())
    await repo.create_partitions(old_week, old_week)
    old: list[str] = []
    fresh: list[str] = []
    for ids in (old, fresh):
        for _ in range(3):
            mid, wamid = build.new_ids()
            await service.record_send_result(build.send_result(mid, wamid))
            await service.record_status(build.status_update(wamid, "delivered"))
            ids.append(mid)
    # the old ones into the old week, with their history (rows move partition)
    then = datetime.combine(old_week, datetime.min.time(), UTC) + timedelta(days=2)
    await state_pool.execute("UPDATE messages SET created_at = $2 WHERE id = ANY($1)", old, then)
    await state_pool.execute(
        "UPDATE message_events SET message_created_at = $2 WHERE message_id = ANY($1)", old, then
    )
    part = f"p{old_week:%Y%m%d}"
    assert await state_pool.fetchval(f"SELECT count(*) FROM messages_{part}") == 3
    assert await state_pool.fetchval(f"SELECT count(*) FROM message_events_{part}") == 6

    result = await service.purge(retention_days=90, batch_size=2, now=now)

    assert result.partitions >= 1
    assert result.messages == 0  # nothing deleted row by row
    assert await state_pool.fetchval("SELECT to_regclass($1)", f"messages_{part}") is None
    assert await state_pool.fetchval("SELECT to_regclass($1)", f"message_events_{part}") is None
    left = {r["id"] for r in await state_pool.fetch("SELECT id FROM messages")}
    assert left == set(fresh)
    assert await state_pool.fetchval("SELECT count(*) FROM message_events") == 6
    # the weeks ahead exist: today's and the next week's
    weeks = await repo.partitions()
    assert _monday(now.date()) in weeks
    assert _monday((now + timedelta(days=7)).date()) in weeks


async def test_a_wamid_stays_with_one_message_and_an_id_with_one_record(
    state_pool: Any, build: Any
) -> None:
    service = StateService(Repository(state_pool))
    mid, wamid = build.new_ids()
    other, _ = build.new_ids()
    await service.record_send_result(build.send_result(mid, wamid))
    with pytest.raises(RejectedEvent):
        await service.record_send_result(build.send_result(other, wamid))
    # the same send result again (a redelivery), concurrently: still one record
    again = [service.record_send_result(build.send_result(mid, wamid)) for _ in range(4)]
    await asyncio.gather(*again)
    assert await state_pool.fetchval("SELECT count(*) FROM messages WHERE id = $1", mid) == 1
    assert await state_pool.fetchval("SELECT count(*) FROM messages WHERE id = $1", other) == 0
    # an event recorded once, though delivered twice
    update = build.status_update(wamid, "delivered")
    first, second = await asyncio.gather(
        service.record_status(update), service.record_status(update)
    )
    assert sorted(o for h in (first, second) for _, o in h.outcomes) == ["applied", "duplicate"]
    assert (
        await state_pool.fetchval(
            "SELECT count(*) FROM message_events WHERE message_id = $1 AND status = 'delivered'",
            mid,
        )
        == 1
    )
