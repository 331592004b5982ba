"""The tenant's retention of its webhook events and delivery log: its own number of days,
or the platform's default (``FLOWCHAT_RELAY_RETENTION_DAYS``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from flowchat_relay.deps import RetentionDep, RuntimeDep, TenantId

router = APIRouter(prefix="/v1", tags=["retention"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, unknown or revoked API key"},
    403: {"description": "The API key lacks the admin scope"},
}


class RetentionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"days": 7}]})

    #: Days events and delivery attempts are kept (1 to 3650); null: the default again.
    days: int | None = Field(ge=1, le=3650)


class RetentionOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"days": 7, "default_days": 30, "own": True}]}
    )

    days: int
    default_days: int
    #: Whether the tenant chose ``days`` (else it is the default).
    own: bool


async def _out(tenant_id: str, store: RetentionDep, default_days: int) -> RetentionOut:
    days = await store.retention(tenant_id)
    return RetentionOut(
        days=days if days is not None else default_days,
        default_days=default_days,
        own=days is not None,
    )


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
