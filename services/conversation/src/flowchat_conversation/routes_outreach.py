"""HTTP edge: the tenant API for contacts, campaigns and reminders.

Auth as the other tenant routes (:data:`~flowchat_conversation.deps.TenantAdmin`): the
service token, or a tenant API key with the ``admin`` scope for its own tenant only.
Refusals use FlowChat's error body ``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from flowchat_conversation import metrics
from flowchat_conversation.campaigns import Campaign, CampaignIn, CampaignMetrics, DryRun, DryRunIn
from flowchat_conversation.contacts import (
    Contact,
    ContactIn,
    ContactPatch,
    CsvFormatError,
    MarketingPreference,
    Segment,
)
from flowchat_conversation.deps import TenantAdmin
from flowchat_conversation.errors import OutreachError
from flowchat_conversation.outreach import Outreach
from flowchat_conversation.reminders import Reminder, ReminderIn
from flowchat_platform.http import ApiError

#: PostgreSQL's bigint: larger ids and cursors are a 422, not a database error.
BIGINT_MAX = 2**63 - 1
ContactId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]

router = APIRouter(prefix="/v1/tenants/{tenant_id}")
MAX_CSV_BYTES = 20 * 1024 * 1024


@dataclass
class OutreachSlot:
    """Filled by the lifespan once the database and broker are up."""

    value: Outreach | None = None


def _outreach(request: Request) -> Outreach:
    slot: OutreachSlot | None = getattr(request.app.state, "outreach", None)
    if slot is None or slot.value is None:
        raise ApiError(503, "not_ready", "the database is not connected yet")
    return slot.value


OutreachDep = Annotated[Outreach, Depends(_outreach)]


@contextmanager
def refusals() -> Iterator[None]:
    try:
        yield
    except OutreachError as exc:
        raise ApiError(exc.status, exc.code, exc.message, details=exc.details) from exc


# ===================================================================== contacts


class ContactsWritten(BaseModel):
    created: int
    updated: int
    opt_out_kept: int


class ContactPage(BaseModel):
    items: list[Contact]
    #: Pass as ``after`` for the next page; None on the last one.
    next_after: int | None


class SearchIn(Segment):
    limit: int = Field(default=100, ge=1, le=1000)
    after: int = Field(default=0, ge=0, le=BIGINT_MAX)


class Count(BaseModel):
    count: int


class RejectedOut(BaseModel):
    line: int
    phone: str
    errors: list[str]


class ImportOut(BaseModel):
    received: int
    imported: int
    created: int
    updated: int
    opt_out_kept: int
    rejected: list[RejectedOut]


def _page(items: list[Contact], limit: int) -> ContactPage:
    return ContactPage(
        items=items, next_after=items[-1].contact_id if len(items) == limit else None
    )


@router.post("/contacts", tags=["contacts"])
async def upsert_contacts(
    tenant_id: TenantAdmin, outreach: OutreachDep, body: ContactIn | list[ContactIn]
) -> ContactsWritten:
    """Create or update contacts, matched by phone (only the given fields change)."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise ApiError(422, "invalid_request", "no contacts given")
    if len(items) > 1000:
        raise ApiError(413, "too_many_contacts", "at most 1000 contacts per request; use import")
    with refusals():
        counts = await outreach.contacts.upsert(tenant_id, items)
    return ContactsWritten(
        created=counts.created, updated=counts.updated, opt_out_kept=counts.opt_out_kept
    )


