"""The sender's internal API (service token only): the DLQ.

- ``GET /internal/v1/dlq?limit=&reason=&message_id=`` — parked commands, oldest first
  (left parked).
- ``POST /internal/v1/dlq/replay`` ``{limit, reason?, message_ids?, force?}`` — publish
  them back to ``flowchat.outbound``; ``force`` also re-sends those whose outcome is
  unknown (deleting their idempotency claim).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from flowchat_platform.auth import authenticate
from flowchat_platform.errors import StoreUnavailable
from flowchat_platform.http import ApiError
from flowchat_sender.dlq import ParkingLot

router = APIRouter(prefix="/internal/v1", tags=["internal"])


async def require_service(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> None:
    caller = await authenticate(
        authorization, service_token=request.app.state.service_token, tenants=None
    )
    if not caller.is_service:  # pragma: no cover - tenants=None never yields a tenant
        raise ApiError(403, "forbidden", "FlowChat's service token is required")


def parking_lot(request: Request) -> ParkingLot:
    lot: ParkingLot | None = getattr(request.app.state, "parking_lot", None)
    if lot is None:
        raise ApiError(503, "not_ready", "the sender is starting")
    return lot


Lot = Annotated[ParkingLot, Depends(parking_lot)]


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=100, ge=1, le=10_000)
    reason: str | None = Field(default=None, max_length=200)
    message_ids: list[str] | None = Field(default=None, max_length=10_000)
    force: bool = False


@router.get("/dlq", dependencies=[Depends(require_service)])
async def list_parked(
    lot: Lot,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
    reason: Annotated[str | None, Query(max_length=200)] = None,
    message_id: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    ids = frozenset(message_id) if message_id else None
    parked = await lot.list(limit=limit, reason=reason, message_ids=ids)
    return {"items": [p.public() for p in parked], "count": len(parked)}


@router.post("/dlq/replay", dependencies=[Depends(require_service)])
async def replay(body: ReplayIn, lot: Lot) -> dict[str, Any]:
    try:
        report = await lot.replay(
            limit=body.limit,
            reason=body.reason,
            message_ids=frozenset(body.message_ids) if body.message_ids is not None else None,
            force=body.force,
        )
    except StoreUnavailable as exc:
        raise ApiError(503, "redis_unavailable", "the idempotency store did not answer") from exc
    return report.public()
