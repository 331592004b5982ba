# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False
# (the pyproject relaxes "*.tests.*" for tests; "state-manager" is no package name, so
# mypy names these modules bare and the override misses them: the same settings here)
"""Retention (batched purge, Background-free and the CLI) and the outbox relay's
never-lose guarantee, on real PostgreSQL."""

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from flowchat_state_manager.relay import OutboxRelay
from flowchat_state_manager.repository import Repository
from flowchat_state_manager.service import StateService

pytestmark = pytest.mark.integration

LONGEST = "flowchat_state_manager_retention_longest_seconds"


async def seed(service, build, count, *, pending=0):
    ids = []
    for _ in range(count):
        mid, wamid = build.new_ids()
        await service.record_send_result(build.send_result(mid, wamid))
        await service.record_status(build.status_update(wamid, "sent"))
        ids.append(mid)
    for _ in range(pending):
        _, wamid = build.new_ids()
        await service.record_status(build.status_update(wamid, "delivered"))
    return ids


async def age(pool, ids, days):
    await pool.execute(
        "UPDATE messages SET created_at = now() - make_interval(days => $2) WHERE id = ANY($1)",
        ids,
        days,
    )


async def test_purge_removes_old_records_in_batches(state_pool, build):
    service = StateService(Repository(state_pool))
    old = await seed(service, build, 5, pending=3)
    fresh = await seed(service, build, 2)
    await age(state_pool, old, 91)
    await state_pool.execute(
        "UPDATE pending_statuses SET received_at = now() - interval '100 days' "
        "WHERE id IN (SELECT id FROM pending_statuses LIMIT 2)"
    )

    result = await service.purge(retention_days=90, batch_size=2, now=datetime.now(UTC))

    assert (result.messages, result.pending) == (5, 2)
    left = await state_pool.fetch("SELECT id FROM messages")
    assert {r["id"] for r in left} == set(fresh)
    # the history goes with its message
    assert (
        await state_pool.fetchval(
            "SELECT count(*) FROM message_events WHERE message_id = ANY($1)", old
        )
        == 0
    )
    assert await state_pool.fetchval("SELECT count(*) FROM message_events") == 4
    assert await state_pool.fetchval("SELECT count(*) FROM pending_statuses") == 1
    again = await service.purge(retention_days=90, batch_size=2, now=datetime.now(UTC))
    assert (again.messages, again.pending) == (0, 0)


async def test_purge_command(state_pool, build, database_url):
    service = StateService(Repository(state_pool))
    old = await seed(service, build, 3)
    keep = await seed(service, build, 1)
    await age(state_pool, old, 40)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWCHAT_STATE_MANAGER_")}
    env.update(DATABASE_URL=database_url, LOG_LEVEL="WARNING")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flowchat_state_manager",
        "purge",
        "--retention-days",
        "30",
        "--batch-size",
        "2",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    report = orjson.loads(out.strip().splitlines()[-1])
    assert report["purged_messages"] == 3
    assert report["retention_days"] == 30
    assert {r["id"] for r in await state_pool.fetch("SELECT id FROM messages")} == set(keep)


async def test_outbox_keeps_events_until_the_broker_confirms(state_pool, build):
    published: list[tuple[str, dict[str, Any]]] = []
    broker_up = False

    async def publish(routing_key, body, event_id):
        if not broker_up:
            raise ConnectionError("broker down")
        published.append((routing_key, orjson.loads(body)))

    repo = Repository(state_pool)
    relay = OutboxRelay(repo, publish, batch_size=2, poll_interval_s=0.05, max_backoff_s=0.05)
    service = StateService(repo, on_events=relay.wake)
    mid, wamid = build.new_ids()
    await service.record_send_result(build.send_result(mid, wamid))
    await service.record_status(build.status_update(wamid, "sent"))
    await service.record_status(build.status_update(wamid, "read"))

    with pytest.raises(ConnectionError):
        await relay.relay_once()
    assert await state_pool.fetchval("SELECT count(*) FROM outbox") == 3  # nothing lost

    broker_up = True
    task = asyncio.create_task(relay.run())
    try:
        for _ in range(200):
            if await state_pool.fetchval("SELECT count(*) FROM outbox") == 0:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [e["status"] for _, e in published] == ["accepted", "sent", "read"]
    assert [k for k, _ in published] == [
        "tnt_a.acc_1.accepted",
        "tnt_a.acc_1.sent",
        "tnt_a.acc_1.read",
    ]
    assert await state_pool.fetchval("SELECT count(*) FROM outbox") == 0


# ------------------------------------------------------------ per-tenant retention


