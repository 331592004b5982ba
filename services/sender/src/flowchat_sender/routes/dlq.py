"""The sender's internal API (service token only): the DLQ.

- ``GET /internal/v1/dlq?limit=&cursor=&reason=&message_id=`` — parked commands, oldest
  first (left parked), as ``{items, next_cursor}``: the cursor counts the matching commands
  already listed (a queue has no other stable key; replaying some moves the rest up).
- ``POST /internal/v1/dlq/replay`` ``{limit, reason?, message_ids?, force?}`` — publish
  them back to ``flowchat.outbound``; ``force`` also re-sends those whose outcome is
  unknown (deleting their idempotency claim); 503 ``redis_unavailable`` when the
  idempotency store does not answer (:func:`flowchat_sender.routes.error_response`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from flowchat_platform.http import PageCursor, PageLimit
from flowchat_platform.pagination import Page, decode_cursor, encode_cursor
from flowchat_sender.deps import LotDep, ServiceOnly

router = APIRouter(prefix="/internal/v1", tags=["internal"])


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=100, ge=1, le=10_000)
    reason: str | None = Field(default=None, max_length=200)
    message_ids: list[str] | None = Field(default=None, max_length=10_000)
    force: bool = False


class ParkedOut(BaseModel):
    """One parked command: whose, why, and its retry bookkeeping (absent: not known)."""

    message_id: str | None = None
    tenant_id: str | None = None
    account_id: str | None = None
    idempotency_key: str | None = None
    to: str | None = None
    category: str | None = None
    reason: str
    error_code: int | None = None
    error_message: str | None = None
    attempts: int | None = None
    first_failure: str | None = None
    last_failure: str | None = None
    parked_at: str | None = None


class ParkedPage(Page[ParkedOut]):
    """Parked commands, oldest first."""


@router.get("/dlq", dependencies=[ServiceOnly])
async def list_parked(
    lot: LotDep,
    limit: PageLimit = 100,
    cursor: PageCursor = None,
    reason: Annotated[str | None, Query(max_length=200)] = None,
    message_id: Annotated[list[str] | None, Query()] = None,
) -> ParkedPage:
    ids = frozenset(message_id) if message_id else None
    position = decode_cursor(cursor, int)
    skip = max(0, position[0]) if position else 0
    parked = await lot.list(limit=skip + limit + 1, reason=reason, message_ids=ids)
    items = [ParkedOut(**p.public()) for p in parked[skip : skip + limit]]
    more = len(parked) > skip + limit
    return ParkedPage(items=items, next_cursor=encode_cursor((skip + limit,)) if more else None)


@router.post("/dlq/replay", dependencies=[ServiceOnly])
async def replay(body: ReplayIn, lot: LotDep) -> dict[str, Any]:
    report = await lot.replay(
        limit=body.limit,
        reason=body.reason,
        message_ids=frozenset(body.message_ids) if body.message_ids is not None else None,
        force=body.force,
    )
    return report.public()
