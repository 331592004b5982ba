"""The tenant's retention of message content (the history's text): its own number of
days, or the platform's default (``FLOWCHAT_INBOX_RETENTION_DAYS``). Managers set it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from flowchat_inbox.deps import Caller, HistoryDep, RuntimeDep
from flowchat_platform.retention import RetentionIn, RetentionOut

router = APIRouter(prefix="/v1", tags=["retention"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or unknown credentials"},
    403: {"description": "Not a manager (owner, admin, an API key with the admin scope)"},
}


@router.get("/retention", response_model=RetentionOut, responses=_ERRORS)
async def get_retention(caller: Caller, history: HistoryDep, runtime: RuntimeDep) -> RetentionOut:
    days, own = await history.retention(caller.tenant_id, runtime.retention_days)
    return RetentionOut(days=days, default_days=runtime.retention_days, own=own)


@router.put(
    "/retention",
    response_model=RetentionOut,
    responses={**_ERRORS, 422: {"description": "Days out of range"}},
)
async def set_retention(
    caller: Caller, history: HistoryDep, runtime: RuntimeDep, body: RetentionIn
) -> RetentionOut:
    """Keep this tenant's message content ``days`` days (the next purge applies it)."""
    caller.require_manage()
    await history.set_retention(caller.tenant_id, body.days)
    days, own = await history.retention(caller.tenant_id, runtime.retention_days)
    return RetentionOut(days=days, default_days=runtime.retention_days, own=own)
