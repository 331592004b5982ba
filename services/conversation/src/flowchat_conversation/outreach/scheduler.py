"""The durable reminder scheduler: PostgreSQL is the queue.

A tick opens a transaction and claims up to ``batch`` due reminders with
``SELECT … FOR UPDATE SKIP LOCKED``: rows another replica holds are skipped, never
waited for, so replicas share the work and never take the same one.
For each it decides (:func:`flowchat_conversation.outreach.reminders.decide`), publishes the
command with a confirm, and records the outcome in the same transaction; the commit
releases the rows as ``fired`` / ``skipped`` (or ``pending`` with a later ``due_at``).

A replica that dies mid-batch has its transaction rolled back by PostgreSQL: the rows
are ``pending`` again and fire on the next tick, with the same idempotency key
``reminder:<id>``, so the sender drops a second copy of a command that was already
published. Reminders persist in the table, so a restart loses none.

When a tick has fired what was due, the scheduler sleeps until the next pending
reminder's due time (read in the tick's first query), until it is woken
(:meth:`ReminderScheduler.wake`: a reminder scheduled through this replica's API), or
``idle_s`` at most: that safety tick finds the reminders scheduled since (through another
replica, or by the bot in an order's transaction) and those a crashed replica left (due
reminders another replica holds are that replica's to fire). ``tick_s`` is the shortest
sleep when the due time it knows has passed. An idle service costs one transaction every
``idle_s`` (it was one every ``tick_s``, a second).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flowchat_contracts import OutboundCommand
from flowchat_conversation import metrics
from flowchat_conversation.outbox import Outbox
from flowchat_conversation.outreach.ports import SchedulerStore
from flowchat_conversation.outreach.reminders import DueReminder, Send, Skip, Wait, decide
from flowchat_platform.logs import get_logger

log = get_logger(__name__)


@dataclass
class ReminderScheduler:
    store: SchedulerStore
    outbox: Outbox
    tick_s: float = 1.0
    batch: int = 100
    #: The safety tick (reminders scheduled elsewhere since the last tick).
    idle_s: float = 5.0
    _woken: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    #: The earliest due time known of a pending reminder (None: none known).
    _next: datetime | None = field(default=None, init=False, repr=False)

    def wake(self, at: datetime | None = None) -> None:
        """A reminder is due at ``at`` (None: now): tick then, if that is earlier than
        the next tick."""
        at = at or datetime.now(UTC)
        if self._next is None or at < self._next:
            self._next = at
            self._woken.set()  # the sleep is re-armed with the earlier deadline

    async def run(self) -> None:
        while True:
            try:
                if await self.tick() >= self.batch:
                    continue  # a full batch: there may be more due now
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reminder scheduler tick failed")
                await asyncio.sleep(min(5.0, self.tick_s * 5))
            await self._sleep()

    def _timeout(self) -> float:
        """How long to sleep: until the next known due time (``tick_s`` when it has
        passed), ``idle_s`` at most."""
        if self._next is None:
            return self.idle_s
        wait = (self._next - datetime.now(UTC)).total_seconds()
        return min(self.idle_s, wait if wait > 0 else self.tick_s)

    async def _sleep(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), self._timeout())
        self._woken.clear()  # a wake during the coming tick sets it again

    async def tick(self) -> int:
        """Fire what is due (one transaction); the number of reminders handled."""
        async with self.store.due_batch() as tx:
            now, due = await tx.claim(self.batch)
            sends: list[tuple[DueReminder, Send]] = []
            postponed: list[datetime] = []
            for reminder in due:
                decision = decide(reminder, now)
                if isinstance(decision, Skip):
                    await tx.skipped(reminder.reminder_id, decision.reason)
                    metrics.REMINDERS.labels(reminder.kind, "skipped").inc()
                elif isinstance(decision, Wait):
                    await tx.postpone(reminder.reminder_id, decision.until)
                    postponed.append(decision.until)
                else:
                    sends.append((reminder, decision))
            await asyncio.gather(
                *(
                    self.outbox.send(
                        OutboundCommand(
                            tenant_id=r.tenant_id,
                            account_id=r.account_id,
                            correlation_id=r.message_id,
                            message_id=r.message_id,
                            idempotency_key=f"reminder:{r.reminder_id}",
                            to=r.address or r.wa_id,
                            category=send.category,
                            content=send.content,
                        )
                    )
                    for r, send in sends
                )
            )
            for r, send in sends:
                await tx.fired(r.reminder_id, send.outcome)
                metrics.REMINDERS.labels(r.kind, send.outcome).inc()
            self._next = min((t for t in (tx.next_due, *postponed) if t is not None), default=None)
            return len(due)
