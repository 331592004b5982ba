"""HTTP edge: the tenant API for reminders (schedule, list, get, cancel)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Response

from flowchat_conversation.deps import OutreachDep, TenantAdmin
from flowchat_conversation.outreach.reminders import Reminder, ReminderIn
from flowchat_platform.http import PageCursor, PageLimit
from flowchat_platform.pagination import Page, decode_cursor, page_of

router = APIRouter(prefix="/v1/tenants/{tenant_id}")


class ReminderList(Page[Reminder]):
    """Reminders by due time."""


@router.post("/reminders", status_code=201, tags=["reminders"])
async def schedule_reminder(
    tenant_id: TenantAdmin, outreach: OutreachDep, body: ReminderIn, response: Response
) -> Reminder:
    """Schedule a reminder; with a ``dedupe_key`` used before, answers 200 and the
    existing reminder."""
    reminder, created = await outreach.reminders.schedule(tenant_id, body)
    if not created:
        response.status_code = 200
    return reminder


@router.get("/reminders", tags=["reminders"])
async def list_reminders(
    tenant_id: TenantAdmin,
    outreach: OutreachDep,
    state: Literal["pending", "fired", "skipped", "cancelled"] | None = None,
    limit: PageLimit = 100,
    cursor: PageCursor = None,
) -> ReminderList:
    key = decode_cursor(cursor, datetime, str)
    rows = await outreach.reminders.list_reminders(
        tenant_id, state=state, limit=limit + 1, after=(key[0], key[1]) if key else None
    )
    items, next_cursor = page_of(rows, limit, lambda r: (r.due_at, r.reminder_id))
    return ReminderList(items=items, next_cursor=next_cursor)


@router.get("/reminders/{reminder_id}", tags=["reminders"])
async def get_reminder(tenant_id: TenantAdmin, outreach: OutreachDep, reminder_id: str) -> Reminder:
    return await outreach.reminders.get(tenant_id, reminder_id)


@router.delete(
    "/reminders/{reminder_id}",
    tags=["reminders"],
    responses={409: {"description": "The reminder is no longer pending"}},
)
async def cancel_reminder(
    tenant_id: TenantAdmin, outreach: OutreachDep, reminder_id: str
) -> Reminder:
    return await outreach.reminders.cancel(tenant_id, reminder_id)
