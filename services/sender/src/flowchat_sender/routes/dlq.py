"""The sender's internal API (service token only): the DLQ.

- ``GET /internal/v1/dlq?limit=&reason=&message_id=`` — parked commands, oldest first
  (left parked).
- ``POST /internal/v1/dlq/replay`` ``{limit, reason?, message_ids?, force?}`` — publish
  them back to ``flowchat.outbound``; ``force`` also re-sends those whose outcome is
  unknown (deleting their idempotency claim); 503 ``redis_unavailable`` when the
  idempotency store does not answer (:func:`flowchat_sender.routes.error_response`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from flowchat_sender.deps import LotDep, ServiceOnly

router = APIRouter(prefix="/internal/v1", tags=["internal"])


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=100, ge=1, le=10_000)
    reason: str | None = Field(default=None, max_length=200)
    message_ids: list[str] | None = Field(default=None, max_length=10_000)
    force: bool = False


@router.get("/dlq", dependencies=[ServiceOnly])
async def list_parked(
    lot: LotDep,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
    reason: Annotated[str | None, Query(max_length=200)] = None,
    message_id: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    ids = frozenset(message_id) if message_id else None
    parked = await lot.list(limit=limit, reason=reason, message_ids=ids)
    return {"items": [p.public() for p in parked], "count": len(parked)}


@router.post("/dlq/replay", dependencies=[ServiceOnly])
async def replay(body: ReplayIn, lot: LotDep) -> dict[str, Any]:
    report = await lot.replay(
        limit=body.limit,
        reason=body.reason,
        message_ids=frozenset(body.message_ids) if body.message_ids is not None else None,
        force=body.force,
    )
    return report.public()
