"""HTTP edge: the tenant API for contacts (upsert, search, count, CSV import, marketing
preference)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from flowchat_conversation import metrics
from flowchat_conversation.deps import OutreachDep, TenantAdmin, csv_text
from flowchat_conversation.outreach.contacts import (
    Contact,
    ContactIn,
    ContactPatch,
    MarketingPreference,
    Segment,
)
from flowchat_platform.http import ApiError, PageCursor, PageLimit
from flowchat_platform.openapi import csv_request_body
from flowchat_platform.pagination import MAX_LIMIT, Page, decode_cursor, page_of

#: PostgreSQL's bigint: larger ids and cursors are a 422, not a database error.
BIGINT_MAX = 2**63 - 1
ContactId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]

router = APIRouter(prefix="/v1/tenants/{tenant_id}")
MAX_CSV_BYTES = 20 * 1024 * 1024


class ContactsWritten(BaseModel):
    created: int
    updated: int
    opt_out_kept: int


class ContactPage(Page[Contact]):
    """Contacts by ``contact_id``."""


class SearchIn(Segment):
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(
        default=None, max_length=500, description="The previous page's `next_cursor`"
    )


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


async def _search(
    outreach: OutreachDep, tenant_id: str, segment: Segment, limit: int, cursor: str | None
) -> ContactPage:
    after = decode_cursor(cursor, int)
    rows = await outreach.contacts.search(
        tenant_id, segment, limit=limit + 1, after_id=after[0] if after else 0
    )
    items, next_cursor = page_of(rows, limit, lambda c: (c.contact_id,))
    return ContactPage(items=items, next_cursor=next_cursor)


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
    limit: PageLimit = 100,
    cursor: PageCursor = None,
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
    return await _search(outreach, tenant_id, segment, limit, cursor)


@router.post("/contacts/search", tags=["contacts"])
async def search_contacts(
    tenant_id: TenantAdmin, outreach: OutreachDep, body: SearchIn
) -> ContactPage:
    """Search with a full segment (as campaigns use it)."""
    segment = Segment.model_validate(body.model_dump(exclude={"limit", "cursor"}))
    return await _search(outreach, tenant_id, segment, body.limit, body.cursor)


@router.post("/contacts/count", tags=["contacts"])
async def count_contacts(tenant_id: TenantAdmin, outreach: OutreachDep, body: Segment) -> Count:
    """How many contacts a segment matches."""
    return Count(count=await outreach.contacts.count(tenant_id, body))


@router.post(
    "/contacts/import",
    tags=["contacts"],
    openapi_extra=csv_request_body(
        "phone,name,tags,groups,marketing_opt_in,city\n"
        "+2348012345678,Ada Obi,vip;lagos,retail,yes,Lagos\n",
        f"A UTF-8 CSV file (header row first), at most {MAX_CSV_BYTES} bytes",
    ),
)
async def import_contacts(
    tenant_id: TenantAdmin, outreach: OutreachDep, request: Request
) -> ImportOut:
    """Import a CSV file (the raw body): ``phone`` required, ``name``, ``status``, ``tags``,
    ``groups``, ``marketing_opt_in``, other columns become attributes. Answers a report
    listing every rejected row with its line number and reasons."""
    text = await csv_text(request, max_bytes=MAX_CSV_BYTES)
    report = await outreach.contacts.import_csv(tenant_id, text)
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
    return await outreach.contacts.get(tenant_id, contact_id)


@router.patch("/contacts/{contact_id}", tags=["contacts"])
async def patch_contact(
    tenant_id: TenantAdmin, outreach: OutreachDep, contact_id: ContactId, body: ContactPatch
) -> Contact:
    return await outreach.contacts.patch(tenant_id, contact_id, body)


@router.put("/contacts/{contact_id}/marketing", tags=["contacts"])
async def set_marketing(
    tenant_id: TenantAdmin, outreach: OutreachDep, contact_id: ContactId, body: MarketingPreference
) -> Contact:
    """Record a marketing opt-in or opt-out given through the tenant (source ``api``)."""
    contact = await outreach.contacts.get(tenant_id, contact_id)
    await outreach.contacts.set_preference(
        tenant_id, contact.wa_id, body.opt_in, source="api", at=datetime.now(UTC)
    )
    return await outreach.contacts.get(tenant_id, contact_id)
