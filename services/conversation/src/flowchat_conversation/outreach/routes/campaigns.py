"""HTTP edge: the tenant API for campaigns (dry run, create, list, metrics, control)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from flowchat_conversation.deps import OutreachDep, TenantAdmin
from flowchat_conversation.outreach.campaigns import (
    Campaign,
    CampaignIn,
    CampaignMetrics,
    DryRun,
    DryRunIn,
)
from flowchat_platform.http import PageCursor, PageLimit
from flowchat_platform.pagination import Page, decode_cursor, page_of

router = APIRouter(prefix="/v1/tenants/{tenant_id}")


class CampaignList(Page[Campaign]):
    """Campaigns, newest first."""


class TemplateOut(BaseModel):
    """One template of the provider's catalog, any status (campaigns need ``APPROVED``)."""

    name: str = Field(examples=["new_year_sale"])
    language: str = Field(examples=["en"])
    status: str = Field(examples=["APPROVED"])
    category: str = Field(examples=["MARKETING"])
    parameter_format: str = Field(examples=["POSITIONAL"])
    #: The BODY text with its placeholders.
    body: str = Field(examples=["Happy New Year {{1}}! 20% off in {{2}}."])


class TemplateList(Page[TemplateOut]):
    """The number's templates by name and language."""


@router.get(
    "/accounts/{account_id}/templates",
    tags=["campaigns"],
    responses={
        422: {"description": "Unknown or disabled number, or not a Meta WABA"},
        502: {"description": "The provider refused the lookup"},
        503: {"description": "The provider cannot be reached"},
    },
)
async def list_templates(
    tenant_id: TenantAdmin,
    outreach: OutreachDep,
    account_id: Annotated[str, Path(min_length=1, max_length=128)],
    limit: PageLimit = 100,
    cursor: PageCursor = None,
) -> TemplateList:
    """The template catalog of the number's WhatsApp Business account with each
    template's status (read from the provider at each call), by name and language."""
    after = decode_cursor(cursor, str, str)
    found = [
        t
        for t in await outreach.campaigns.template_catalog(tenant_id, account_id)
        if after is None or (t.name, t.language) > (after[0], after[1])
    ]
    rows, next_cursor = page_of(found, limit, lambda t: (t.name, t.language))
    return TemplateList(
        items=[
            TemplateOut(
                name=t.name,
                language=t.language,
                status=t.status,
                category=t.category,
                parameter_format=t.parameter_format,
                body=t.text("body"),
            )
            for t in rows
        ],
        next_cursor=next_cursor,
    )


@router.post("/campaigns/dry-run", tags=["campaigns"])
async def dry_run(tenant_id: TenantAdmin, outreach: OutreachDep, body: DryRunIn) -> DryRun:
    """Every check of create, nothing written: counts, exclusions and rendered previews."""
    return await outreach.campaigns.dry_run(tenant_id, body)


@router.post("/campaigns", status_code=201, tags=["campaigns"])
async def create_campaign(
    tenant_id: TenantAdmin, outreach: OutreachDep, body: CampaignIn
) -> Campaign:
    """Create a campaign (``draft``) after checking the template at the provider, the
    parameters for every eligible contact, the segment and the schedule."""
    return await outreach.campaigns.create(tenant_id, body)


@router.get("/campaigns", tags=["campaigns"])
async def list_campaigns(
    tenant_id: TenantAdmin,
    outreach: OutreachDep,
    limit: PageLimit = 100,
    cursor: PageCursor = None,
) -> CampaignList:
    key = decode_cursor(cursor, datetime, str)
    rows = await outreach.campaigns.list_campaigns(
        tenant_id, limit=limit + 1, after=(key[0], key[1]) if key else None
    )
    items, next_cursor = page_of(rows, limit, lambda c: (c.created_at, c.campaign_id))
    return CampaignList(items=items, next_cursor=next_cursor)


@router.get("/campaigns/{campaign_id}", tags=["campaigns"])
async def get_campaign(tenant_id: TenantAdmin, outreach: OutreachDep, campaign_id: str) -> Campaign:
    return await outreach.campaigns.get(tenant_id, campaign_id)


@router.get("/campaigns/{campaign_id}/metrics", tags=["campaigns"])
async def campaign_metrics(
    tenant_id: TenantAdmin, outreach: OutreachDep, campaign_id: str
) -> CampaignMetrics:
    """Live counts: targeted, excluded by reason, queued, sent, delivered, read, failed by
    error code, replied."""
    return await outreach.campaigns.metrics(tenant_id, campaign_id)


@router.post(
    "/campaigns/{campaign_id}/{action}",
    tags=["campaigns"],
    responses={409: {"description": "The campaign's state does not allow this action"}},
)
async def control_campaign(
    tenant_id: TenantAdmin,
    outreach: OutreachDep,
    campaign_id: str,
    action: Literal["start", "pause", "resume", "cancel"],
) -> Campaign:
    """``start`` (now, or at its schedule), ``pause``, ``resume``, ``cancel``."""
    service = outreach.campaigns
    if action == "start":
        return await service.start(tenant_id, campaign_id)
    if action == "pause":
        return await service.pause(tenant_id, campaign_id)
    if action == "resume":
        return await service.resume(tenant_id, campaign_id)
    return await service.cancel(tenant_id, campaign_id)
