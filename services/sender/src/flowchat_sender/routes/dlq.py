"""The sender's internal API (service token only): the DLQ.

- ``GET /internal/v1/dlq?limit=&tenant_id=&account_id=&error_code=&reason=&message_id=``
  — parked commands, oldest first (left parked), each with its reason, last error code
  and message, attempts and failure times.
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


@router.get("/dlq", dependencies=[ServiceOnly])
async def list_parked(
    lot: LotDep,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
    tenant_id: Annotated[str | None, Query(max_length=128)] = None,
    account_id: Annotated[str | None, Query(max_length=128)] = None,
    error_code: Annotated[int | None, Query()] = None,
    reason: Annotated[str | None, Query(max_length=200)] = None,
    message_id: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    filters = Filters(
        tenant_id=tenant_id,
        account_id=account_id,
        error_code=error_code,
        reason=reason,
        message_ids=frozenset(message_id) if message_id else None,
    )
    parked = await lot.list(limit=limit, filters=filters)
    # a queue has no stable position to resume from: narrow the filters instead
    return {"items": [p.public() for p in parked], "next_cursor": None, "count": len(parked)}


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
