"""Retention of the inbox against real PostgreSQL: one pass deletes the messages and
latest statuses older than the retention and clears the threads' previews of them, in
batches smaller than the rows to delete; newer ones stay; the metric counts by kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from inbox_testkit import sealer
from prometheus_client import REGISTRY

from flowchat_inbox import SCHEMA
from flowchat_inbox.app import MIGRATIONS
from flowchat_inbox.repository import Repository
from flowchat_inbox.service import HistoryService
from flowchat_platform.db import create_pool, migrate_with_retry
from flowchat_platform.testing import temporary_database

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


def purged(kind: str) -> float:
    return REGISTRY.get_sample_value("flowchat_inbox_purged_total", {"kind": kind}) or 0.0


async def test_one_pass_deletes_only_content_older_than_the_retention() -> None:
    old, new = NOW - timedelta(days=91), NOW - timedelta(days=89)
    async with temporary_database() as dsn:
        await migrate_with_retry(dsn, MIGRATIONS, SCHEMA)
        pool = await create_pool(dsn, schema=SCHEMA)
        try:
            threads: dict[str, int] = {}
            for name, last in (("old", old), ("new", new)):
                threads[name] = await pool.fetchval(
                    """
                    INSERT INTO threads (tenant_id, account_id, customer_key, wa_id,
                                         last_message_at, last_preview, message_count)
                    VALUES ('t1', 'acc', $1, $1, $2, 'see you at 5', 5) RETURNING id
                    """,
                    f"23480000000{len(threads)}",
                    last,
                )
            # 5 old messages in the old thread, 5 new ones in the new thread
            rows = [(threads["old"], old - timedelta(minutes=i), f"o{i}") for i in range(5)]
            rows += [(threads["new"], new, f"n{i}") for i in range(3)]
            rows += [(threads["new"], new, f"m{i}") for i in range(2)]
            await pool.executemany(
                """
                INSERT INTO messages (tenant_id, thread_id, dedupe_key, direction, author,
                                      type, body, content, message_id, occurred_at)
                VALUES ('t1', $1, $2, 'inbound', 'customer', 'text', 'hello', '{}', $2, $3)
                """,
                [(t, key, at) for t, at, key in rows],
            )
            await pool.executemany(
                "INSERT INTO statuses (tenant_id, message_id, status, rank, updated_at) "
                "VALUES ('t1', $1, 'read', 4, $2)",
                [(key, at) for _, at, key in rows],
            )
            before = {k: purged(k) for k in ("messages", "statuses", "previews")}

            result = await HistoryService(Repository(pool, sealer())).purge(
                retention_days=90, batch_size=2, now=NOW
            )

            assert result == {"messages": 5, "statuses": 5, "previews": 1}
            left = await pool.fetch("SELECT dedupe_key FROM messages ORDER BY dedupe_key")
            assert [r["dedupe_key"] for r in left] == ["m0", "m1", "n0", "n1", "n2"]
            left = await pool.fetch("SELECT message_id FROM statuses ORDER BY message_id")
            assert [r["message_id"] for r in left] == ["m0", "m1", "n0", "n1", "n2"]
            previews = await pool.fetch("SELECT id, last_preview FROM threads")
            assert {r["id"]: r["last_preview"] for r in previews} == {
                threads["old"]: None,
                threads["new"]: "see you at 5",
            }
            assert {k: purged(k) - before[k] for k in before} == {
                "messages": 5,
                "statuses": 5,
                "previews": 1,
            }
            # a second pass finds nothing more
            again = await HistoryService(Repository(pool, sealer())).purge(
                retention_days=90, batch_size=2, now=NOW
            )
            assert again == {"messages": 0, "statuses": 0, "previews": 0}
        finally:
            await pool.close()


async def test_a_tenant_with_its_own_retention_keeps_content_that_long() -> None:
    """t_short keeps 30 days, t_long 200, t_default the platform's 90: messages 40 and
    120 days old go or stay by their tenant's retention."""
    async with temporary_database() as dsn:
        await migrate_with_retry(dsn, MIGRATIONS, SCHEMA)
        pool = await create_pool(dsn, schema=SCHEMA)
        try:
            history = HistoryService(Repository(pool, sealer()))
            await history.set_retention("t_short", 30)
            await history.set_retention("t_long", 200)
            await history.set_retention("t_long", 200)  # set twice: one row
            assert await history.retention("t_short", 90) == (30, True)
            assert await history.retention("t_default", 90) == (90, False)
            for tenant in ("t_short", "t_long", "t_default"):
                thread = await pool.fetchval(
                    """
                    INSERT INTO threads (tenant_id, account_id, customer_key, wa_id,
                                         last_message_at, message_count)
                    VALUES ($1, 'acc', '2348000000001', '2348000000001', $2, 2) RETURNING id
                    """,
                    tenant,
                    NOW - timedelta(days=40),
                )
                await pool.executemany(
                    """
                    INSERT INTO messages (tenant_id, thread_id, dedupe_key, direction, author,
                                          type, body, content, occurred_at)
                    VALUES ($1, $2, $3, 'inbound', 'customer', 'text', 'hello', '{}', $4)
                    """,
                    [
                        (tenant, thread, f"{tenant}-40", NOW - timedelta(days=40)),
                        (tenant, thread, f"{tenant}-120", NOW - timedelta(days=120)),
                    ],
                )

            await history.purge(retention_days=90, batch_size=10, now=NOW)

            left = await pool.fetch("SELECT dedupe_key FROM messages ORDER BY dedupe_key")
            assert [r["dedupe_key"] for r in left] == [
                "t_default-40",
                "t_long-120",
                "t_long-40",
            ]
            await history.set_retention("t_long", None)  # back to the default
            assert await history.retention("t_long", 90) == (90, False)
        finally:
            await pool.close()