@router.get("/contacts", tags=["contacts"])
async def list_contacts(
    tenant_id: TenantAdmin,
    outreach: OutreachDep,
    q: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[list[Literal["active", "inactive", "blocked"]] | None, Query()] = None,
    tag: Annotated[list[str] | None, Query(description="has every one of these tags")] = None,
    any_tag: Annotated[list[str] | None, Query(description="has one of these tags")] = None,
    group: Annotated[list[str] | None, Query(description="in one of these groups")] = None,
    attr: Annotated[list[str] | None, Query(description="key=value, every one")] = None,
    marketing_opt_in: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[int, Query(ge=0, le=BIGINT_MAX)] = 0,
) -> ContactPage:
    """Search contacts (keyset pagination by ``contact_id``)."""
    attributes: dict[str, str] = {}
    for item in attr or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ApiError(422, "invalid_request", f"attr must be key=value, not {item!r}")
        attributes[key] = value
    try:
        segment = Segment(
            statuses=status,
            tags_all=tag or [],
            tags_any=any_tag or [],
            groups_any=group or [],
            attributes=attributes,
            marketing_opt_in=marketing_opt_in,
            q=q,
        )
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from exc
    items = await outreach.contacts.search(tenant_id, segment, limit=limit, after_id=after)
    return _page(items, limit)


@router.post("/contacts/search", tags=["contacts"])
async def search_contacts(
    tenant_id: TenantAdmin, outreach: OutreachDep, body: SearchIn
) -> ContactPage:
    """Search with a full segment (as campaigns use it)."""
    limit = max(1, min(body.limit, 1000))
    segment = Segment.model_validate(body.model_dump(exclude={"limit", "after"}))
    items = await outreach.contacts.search(tenant_id, segment, limit=limit, after_id=body.after)
    return _page(items, limit)


@router.post("/contacts/count", tags=["contacts"])
async def count_contacts(tenant_id: TenantAdmin, outreach: OutreachDep, body: Segment) -> Count:
    """How many contacts a segment matches."""
    return Count(count=await outreach.contacts.count(tenant_id, body))


