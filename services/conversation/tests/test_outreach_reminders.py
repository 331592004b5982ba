"""The reminder scheduler against a real PostgreSQL: once across replicas, after a restart,
session message inside the 24 h window and template outside it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from flowchat_contracts import OutboundCommand
from flowchat_conversation.outbox import Event
from flowchat_conversation.outreach.reminder_kinds import ReminderTemplate
from flowchat_conversation.outreach.reminder_service import ReminderService
from flowchat_conversation.outreach.reminders import ReminderIn
from flowchat_conversation.outreach.repository import OutreachRepository
from flowchat_conversation.outreach.scheduler import ReminderScheduler
from flowchat_conversation.sealing import identities
from flowchat_platform.db import create_pool, migrate

pytestmark = pytest.mark.integration

#: Customers' ids encrypted at rest under keys derived from a test token.
IDS = identities(None, None, SecretStr("conversation-test-token-0123456789"))

MIGRATIONS = Path(__file__).resolve().parents[1] / "src" / "flowchat_conversation" / "migrations"


class RecordingOutbox:
    """The seam where commands leave (the broker itself is tested in test_outreach_api)."""

    def __init__(self, *, delay_s: float = 0.0) -> None:
        self.sent: list[OutboundCommand] = []
        self.delay_s = delay_s

    async def send(self, command: OutboundCommand) -> None:
        await asyncio.sleep(self.delay_s)
        self.sent.append(command)

    async def publish_event(self, event: Event) -> None:
        raise AssertionError(f"reminders publish no events: {event.kind}")


@pytest.fixture
async def pool(database_url):
    await migrate(database_url, MIGRATIONS, schema="conversation")
    p = await create_pool(database_url, schema="conversation", max_size=12)
    try:
        yield p
    finally:
        await p.close()


def reminder(phone: str, **kw) -> ReminderIn:
    body = {
        "account_id": "a1",
        "phone": phone,
        "delay_s": 0,
        "text": "Hi {{name|there}}, your order is waiting.",
        "template": ReminderTemplate(
            name="payment_reminder",
            language="en",
            parameters={"body": ["{{name|there}}"]},
        ),
        **kw,
    }
    return ReminderIn.model_validate(body)


async def test_each_reminder_fires_once_across_two_replicas(pool):
    repo = OutreachRepository(pool, IDS)
    service = ReminderService(repo)
    for n in range(300):
        await service.schedule("t1", reminder(f"+23480{n:08d}"))
    outbox_a, outbox_b = RecordingOutbox(delay_s=0.001), RecordingOutbox(delay_s=0.001)
    # two replicas: two schedulers on the same database, claiming concurrently
    a = ReminderScheduler(repo, outbox_a, batch=25)
    b = ReminderScheduler(repo, outbox_b, batch=25)

    async def drain(s: ReminderScheduler) -> None:
        while await s.tick():
            pass

    await asyncio.gather(drain(a), drain(b), drain(a), drain(b))
    keys = [c.idempotency_key for c in outbox_a.sent + outbox_b.sent]
    assert len(keys) == 300
    assert len(set(keys)) == 300
    assert outbox_a.sent
    assert outbox_b.sent  # both replicas took a share
    fired = await pool.fetchval("SELECT count(*) FROM reminders WHERE state = 'fired'")
    assert fired == 300
    # nothing left to fire twice
    assert await a.tick() == 0


async def test_a_crashed_batch_fires_again_after_restart_with_the_same_key(pool):
    repo = OutreachRepository(pool, IDS)
    service = ReminderService(repo)
    r, _ = await service.schedule("t1", reminder("+2348011111111"))

    class Crash(Exception):
        pass

    class CrashingOutbox(RecordingOutbox):
        async def send(self, command: OutboundCommand) -> None:
            self.sent.append(command)  # published …
            raise Crash  # … then the process dies before the commit

    crashing = CrashingOutbox()
    with pytest.raises(Crash):
        await ReminderScheduler(repo, crashing).tick()
    assert await pool.fetchval("SELECT state FROM reminders") == "pending"
    restarted = RecordingOutbox()
    assert await ReminderScheduler(repo, restarted).tick() == 1
    assert (
        restarted.sent[0].idempotency_key
        == crashing.sent[0].idempotency_key
        == (f"reminder:{r.reminder_id}")
    )
    assert await pool.fetchval("SELECT state FROM reminders") == "fired"
    assert await ReminderScheduler(repo, restarted).tick() == 0


async def test_session_message_inside_the_window_template_outside(pool):
    repo = OutreachRepository(pool, IDS)
    service = ReminderService(repo)
    # the bot saw "recent" write 2 hours ago, "old" 2 days ago (it sets last_seen_at)
    await pool.execute(
        "INSERT INTO contacts (tenant_id, customer_wa_id, name, last_seen_at) VALUES "
        "('t1', '2348022222222', 'Ada Obi', now() - interval '2 hours'),"
        "('t1', '2348033333333', 'Bola', now() - interval '2 days')"
    )
    await service.schedule("t1", reminder("+2348022222222"))
    await service.schedule("t1", reminder("+2348033333333"))
    await service.schedule("t1", reminder("+2348044444444", template=None))  # never wrote
    outbox = RecordingOutbox()
    assert await ReminderScheduler(repo, outbox).tick() == 3
    by_to = {c.to: c for c in outbox.sent}
    assert set(by_to) == {"2348022222222", "2348033333333"}
    recent = by_to["2348022222222"]
    assert recent.content.type == "text"
    assert recent.content.body == "Hi Ada Obi, your order is waiting."
    assert recent.category == "service"
    old = by_to["2348033333333"]
    assert old.content.type == "template"
    assert old.content.name == "payment_reminder"
    assert old.content.components[0].parameters[0].text == "Bola"
    assert old.category == "utility"
    outcomes = dict(await pool.fetch("SELECT wa_id, outcome FROM reminders"))
    assert outcomes == {  # each under its customer's keyed digest
        IDS.key("t1", "2348022222222"): "session",
        IDS.key("t1", "2348033333333"): "template",
        IDS.key("t1", "2348044444444"): "outside_window",
    }


async def test_paid_orders_blocked_and_opted_out_contacts_are_skipped(pool):
    repo = OutreachRepository(pool, IDS)
    service = ReminderService(repo)
    await pool.execute(
        "INSERT INTO orders (order_id, tenant_id, account_id, customer_wa_id, status, currency,"
        " subtotal, tax, total, payment_reference, payment_status, source_message_id) VALUES "
        "('ORD-1', 't1', 'a1', '2348055555555', 'confirmed', 'USD', 1, 0, 1, 'PAY-1', 'paid', 'm1')"
    )
    await pool.execute(
        "INSERT INTO contacts (tenant_id, customer_wa_id, status, marketing_opt_in, origin) VALUES "
        "('t1', '2348066666666', 'blocked', true, 'api'),"
        "('t1', '2348077777777', 'active', false, 'api')"
    )
    await service.schedule("t1", reminder("+2348055555555", kind="payment_due", reference="ORD-1"))
    await service.schedule("t1", reminder("+2348066666666"))
    await service.schedule("t1", reminder("+2348077777777", kind="abandoned_cart"))
    # the same dedupe key twice is one reminder
    first, created = await service.schedule("t1", reminder("+2348088888888", dedupe_key="cart:x"))
    again, created_again = await service.schedule(
        "t1", reminder("+2348088888888", dedupe_key="cart:x")
    )
    assert created
    assert not created_again
    assert again.reminder_id == first.reminder_id
    # a reminder due later does not fire now
    await service.schedule(
        "t1",
        reminder("+2348099999999", delay_s=None, due_at=datetime.now(UTC) + timedelta(hours=1)),
    )
    outbox = RecordingOutbox()
    assert await ReminderScheduler(repo, outbox).tick() == 4
    assert [c.to for c in outbox.sent] == ["2348088888888"]
    outcomes = dict(
        await pool.fetch("SELECT wa_id, outcome FROM reminders WHERE state = 'skipped'")
    )
    assert outcomes == {
        IDS.key("t1", "2348055555555"): "resolved",
        IDS.key("t1", "2348066666666"): "blocked",
        IDS.key("t1", "2348077777777"): "opted_out",
    }
    assert await pool.fetchval("SELECT count(*) FROM reminders WHERE state = 'pending'") == 1


async def test_restock_waits_until_the_product_is_back(pool):
    repo = OutreachRepository(pool, IDS)
    service = ReminderService(repo)
    await pool.execute(
        "INSERT INTO products (tenant_id, sku, name, price, currency, category, stock) "
        "VALUES ('t1', 'CEM-50', 'Cement', 9.5, 'USD', 'Building', 0)"
    )
    await service.schedule("t1", reminder("+2348012121212", kind="restock", reference="CEM-50"))
    outbox = RecordingOutbox()
    assert await ReminderScheduler(repo, outbox).tick() == 1
    assert outbox.sent == []
    due = await pool.fetchval("SELECT due_at FROM reminders")
    assert due > datetime.now(UTC) + timedelta(minutes=50)
    await pool.execute("UPDATE products SET stock = 10")
    await pool.execute("UPDATE reminders SET due_at = now()")
    assert await ReminderScheduler(repo, outbox).tick() == 1
    assert [c.to for c in outbox.sent] == ["2348012121212"]


def test_reminder_input_is_checked() -> None:
    with pytest.raises(ValueError, match="exactly one of due_at and delay_s"):
        reminder("+2348012345678", due_at=datetime.now(UTC))
    with pytest.raises(ValueError, match="needs a reference"):
        reminder("+2348012345678", kind="payment_due")
    with pytest.raises(ValueError, match="a text"):
        reminder("+2348012345678", text=None, template=None)


class CountingScheduler(ReminderScheduler):
    """A scheduler that counts its ticks (each is a transaction on the database)."""

    ticks = 0

    async def tick(self) -> int:
        self.ticks += 1
        return await super().tick()


async def _running(scheduler: ReminderScheduler) -> asyncio.Task[None]:
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(0)
    return task


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class WatchedOutbox(RecordingOutbox):
    """Says when a command left."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()

    async def send(self, command: OutboundCommand) -> None:
        await super().send(command)
        self.arrived.set()