async def seed_for(service, build, tenant, count):
    ids = []
    for _ in range(count):
        mid, wamid = build.new_ids()
        await service.record_send_result(build.send_result(mid, wamid, tenant=tenant))
        await service.record_status(build.status_update(wamid, "sent", tenant=tenant))
        ids.append(mid)
    return ids


def _monday(d):
    return d - timedelta(days=d.weekday())


async def test_each_tenant_keeps_its_own_days_and_a_week_goes_when_past_every_tenant(
    state_pool, build
):
    repo = Repository(state_pool)
    service = StateService(repo)
    now = datetime.now(UTC)
    # a week 120 days back holds records of three tenants: the default (90 days), one
    # keeping 7 days and one keeping 365
    week = _monday((now - timedelta(days=120)).date())
    await repo.create_partitions(week, week)
    then = datetime.combine(week, datetime.min.time(), UTC) + timedelta(days=2)
    default_old = await seed_for(service, build, "tnt_a", 2)
    short_old = await seed_for(service, build, "tnt_short", 2)
    long_old = await seed_for(service, build, "tnt_long", 2)
    old = default_old + short_old + long_old
    await state_pool.execute("UPDATE messages SET created_at = $2 WHERE id = ANY($1)", old, then)
    await state_pool.execute(
        "UPDATE message_events SET message_created_at = $2 WHERE message_id = ANY($1)", old, then
    )
    # this week: 10 days old records of the short tenant go, the others' stay
    short_recent = await seed_for(service, build, "tnt_short", 3)
    default_recent = await seed_for(service, build, "tnt_a", 1)
    await age(state_pool, short_recent + default_recent, 10)
    await repo.set_retention("tnt_short", 7)
    await repo.set_retention("tnt_long", 365)
    assert await repo.retention("tnt_long") == 365
    assert await repo.retention("tnt_a") is None

    result = await service.purge(retention_days=90, batch_size=2, now=now)

    part = f"messages_p{week:%Y%m%d}"
    # the old week is kept for the long tenant; the others' records in it are deleted
    assert await state_pool.fetchval("SELECT to_regclass($1)", part) is not None
    assert {r["id"] for r in await state_pool.fetch(f"SELECT id FROM {part}")} == set(long_old)
    assert result.partitions == 0
    assert result.messages == len(default_old + short_old + short_recent)
    left = {r["id"] for r in await state_pool.fetch("SELECT id FROM messages")}
    assert left == set(long_old + default_recent)
    history = await state_pool.fetch("SELECT DISTINCT message_id FROM message_events")
    assert {r["message_id"] for r in history} == left
    assert REGISTRY.get_sample_value(LONGEST) == 365 * 86_400

    # the long tenant back to the default: the week is now past every tenant's retention
    await repo.set_retention("tnt_long", None)
    again = await service.purge(retention_days=90, batch_size=2, now=now)
    assert again.partitions >= 1
    assert again.messages == 0  # the whole week went; nothing deleted row by row
    assert await state_pool.fetchval("SELECT to_regclass($1)", part) is None
    left = {r["id"] for r in await state_pool.fetch("SELECT id FROM messages")}
    assert left == set(default_recent)
    assert REGISTRY.get_sample_value(LONGEST) == 90 * 86_400


async def test_retention_api(harness):
    http = harness.http
    admin = {"Authorization": "Bearer fc_key_tenant_a_admin"}
    r = await http.get("/v1/retention", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"days": 90, "default_days": 90, "own": False}
    r = await http.put("/v1/retention", json={"days": 30}, headers=admin)
    assert r.json() == {"days": 30, "default_days": 90, "own": True}
    assert (await http.get("/v1/retention", headers=admin)).json()["days"] == 30
    # another tenant (the service token names it) is untouched
    other = await http.get("/v1/retention", headers=harness.auth("tnt_b"))
    assert other.json() == {"days": 90, "default_days": 90, "own": False}
    for bad in ({"days": 0}, {"days": 3651}, {"days": "x"}, {"weeks": 2}, {}):
        r = await http.put("/v1/retention", json=bad, headers=admin)
        assert r.status_code == 422, bad
        assert r.json()["error"]["code"] == "invalid_request"
    # a key without the admin scope, and no key
    read = {"Authorization": "Bearer fc_key_tenant_a_read"}
    assert (await http.put("/v1/retention", json={"days": 5}, headers=read)).status_code == 403
    assert (await http.get("/v1/retention")).status_code == 401
    r = await http.put("/v1/retention", json={"days": None}, headers=admin)
    assert r.json() == {"days": 90, "default_days": 90, "own": False}