@router.post("/contacts/import", tags=["contacts"])
async def import_contacts(
    tenant_id: TenantAdmin, outreach: OutreachDep, request: Request
) -> ImportOut:
    """Import a CSV file (the raw body): ``phone`` required, ``name``, ``status``, ``tags``,
    ``groups``, ``marketing_opt_in``, other columns become attributes. Answers a report
    listing every rejected row with its line number and reasons."""
    body = await request.body()
    if len(body) > MAX_CSV_BYTES:
        raise ApiError(413, "too_large", f"the CSV file is larger than {MAX_CSV_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(422, "invalid_csv", "the CSV file must be UTF-8") from exc
    try:
        report = await outreach.contacts.import_csv(tenant_id, text)
    except CsvFormatError as exc:
        raise ApiError(422, exc.code, exc.message) from exc
    metrics.CONTACT_ROWS.labels("accepted").inc(report.created + report.updated)
    metrics.CONTACT_ROWS.labels("rejected").inc(len(report.rejected))
    return ImportOut(
        received=report.received,
        imported=report.created + report.updated,
        created=report.created,
        updated=report.updated,
        opt_out_kept=report.opt_out_kept,
        rejected=[
            RejectedOut(line=r.line, phone=r.phone, errors=r.errors) for r in report.rejected
        ],
    )


@router.get("/contacts/{contact_id}", tags=["contacts"])
async def get_contact(
    tenant_id: TenantAdmin, outreach: OutreachDep, contact_id: ContactId
) -> Contact:
    with refusals():
        return await outreach.contacts.get(tenant_id, contact_id)


@router.patch("/contacts/{contact_id}", tags=["contacts"])
async def patch_contact(
    tenant_id: TenantAdmin, outreach: OutreachDep, contact_id: ContactId, body: ContactPatch
) -> Contact:
    with refusals():
        return await outreach.contacts.patch(tenant_id, contact_id, body)


@router.put("/contacts/{contact_id}/marketing", tags=["contacts"])
async def set_marketing(
    tenant_id: TenantAdmin, outreach: OutreachDep, contact_id: ContactId, body: MarketingPreference
) -> Contact:
    """Record a marketing opt-in or opt-out given through the tenant (source ``api``)."""
    with refusals():
        contact = await outreach.contacts.get(tenant_id, contact_id)
        await outreach.contacts.set_preference(
            tenant_id, contact.wa_id, body.opt_in, source="api", at=datetime.now(UTC)
        )
        return await outreach.contacts.get(tenant_id, contact_id)


# ===================================================================== campaigns


class CampaignList(BaseModel):
    items: list[Campaign]


@router.post("/campaigns/dry-run", tags=["campaigns"])
async def dry_run(tenant_id: TenantAdmin, outreach: OutreachDep, body: DryRunIn) -> DryRun:
    """Every check of create, nothing written: counts, exclusions and rendered previews."""
    with refusals():
        return await outreach.campaigns.dry_run(tenant_id, body)


@router.post("/campaigns", status_code=201, tags=["campaigns"])
async def create_campaign(
    tenant_id: TenantAdmin, outreach: OutreachDep, body: CampaignIn
) -> Campaign:
    """Create a campaign (``draft``) after checking the template at the provider, the
    parameters for every eligible contact, the segment and the schedule."""
    with refusals():
        return await outreach.campaigns.create(tenant_id, body)


@router.get("/campaigns", tags=["campaigns"])
async def list_campaigns(
    tenant_id: TenantAdmin,
    outreach: OutreachDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> CampaignList:
    return CampaignList(items=await outreach.campaigns.list_campaigns(tenant_id, limit=limit))


@router.get("/campaigns/{campaign_id}", tags=["campaigns"])
async def get_campaign(tenant_id: TenantAdmin, outreach: OutreachDep, campaign_id: str) -> Campaign:
    with refusals():
        return await outreach.campaigns.get(tenant_id, campaign_id)


@router.get("/campaigns/{campaign_id}/metrics", tags=["campaigns"])
async def campaign_metrics(
    tenant_id: TenantAdmin, outreach: OutreachDep, campaign_id: str
) -> CampaignMetrics:
    """Live counts: targeted, excluded by reason, queued, sent, delivered, read, failed by
    error code, replied."""
    with refusals():
        return await outreach.campaigns.metrics(tenant_id, campaign_id)


@router.post("/campaigns/{campaign_id}/{action}", tags=["campaigns"])
async def control_campaign(
    tenant_id: TenantAdmin,
    outreach: OutreachDep,
    campaign_id: str,
    action: Literal["start", "pause", "resume", "cancel"],
) -> Campaign:
    """``start`` (now, or at its schedule), ``pause``, ``resume``, ``cancel``."""
    service = outreach.campaigns
    with refusals():
        if action == "start":
            return await service.start(tenant_id, campaign_id)
        if action == "pause":
            return await service.pause(tenant_id, campaign_id)
        if action == "resume":
            return await service.resume(tenant_id, campaign_id)
        return await service.cancel(tenant_id, campaign_id)


# ===================================================================== reminders


class ReminderList(BaseModel):
    items: list[Reminder]


@router.post("/reminders", status_code=201, tags=["reminders"])
async def schedule_reminder(
    tenant_id: TenantAdmin, outreach: OutreachDep, body: ReminderIn, response: Response
) -> Reminder:
    """Schedule a reminder; with a ``dedupe_key`` used before, answers 200 and the
    existing reminder."""
    with refusals():
        reminder, created = await outreach.reminders.schedule(tenant_id, body)
    if not created:
        response.status_code = 200
    return reminder


@router.get("/reminders", tags=["reminders"])
async def list_reminders(
    tenant_id: TenantAdmin,
    outreach: OutreachDep,
    state: Literal["pending", "fired", "skipped", "cancelled"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ReminderList:
    return ReminderList(
        items=await outreach.reminders.list_reminders(tenant_id, state=state, limit=limit)
    )


@router.get("/reminders/{reminder_id}", tags=["reminders"])
async def get_reminder(tenant_id: TenantAdmin, outreach: OutreachDep, reminder_id: str) -> Reminder:
    with refusals():
        return await outreach.reminders.get(tenant_id, reminder_id)


@router.delete("/reminders/{reminder_id}", tags=["reminders"])
async def cancel_reminder(
    tenant_id: TenantAdmin, outreach: OutreachDep, reminder_id: str
) -> Reminder:
    with refusals():
        return await outreach.reminders.cancel(tenant_id, reminder_id)
