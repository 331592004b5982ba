"""The sender's internal API (service token only): the DLQ.

- ``GET /internal/v1/dlq?limit=&cursor=&tenant_id=&account_id=&error_code=&reason=&message_id=``
  — parked commands, oldest first (left parked), each with its reason, last error code
  and message, attempts and failure times, as ``{items, next_cursor}``: the cursor counts
  the matching commands already listed (a queue has no other stable key; replaying some
  moves the rest up).
- ``POST /internal/v1/dlq/replay`` ``{limit, tenant_id?, account_id?, error_code?,
  reason?, message_ids?, force?, actor?}`` — publish them back to ``flowchat.outbound``;
  ``force`` also re-sends those whose outcome is unknown (deleting their idempotency
  claim); 503 ``redis_unavailable`` when the idempotency store does not answer
  (:func:`flowchat_sender.routes.error_response`).
- ``POST /internal/v1/dlq/discard`` ``{reason, limit, tenant_id?, account_id?,
  error_code?, message_ids?, actor?}`` — drop them for good: each message is recorded
  ``failed`` (code -26, the reason), then its parked copy is removed.
- ``GET /internal/v1/dlq/audit?limit=`` — the replays and discards, newest first: who
  (``actor``, else the ``X-FlowChat-Actor`` header), what (action, filters, message
  ids), when, and a discard's reason.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, ConfigDict, Field

from flowchat_platform.http import PageCursor, PageLimit
from flowchat_platform.pagination import Page, decode_cursor, encode_cursor
from flowchat_sender.deps import LotDep, ServiceOnly
from flowchat_sender.dlq import Filters

router = APIRouter(prefix="/internal/v1", tags=["internal"])

#: The actor of an action whose caller named nobody.
UNNAMED = "unnamed (service token)"

ActorHeader = Annotated[
    str | None,
    Header(
        alias="X-FlowChat-Actor",
        max_length=200,
        description="Who acts (an operator's name): recorded in the DLQ's audit trail",
    ),
]


class _Selection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=100, ge=1, le=10_000, description="At most this many")
    tenant_id: str | None = Field(default=None, max_length=128)
    account_id: str | None = Field(
        default=None, max_length=128, description="The business number's account id"
    )
    error_code: int | None = Field(default=None, description="The last provider error code")
    message_ids: list[str] | None = Field(default=None, max_length=10_000)
    actor: str | None = Field(
        default=None, max_length=200, description="Who acts (else the X-FlowChat-Actor header)"
    )

    def filters(self, reason: str | None = None) -> Filters:
        return Filters(
            tenant_id=self.tenant_id,
            account_id=self.account_id,
            error_code=self.error_code,
            reason=reason,
            message_ids=frozenset(self.message_ids) if self.message_ids is not None else None,
        )


class ReplayIn(_Selection):
    reason: str | None = Field(
        default=None, max_length=200, description="Only those whose parking reason contains it"
    )
    force: bool = False


class DiscardIn(_Selection):
    reason: str = Field(
        min_length=3, max_length=1000, description="Why (audited; the message's failure text)"
    )
    reason_contains: str | None = Field(
        default=None, max_length=200, description="Only those whose parking reason contains it"
    )


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
    tenant_id: Annotated[str | None, Query(max_length=128)] = None,
    account_id: Annotated[str | None, Query(max_length=128)] = None,
    error_code: Annotated[int | None, Query()] = None,
    reason: Annotated[str | None, Query(max_length=200)] = None,
    message_id: Annotated[list[str] | None, Query()] = None,
) -> ParkedPage:
    filters = Filters(
        tenant_id=tenant_id,
        account_id=account_id,
        error_code=error_code,
        reason=reason,
        message_ids=frozenset(message_id) if message_id else None,
    )
    position = decode_cursor(cursor, int)
    skip = max(0, position[0]) if position else 0
    parked = await lot.list(limit=skip + limit + 1, filters=filters)
    items = [ParkedOut(**p.public()) for p in parked[skip : skip + limit]]
    more = len(parked) > skip + limit
    return ParkedPage(items=items, next_cursor=encode_cursor((skip + limit,)) if more else None)


@router.post("/dlq/replay", dependencies=[ServiceOnly])
async def replay(body: ReplayIn, lot: LotDep, x_flowchat_actor: ActorHeader = None) -> Any:
    report = await lot.replay(
        limit=body.limit,
        filters=body.filters(body.reason),
        force=body.force,
        actor=body.actor or x_flowchat_actor or UNNAMED,
    )
    return report.public()


@router.post("/dlq/discard", dependencies=[ServiceOnly])
async def discard(body: DiscardIn, lot: LotDep, x_flowchat_actor: ActorHeader = None) -> Any:
    report = await lot.discard(
        reason=body.reason,
        actor=body.actor or x_flowchat_actor or UNNAMED,
        limit=body.limit,
        filters=body.filters(body.reason_contains),
    )
    return report.public()


@router.get("/dlq/audit", dependencies=[ServiceOnly])
async def audit(lot: LotDep, limit: Annotated[int, Query(ge=1, le=1_000)] = 100) -> dict[str, Any]:
    entries = await lot.recent_actions(limit)
    return {"items": [e.public() for e in entries], "next_cursor": None}
