"""Retention of the relay against real PostgreSQL: one pass deletes the delivery log
(attempts) and the events older than the retention, with their deliveries, in batches
smaller than the rows to delete; newer rows stay, and so does an old event an endpoint
still waits for (a pending delivery: nothing accepted is lost); the metric counts by
kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from prometheus_client import REGISTRY

from flowchat_platform.crypto import SecretBox
from flowchat_platform.db import create_pool, migrate_with_retry
from flowchat_platform.testing import temporary_database
from flowchat_relay import SCHEMA
from flowchat_relay.app import MIGRATIONS
from flowchat_relay.repository import Repository
from flowchat_relay.service import purge

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
box = SecretBox([Fernet.generate_key()])


def purged(kind: str) -> float:
    return REGISTRY.get_sample_value("flowchat_relay_purged_total", {"kind": kind}) or 0.0


async def test_one_pass_deletes_only_the_log_and_events_older_than_the_retention() -> None:
    old, new = NOW - timedelta(days=31), NOW - timedelta(days=29)
    async with temporary_database() as dsn:
        await migrate_with_retry(dsn, MIGRATIONS, SCHEMA)
        pool = await create_pool(dsn, schema=SCHEMA)
        try:
            await pool.execute(
                "INSERT INTO endpoints (id, tenant_id, url, event_types, format) "
                "VALUES ('ep1', 't1', 'https://example.com/hook', '{message.received}', 'flowchat')"
            )
            # old events: 3 delivered, 1 failed, 1 still pending; new events: 2 delivered
            events = [(f"old-{i}", old, "delivered") for i in range(3)]
            events += [("old-failed", old, "failed"), ("old-pending", old, "pending")]
            events += [(f"new-{i}", new, "delivered") for i in range(2)]
            for event_id, at, status in events:
                await pool.execute(
                    "INSERT INTO events (id, type, tenant_id, account_id, body, created_at) "
                    "VALUES ($1, 'message.received', 't1', 'acc', '{}', $2)",
                    event_id,
                    at,
                )
                delivery = await pool.fetchval(
                    "INSERT INTO deliveries (event_id, endpoint_id, status, created_at) "
                    "VALUES ($1, 'ep1', $2, $3) RETURNING id",
                    event_id,
                    status,
                    at,
                )
                await pool.execute(
                    "INSERT INTO attempts (delivery_id, endpoint_id, event_id, event_type, "
                    "attempt, status_code, latency_ms, response, outcome, at) "
                    "VALUES ($1, 'ep1', $2, 'message.received', 1, 200, 5, 'ok', $3, $4)",
                    delivery,
                    event_id,
                    status,
                    at,
                )
            before = {k: purged(k) for k in ("attempts", "events")}

            result = await purge(Repository(pool, box), retention_days=30, batch_size=2, now=NOW)

            assert result == {"attempts": 5, "events": 4}
            left = await pool.fetch("SELECT id FROM events ORDER BY id")
            assert [r["id"] for r in left] == ["new-0", "new-1", "old-pending"]
            left = await pool.fetch("SELECT event_id FROM deliveries ORDER BY event_id")
            assert [r["event_id"] for r in left] == ["new-0", "new-1", "old-pending"]
            left = await pool.fetch("SELECT event_id FROM attempts ORDER BY event_id")
            assert [r["event_id"] for r in left] == ["new-0", "new-1"]
            assert {k: purged(k) - before[k] for k in before} == {"attempts": 5, "events": 4}
            again = await purge(Repository(pool, box), retention_days=30, batch_size=2, now=NOW)
            assert again == {"attempts": 0, "events": 0}
        finally:
            await pool.close()


async def test_a_tenant_with_its_own_retention_keeps_its_log_that_long() -> None:
    """t_short keeps 7 days, t_default the platform's 30: events and attempts 10 days old
    go for the first only."""
    at = NOW - timedelta(days=10)
    async with temporary_database() as dsn:
        await migrate_with_retry(dsn, MIGRATIONS, SCHEMA)
        pool = await create_pool(dsn, schema=SCHEMA)
        try:
            repository = Repository(pool, box)
            await repository.set_retention("t_short", 7)
            assert await repository.retention("t_short") == 7
            assert await repository.retention("t_default") is None
            for tenant in ("t_short", "t_default"):
                await pool.execute(
                    "INSERT INTO endpoints (id, tenant_id, url, event_types, format) "
                    "VALUES ($1, $2, 'https://example.com/hook', '{message.received}', "
                    "'flowchat')",
                    f"ep-{tenant}",
                    tenant,
                )
                await pool.execute(
                    "INSERT INTO events (id, type, tenant_id, account_id, body, created_at) "
                    "VALUES ($1, 'message.received', $2, 'acc', '{}', $3)",
                    f"ev-{tenant}",
                    tenant,
                    at,
                )
                delivery = await pool.fetchval(
                    "INSERT INTO deliveries (event_id, endpoint_id, status, created_at) "
                    "VALUES ($1, $2, 'delivered', $3) RETURNING id",
                    f"ev-{tenant}",
                    f"ep-{tenant}",
                    at,
                )
                await pool.execute(
                    "INSERT INTO attempts (delivery_id, endpoint_id, event_id, event_type, "
                    "attempt, status_code, latency_ms, response, outcome, at) "
                    "VALUES ($1, $2, $3, 'message.received', 1, 200, 5, 'ok', 'delivered', $4)",
                    delivery,
                    f"ep-{tenant}",
                    f"ev-{tenant}",
                    at,
                )

            result = await purge(repository, retention_days=30, batch_size=10, now=NOW)

            assert result == {"attempts": 1, "events": 1}
            left = await pool.fetch("SELECT id FROM events ORDER BY id")
            assert [r["id"] for r in left] == ["ev-t_default"]
            await repository.set_retention("t_short", None)
            assert await repository.retention("t_short") is None
        finally:
            await pool.close()
