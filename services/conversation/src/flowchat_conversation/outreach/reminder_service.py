"""The reminder service: schedule, list, get and cancel reminders (no I/O here: the
store comes in through :class:`~flowchat_conversation.outreach.ports.ReminderStore`; the
values, the firing rules and the bot's reminders are in
:mod:`~flowchat_conversation.outreach.reminders`; the scheduler fires them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flowchat_conversation.errors import InvalidState, OutreachError, OutreachNotFound
from flowchat_conversation.outreach.contacts import customer_id
from flowchat_conversation.outreach.ports import ReminderStore
from flowchat_conversation.outreach.reminder_kinds import DEFAULT_CATEGORY, ReminderKind
from flowchat_conversation.outreach.reminders import (
    NewReminder,
    Reminder,
    ReminderIn,
    reminder_id,
)
from flowchat_conversation.outreach.template_catalog import ParameterMap


@dataclass
class ReminderService:
    store: ReminderStore
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    #: Tells this replica's scheduler a reminder is due then (None: nobody to tell).
    wake: Callable[[datetime], None] | None = None

    async def schedule(self, tenant_id: str, body: ReminderIn) -> tuple[Reminder, bool]:
        try:
            wa_id = customer_id(body.phone)
        except ValueError as exc:
            raise OutreachError(str(exc), code="invalid_phone") from exc
        now = self.clock()
        due = body.due_at if body.due_at is not None else now + timedelta(seconds=body.delay_s or 0)
        if due < now - timedelta(minutes=1):
            raise OutreachError("due_at is in the past", code="schedule_in_past")
        if body.template is not None:
            ParameterMap.model_validate(body.template.parameters.model_dump())
        rid = reminder_id()
        stored, created = await self.store.insert_reminder(
            NewReminder(
                reminder_id=rid,
                tenant_id=tenant_id,
                account_id=body.account_id,
                wa_id=wa_id,
                kind=body.kind,
                due_at=due.astimezone(UTC),
                category=body.category or DEFAULT_CATEGORY[body.kind],
                text=body.text,
                template=body.template.model_dump(exclude_none=True) if body.template else None,
                reference=body.reference,
                dedupe_key=body.dedupe_key,
                message_id=rid,
            )
        )
        if created and self.wake is not None:
            self.wake(stored.due_at)
        return stored, created

    async def get(self, tenant_id: str, reminder_id: str) -> Reminder:
        reminder = await self.store.get_reminder(tenant_id, reminder_id)
        if reminder is None:
            raise OutreachNotFound("reminder", reminder_id)
        return reminder

    async def list_reminders(
        self,
        tenant_id: str,
        *,
        state: str | None = None,
        limit: int = 100,
        after: tuple[datetime, str] | None = None,
    ) -> list[Reminder]:
        return await self.store.list_reminders(tenant_id, state=state, limit=limit, after=after)

    async def cancel(self, tenant_id: str, reminder_id: str) -> Reminder:
        reminder = await self.store.cancel_reminder(tenant_id, reminder_id)
        if reminder is None:
            current = await self.get(tenant_id, reminder_id)
            raise InvalidState(f"reminder {reminder_id} is {current.state}")
        return reminder

    async def cancel_reference(self, tenant_id: str, kind: ReminderKind, reference: str) -> int:
        """Cancel the pending reminders of ``kind`` about ``reference`` (e.g. an order paid)."""
        return await self.store.cancel_reference(tenant_id, kind, reference)
