"""The query API: tenant-scoped reads of message records, histories and counts.

Every route resolves the caller's tenant first (:data:`TenantId`); a message of
another tenant answers 404 exactly like a message that does not exist. Errors are
raised by the query service and answered by the app's one handler (``app.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from flowchat_platform.http import PageCursor, PageLimit
from flowchat_state_manager.deps import QueryDep, TenantId
from flowchat_state_manager.models import MessageFilter
from flowchat_state_manager.routes.schemas import (
    EventOut,
    EventPage,
    MessageOut,
    MessagePage,
    StatsOut,
)
from flowchat_state_manager.state import Status

router = APIRouter(prefix="/v1", tags=["messages"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, unknown or revoked API key"},
    403: {"description": "The API key lacks the read scope"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"description": "No such message for this tenant"},
}


def _utc(ts: datetime | None) -> datetime | None:
    if ts is None or ts.tzinfo is not None:
        return ts
    return ts.replace(tzinfo=UTC)


@router.get(
    "/messages/by-wamid/{wamid:path}",
    response_model=MessageOut,
    responses=_NOT_FOUND,
    summary="A message by its provider message id (WAMID or Twilio SID)",
)
async def message_by_wamid(wamid: str, tenant: TenantId, query: QueryDep) -> MessageOut:
    return MessageOut.of(await query.by_provider_id(tenant, wamid))


@router.get(
    "/messages/by-idempotency-key/{key}",
    response_model=MessageOut,
    responses=_NOT_FOUND,
    summary="A message by the idempotency key it was sent with",
)
async def message_by_idempotency_key(key: str, tenant: TenantId, query: QueryDep) -> MessageOut:
    return MessageOut.of(await query.by_idempotency_key(tenant, key))


@router.get(
    "/messages",
    response_model=MessagePage,
    responses={**_ERRORS, 400: {"description": "Invalid cursor"}},
    summary="The tenant's messages, newest first, with cursor pagination",
)
async def list_messages(
    tenant: TenantId,
    query: QueryDep,
    recipient: Annotated[
        str | None,
        Query(
            description="The customer: a phone number in any form or a BSUID (either id "
            "of the customer finds the message)"
        ),
    ] = None,
    status: Annotated[Status | None, Query(description="Current status")] = None,
    since: Annotated[datetime | None, Query(description="Created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Created before (ISO 8601)")] = None,
    campaign_id: str | None = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> MessagePage:
    f = MessageFilter(
        recipient=recipient,
        status=status,
        since=_utc(since),
        until=_utc(until),
        campaign_id=campaign_id,
    )
    page = await query.list_messages(tenant, f, cursor=cursor, limit=limit)
    return MessagePage(items=[MessageOut.of(m) for m in page.items], next_cursor=page.next_cursor)


@router.get(
    "/messages/{message_id}",
    response_model=MessageOut,
    responses=_NOT_FOUND,
    summary="A message by FlowChat's message id",
)
async def get_message(
    message_id: Annotated[str, Path(max_length=128)], tenant: TenantId, query: QueryDep
) -> MessageOut:
    return MessageOut.of(await query.get(tenant, message_id))


@router.get(
    "/messages/{message_id}/events",
    response_model=EventPage,
    responses={**_NOT_FOUND, 400: {"description": "Invalid cursor"}},
    summary="A message's status history, in the order FlowChat learned it",
)
async def message_events(
    message_id: Annotated[str, Path(max_length=128)],
    tenant: TenantId,
    query: QueryDep,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> EventPage:
    history, next_cursor = await query.history(tenant, message_id, cursor=cursor, limit=limit)
    return EventPage(items=[EventOut.of(e) for e in history], next_cursor=next_cursor)


@router.get(
    "/stats",
    response_model=StatsOut,
    responses=_ERRORS,
    summary="Counts of messages by status, for a campaign and/or a time range",
)
async def stats(
    tenant: TenantId,
    query: QueryDep,
    campaign_id: str | None = None,
    since: Annotated[datetime | None, Query(description="Created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Created before (ISO 8601)")] = None,
) -> StatsOut:
    since, until = _utc(since), _utc(until)
    s = await query.stats(tenant, campaign_id=campaign_id, since=since, until=until)
    return StatsOut.of(tenant, campaign_id, since, until, s)
