"""The durable reminder scheduler: PostgreSQL is the queue.

Every ``tick_s`` each replica opens a transaction and claims up to ``batch`` due
reminders with ``SELECT … FOR UPDATE SKIP LOCKED``: rows another replica holds are
skipped, never waited for, so replicas share the work and never take the same one.
For each it decides (:func:`flowchat_conversation.outreach.reminders.decide`), publishes the
command with a confirm, and records the outcome in the same transaction; the commit
releases the rows as ``fired`` / ``skipped`` (or ``pending`` with a later ``due_at``).

A replica that dies mid-batch has its transaction rolled back by PostgreSQL: the rows
are ``pending`` again and fire on the next tick, with the same idempotency key
``reminder:<id>``, so the sender drops a second copy of a command that was already
published. Reminders persist in the table, so a restart loses none.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

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

    async def run(self) -> None:
        while True:
            try:
                while await self.tick() >= self.batch:
                    pass  # a full batch: there may be more due now
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reminder scheduler tick failed")
                await asyncio.sleep(min(5.0, self.tick_s * 5))
            await asyncio.sleep(self.tick_s)

    async def tick(self) -> int:
        """Fire what is due (one transaction); the number of reminders handled."""
        async with self.store.due_batch() as tx:
            now, due = await tx.claim(self.batch)
            sends: list[tuple[DueReminder, Send]] = []
            for reminder in due:
                decision = decide(reminder, now)
                if isinstance(decision, Skip):
                    await tx.skipped(reminder.reminder_id, decision.reason)
                    metrics.REMINDERS.labels(reminder.kind, "skipped").inc()
                elif isinstance(decision, Wait):
                    await tx.postpone(reminder.reminder_id, decision.until)
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
            return len(due)
