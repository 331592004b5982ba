"""A status alone for a known message: read without a lock, then written in one statement
of its own that locks the row and writes only while the row is still the version read
(``StateService._status_alone``); with no read first when this replica wrote the message
last (``Written``); anything else goes through a transaction."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from flowchat_platform.db import create_pool
from flowchat_state_manager import SCHEMA
from flowchat_state_manager.errors import RejectedEvent
from flowchat_state_manager.models import AtVersion, CustomerIds, IncomingStatus, MessageRecord
from flowchat_state_manager.repository import Repository
from flowchat_state_manager.service import StateService, Written
from flowchat_state_manager.state import Status


async def _statements(pool: asyncpg.Pool) -> Counter[str]:
    """Every statement the pool's connections send from now on, by first word."""
    counts: Counter[str] = Counter()
    held = [await pool.acquire() for _ in range(pool.get_max_size())]
    try:
        for conn in held:
            conn.add_query_logger(lambda r: counts.update([r.query.split()[0].upper()]))
    finally:
        for conn in held:
            await pool.release(conn)
    return counts


async def _history(pool: asyncpg.Pool, mid: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT status FROM message_events WHERE message_id = $1 ORDER BY sequence", mid
    )
    return [r["status"] for r in rows]


@pytest_asyncio.fixture
async def app_pool(state_pool: asyncpg.Pool, database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the migrated database, as the app's: no reset query at release."""
    pool = await create_pool(database_url, schema=SCHEMA, max_size=2, reset=False)
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_status_for_a_known_message_takes_two_statements_and_no_transaction(
    state_pool: asyncpg.Pool, database_url: str, build: Any
) -> None:
    # as the app's pool: no reset query at release
    pool = await create_pool(database_url, schema=SCHEMA, max_size=2, reset=False)
    try:
        await _known_message_in_two_statements(pool, build)
    finally:
        await pool.close()


async def _known_message_in_two_statements(state_pool: asyncpg.Pool, build: Any) -> None:
    service = StateService(Repository(state_pool), written=Written(0))  # nothing kept
    mid, wamid = build.new_ids()
    await service.record_send_result(build.send_result(mid, wamid))
    counts = await _statements(state_pool)
    handled = await service.record_status(build.status_update(wamid, "delivered"))
    assert handled.outcomes == [("delivered", "applied")]
    assert counts == Counter({"SELECT": 1, "WITH": 1})  # no BEGIN, no COMMIT
    # a duplicate writes nothing; one out of order is kept in the history only
    assert (await service.record_status(build.status_update(wamid, "delivered"))).outcomes == [
        ("delivered", "duplicate")
    ]
    assert (await service.record_status(build.status_update(wamid, "sent"))).outcomes == [
        ("sent", "out_of_order")
    ]
    row = await state_pool.fetchrow("SELECT status, status_rank FROM messages WHERE id = $1", mid)
    assert row is not None
    assert (row["status"], row["status_rank"]) == ("delivered", 3)
    assert await _history(state_pool, mid) == ["accepted", "delivered", "sent"]


async def test_a_write_at_a_stale_version_changes_nothing(
    state_pool: asyncpg.Pool, build: Any
) -> None:
    repository = Repository(state_pool)
    service = StateService(repository)
    mid, wamid = build.new_ids()
    await service.record_send_result(build.send_result(mid, wamid))
    peeked = await repository.peek_by_provider_id("meta", wamid)
    assert peeked is not None
    row, version = peeked
    await service.record_status(build.status_update(wamid, "read"))  # the row moves on
    incoming = IncomingStatus(
        status=Status.DELIVERED, provider_timestamp=row.created_at, event_id="evt-stale"
    )
    outcome = await repository.record_if_unchanged(
        version,
        row.id,
        row.tenant_id,
        incoming,
        new_status=Status.DELIVERED,
        outbox=None,
        created_at=row.created_at,
    )
    assert not outcome.written
    assert await state_pool.fetchval("SELECT status FROM messages WHERE id = $1", mid) == "read"
    assert await _history(state_pool, mid) == ["accepted", "read"]
    # the row as the write found it: as a read now sees it
    fresh = await repository.peek_by_provider_id("meta", wamid)
    assert fresh is not None
    assert fresh[1] != version
    assert (outcome.row, outcome.version) == fresh
    # at the row's version now, it writes (out of order: history only)
    outcome = await repository.record_if_unchanged(
        fresh[1],
        row.id,
        row.tenant_id,
        incoming,
        new_status=None,
        outbox=None,
        created_at=row.created_at,
    )
    # history only: the row, and so its version, stay
    assert outcome == AtVersion(written=True, version=fresh[1], inserted=True)
    assert await _history(state_pool, mid) == ["accepted", "read", "delivered"]


class _Racing(Repository):
    """Applies ``racer`` (another replica's status) right after the unlocked read."""

    racer: Any = None

    async def peek_by_provider_id(
        self, provider: str, provider_message_id: str
    ) -> tuple[MessageRecord, str] | None:
        peeked = await super().peek_by_provider_id(provider, provider_message_id)
        if self.racer is not None:
            racer, self.racer = self.racer, None
            await StateService(Repository(self._pool)).record_status(racer)
        return peeked


async def test_a_message_changed_after_the_read_is_applied_in_a_transaction(
    state_pool: asyncpg.Pool, build: Any
) -> None:
    repository = _Racing(state_pool)
    service = StateService(repository, written=Written(0))  # it reads the row first
    mid, wamid = build.new_ids()
    await service.record_send_result(build.send_result(mid, wamid))
    # read at "accepted"; "read" lands before the write: "delivered" must not win
    repository.racer = build.status_update(wamid, "read")
    counts = await _statements(state_pool)
    handled = await service.record_status(build.status_update(wamid, "delivered"))
    assert handled.outcomes == [("delivered", "out_of_order")]
    assert counts["BEGIN;"] == counts["COMMIT;"] == 1  # the fallback's transaction
    assert counts["WITH"] == 3  # the racer's write, the stale one, the fallback's
    assert await state_pool.fetchval("SELECT status FROM messages WHERE id = $1", mid) == "read"
    assert await _history(state_pool, mid) == ["accepted", "read", "delivered"]


async def test_a_status_for_an_unknown_message_is_held_in_a_transaction(
    state_pool: asyncpg.Pool, build: Any
) -> None:
    service = StateService(Repository(state_pool))
    mid, wamid = build.new_ids()
    handled = await service.record_status(build.status_update(wamid, "delivered"))
    assert handled.outcomes == [("delivered", "pending")]
    await service.record_send_result(build.send_result(mid, wamid))
    assert (
        await state_pool.fetchval("SELECT status FROM messages WHERE id = $1", mid) == "delivered"
    )


async def test_a_send_result_takes_the_statuses_held_for_it_in_its_insert(
    state_pool: asyncpg.Pool, build: Any
) -> None:
    service = StateService(Repository(state_pool))
    mid, wamid = build.new_ids()
    for status in ("read", "delivered"):
        held = await service.record_status(build.status_update(wamid, status))
        assert held.outcomes == [(status, "pending")]
    counts = await _statements(state_pool)
    handled = await service.record_send_result(build.send_result(mid, wamid))
    assert handled.outcomes == [
        ("accepted", "applied"),
        ("delivered", "applied"),
        ("read", "applied"),
    ]
    assert "DELETE" not in counts  # taken by the statement that created the message
    assert (
        await state_pool.fetchval(
            "SELECT count(*) FROM pending_statuses WHERE provider_message_id = $1", wamid
        )
        == 0
    )
    # in the order FlowChat learned them: the held ones keep when they were held
    assert await _history(state_pool, mid) == ["read", "delivered", "accepted"]
    assert await state_pool.fetchval("SELECT status FROM messages WHERE id = $1", mid) == "read"
    # a redelivered send result finds the message: nothing held, nothing taken
    again = await service.record_send_result(build.send_result(mid, wamid))
    assert again.outcomes == [("accepted", "duplicate")]


async def test_a_status_for_a_message_this_replica_wrote_last_takes_one_statement(
    app_pool: asyncpg.Pool, build: Any
) -> None:
    state_pool = app_pool
    service = StateService(Repository(state_pool))
    mid, wamid = build.new_ids()
    await service.record_send_result(build.send_result(mid, wamid))  # created it
    counts = await _statements(state_pool)
    for status, outcome in [
        ("delivered", "applied"),
        ("delivered", "duplicate"),
        ("sent", "out_of_order"),
        ("read", "applied"),
    ]:
        handled = await service.record_status(build.status_update(wamid, status))
        assert handled.outcomes == [(status, outcome)]
    # one each (the duplicate of the current status none): no read of the row, no BEGIN,
    # no COMMIT
    assert counts == Counter({"WITH": 3})
    row = await state_pool.fetchrow("SELECT status, status_rank FROM messages WHERE id = $1", mid)
    assert row is not None
    assert (row["status"], row["status_rank"]) == ("read", 4)
    assert await _history(state_pool, mid) == ["accepted", "delivered", "sent", "read"]


async def test_a_message_another_replica_wrote_since_is_written_at_the_version_found(
    app_pool: asyncpg.Pool, build: Any
) -> None:
    state_pool = app_pool
    service = StateService(Repository(state_pool))
    other = StateService(Repository(state_pool))  # another replica
    mid, wamid = build.new_ids()
    await service.record_send_result(build.send_result(mid, wamid))
    assert (await other.record_status(build.status_update(wamid, "read"))).outcomes == [
        ("read", "applied")
    ]
    counts = await _statements(state_pool)
    # kept at "accepted": written at that version, nothing, the row as it is returned;
    # then written at its version (no read of its own)
    handled = await service.record_status(build.status_update(wamid, "delivered"))
    assert handled.outcomes == [("delivered", "out_of_order")]
    assert counts == Counter({"WITH": 2})
    assert await state_pool.fetchval("SELECT status FROM messages WHERE id = $1", mid) == "read"
    assert await _history(state_pool, mid) == ["accepted", "read", "delivered"]
    # the version read is kept: the next status is one statement again
    counts.clear()
    assert (await service.record_status(build.status_update(wamid, "played"))).outcomes == [
        ("played", "applied")
    ]
    assert counts == Counter({"WITH": 1})


async def test_a_transaction_forgets_the_versions_of_the_messages_it_may_change(
    app_pool: asyncpg.Pool, build: Any
) -> None:
    state_pool = app_pool
    service = StateService(Repository(state_pool))
    (m1, w1), (m2, w2) = build.new_ids(), build.new_ids()
    for mid, wamid in ((m1, w1), (m2, w2)):
        await service.record_send_result(build.send_result(mid, wamid))
    assert len(service.written) == 2
    # a batch: one transaction that locks and moves both rows
    await service.apply_batch(
        [build.status_update(w1, "delivered"), build.status_update(w2, "delivered")]
    )
    assert len(service.written) == 0
    counts = await _statements(state_pool)
    assert (await service.record_status(build.status_update(w1, "read"))).outcomes == [
        ("read", "applied")
    ]
    assert counts == Counter({"SELECT": 1, "WITH": 1})  # read first: no write at a stale one
    assert await state_pool.fetchval("SELECT status FROM messages WHERE id = $1", m1) == "read"


def test_written_keeps_the_newest_entries_young_enough() -> None:
    now = [0.0]
    written = Written(size=2, ttl_s=10.0, clock=lambda: now[0])
    rows = [_row(f"wamid.{i}") for i in range(3)]
    for row in rows:
        written.put(row, "v")
    assert len(written) == 2
    assert written.take(("meta", "wamid.0")) is None  # the oldest left first
    assert written.take(("meta", "wamid.1")) == (rows[1], "v")
    assert written.take(("meta", "wamid.1")) is None  # taken once
    now[0] = 10.5
    assert written.take(("meta", "wamid.2")) is None  # too old
    none = Written(size=0)
    none.put(rows[0], "v")
    assert len(none) == 0


def _row(wamid: str) -> MessageRecord:
    return MessageRecord(
        id=f"msg-{wamid}",
        tenant_id="tnt_a",
        account_id="acc_1",
        idempotency_key=None,
        message_type="text",
        category="service",
        campaign_id=None,
        correlation_id=None,
        provider="meta",
        provider_message_id=wamid,
        status=Status.ACCEPTED,
        error_code=None,
        error_title=None,
        error_details=None,
        pricing_category=None,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        updated_at=datetime(2026, 1, 1, tzinfo=UTC),
        ids=CustomerIds.clear("+15550001", None),
    )


async def test_a_send_result_looks_up_and_creates_its_message_in_one_statement(
    app_pool: asyncpg.Pool, build: Any
) -> None:
    service = StateService(Repository(app_pool))
    mid, wamid = build.new_ids()
    counts = await _statements(app_pool)
    handled = await service.record_send_result(build.send_result(mid, wamid))
    assert handled.outcomes == [("accepted", "applied")]
    # the advisory locks, the message (looked up, else created), its status
    assert counts == Counter({"BEGIN;": 1, "SELECT": 1, "WITH": 2, "COMMIT;": 1})
    counts.clear()
    again = await service.record_send_result(build.send_result(mid, wamid))
    assert again.outcomes == [("accepted", "duplicate")]
    # found (and the statuses held for its provider message id looked for again)
    assert counts == Counter({"BEGIN;": 1, "SELECT": 1, "WITH": 1, "DELETE": 1, "COMMIT;": 1})
    assert await app_pool.fetchval("SELECT count(*) FROM messages WHERE id = $1", mid) == 1
    # another message with the same provider message id is refused, and creates nothing
    other, _ = build.new_ids()
    with pytest.raises(RejectedEvent):
        await service.record_send_result(build.send_result(other, wamid))
    assert await app_pool.fetchval("SELECT count(*) FROM messages WHERE id = $1", other) == 0
