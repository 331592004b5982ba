"""The tenant's retention of its message records (statuses, pricing, the recipients'
sealed ids): its own number of days, or the platform's default
(``FLOWCHAT_STATE_MANAGER_RETENTION_DAYS``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from flowchat_platform.retention import RetentionIn, RetentionOut
from flowchat_state_manager.deps import AdminTenantId, RetentionDep, RuntimeDep

router = APIRouter(prefix="/v1", tags=["retention"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, unknown or revoked API key"},
    403: {"description": "The API key lacks the admin scope"},
}


@router.get("/retention", response_model=RetentionOut, responses=_ERRORS)
async def get_retention(
    tenant_id: AdminTenantId, store: RetentionDep, runtime: RuntimeDep
) -> RetentionOut:
    return RetentionOut.of(await store.retention(tenant_id), runtime.retention_days)


@router.put(
    "/retention",
    response_model=RetentionOut,
    responses={**_ERRORS, 422: {"description": "Days out of range"}},
)
async def set_retention(
    tenant_id: AdminTenantId, store: RetentionDep, runtime: RuntimeDep, body: RetentionIn
) -> RetentionOut:
    """Keep this tenant's message records ``days`` days; the next purge applies it (a
    record is deleted within a purge interval of passing it)."""
    await store.set_retention(tenant_id, body.days)
    return RetentionOut.of(await store.retention(tenant_id), runtime.retention_days)
