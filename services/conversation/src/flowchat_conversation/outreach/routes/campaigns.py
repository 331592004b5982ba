"""HTTP edge: the tenant API for campaigns (dry run, create, list, metrics, control)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from flowchat_conversation.deps import OutreachDep, TenantAdmin
from flowchat_conversation.outreach.campaigns import (
    Campaign,
    CampaignIn,
    CampaignMetrics,
    DryRun,
    DryRunIn,
)

router = APIRouter(prefix="/v1/tenants/{tenant_id}")


class CampaignList(BaseModel):
    items: list[Campaign]


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
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> CampaignList:
    return CampaignList(items=await outreach.campaigns.list_campaigns(tenant_id, limit=limit))


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


@router.post("/campaigns/{campaign_id}/{action}", tags=["campaigns"])
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
