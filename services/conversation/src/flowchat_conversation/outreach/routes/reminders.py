"""HTTP edge: the tenant API for reminders (schedule, list, get, cancel)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from flowchat_conversation.deps import OutreachDep, TenantAdmin
from flowchat_conversation.outreach.reminders import Reminder, ReminderIn

router = APIRouter(prefix="/v1/tenants/{tenant_id}")


class ReminderList(BaseModel):
    items: list[Reminder]


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
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ReminderList:
    return ReminderList(
        items=await outreach.reminders.list_reminders(tenant_id, state=state, limit=limit)
    )


@router.get("/reminders/{reminder_id}", tags=["reminders"])
async def get_reminder(tenant_id: TenantAdmin, outreach: OutreachDep, reminder_id: str) -> Reminder:
    return await outreach.reminders.get(tenant_id, reminder_id)


@router.delete("/reminders/{reminder_id}", tags=["reminders"])
async def cancel_reminder(
    tenant_id: TenantAdmin, outreach: OutreachDep, reminder_id: str
) -> Reminder:
    return await outreach.reminders.cancel(tenant_id, reminder_id)
