"""The tenant's retention of its webhook events and delivery log: its own number of days,
or the platform's default (``FLOWCHAT_RELAY_RETENTION_DAYS``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from flowchat_platform.retention import RetentionIn, RetentionOut
from flowchat_relay.deps import RetentionDep, RuntimeDep, TenantId

router = APIRouter(prefix="/v1", tags=["retention"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, unknown or revoked API key"},
    403: {"description": "The API key lacks the admin scope"},
}


async def _out(tenant_id: str, store: RetentionDep, default_days: int) -> RetentionOut:
    return RetentionOut.of(await store.retention(tenant_id), default_days)


@router.get("/retention", response_model=RetentionOut, responses=_ERRORS)
async def get_retention(
    tenant_id: TenantId, store: RetentionDep, runtime: RuntimeDep
) -> RetentionOut:
    return await _out(tenant_id, store, runtime.retention_days)


@router.put(
    "/retention",
    response_model=RetentionOut,
    responses={**_ERRORS, 422: {"description": "Days out of range"}},
)
async def set_retention(
    tenant_id: TenantId, store: RetentionDep, runtime: RuntimeDep, body: RetentionIn
) -> RetentionOut:
    """Keep this tenant's webhook events and delivery attempts ``days`` days (an event
    still waiting at an endpoint stays); the next purge applies it."""
    await store.set_retention(tenant_id, body.days)
    return await _out(tenant_id, store, runtime.retention_days)