async def _until_sent(outbox: WatchedOutbox, timeout_s: float) -> float:
    """Seconds until the outbox sends a command."""
    started = asyncio.get_running_loop().time()
    async with asyncio.timeout(timeout_s):
        await outbox.arrived.wait()
    return asyncio.get_running_loop().time() - started


async def test_an_idle_scheduler_ticks_every_idle_s_not_every_tick_s(pool):
    repo = OutreachRepository(pool, IDS)
    scheduler = CountingScheduler(repo, RecordingOutbox(), tick_s=0.05, idle_s=0.5)
    task = await _running(scheduler)
    await asyncio.sleep(1.3)
    await _stop(task)
    # at start, then after 0.5 s and 1.0 s: 3 (every tick_s would have been ~26)
    assert 2 <= scheduler.ticks <= 4


async def test_a_reminder_scheduled_here_wakes_the_scheduler_at_its_due_time(pool):
    repo = OutreachRepository(pool, IDS)
    outbox = WatchedOutbox()
    scheduler = CountingScheduler(repo, outbox, tick_s=0.05, idle_s=30)
    service = ReminderService(repo, wake=scheduler.wake)
    task = await _running(scheduler)
    try:
        await asyncio.sleep(0.2)  # it has ticked once and sleeps for idle_s
        await service.schedule(
            "t1",
            reminder(
                "+2348044444444", delay_s=None, due_at=datetime.now(UTC) + timedelta(seconds=0.6)
            ),
        )
        waited = await _until_sent(outbox, timeout_s=5)
    finally:
        await _stop(task)
    assert 0.4 <= waited < 2.0  # at its due time, not after the 30 s idle tick
    assert scheduler.ticks <= 4


async def test_the_next_due_reminder_read_in_a_tick_sets_the_sleep(pool):
    """A reminder the scheduler was not told of (the bot's, another replica's), pending
    when it ticks, fires at its due time, not at the next idle tick."""
    repo = OutreachRepository(pool, IDS)
    await ReminderService(repo).schedule(
        "t1",
        reminder("+2348055555555", delay_s=None, due_at=datetime.now(UTC) + timedelta(seconds=0.8)),
    )
    outbox = WatchedOutbox()
    scheduler = CountingScheduler(repo, outbox, tick_s=0.05, idle_s=30)
    task = await _running(scheduler)
    try:
        waited = await _until_sent(outbox, timeout_s=5)
    finally:
        await _stop(task)
    assert 0.5 <= waited < 2.0
    assert scheduler.ticks == 2  # the first found it pending, the second fired it
