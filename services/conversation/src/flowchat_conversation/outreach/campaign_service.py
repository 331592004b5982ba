"""The campaign service: plan, create, control and follow campaigns (no I/O here: the
store, the accounts, the template lookups and the tenants' time zones come in through
the ports in :mod:`~flowchat_conversation.outreach.ports`; the values and rules are in
:mod:`~flowchat_conversation.outreach.campaigns`)."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flowchat_contracts.tenant_events import CampaignChange, CampaignData
from flowchat_conversation.errors import (
    InvalidState,
    OutreachError,
    OutreachNotFound,
    ProviderError,
)
from flowchat_conversation.facts import Facts
from flowchat_conversation.outreach.campaigns import (
    ACTIVE,
    PAUSING_ERRORS,
    Campaign,
    CampaignIn,
    CampaignMetrics,
    CampaignStatus,
    DryRun,
    DryRunIn,
    NewCampaign,
    NewRecipient,
    Plan,
    Preview,
    StatusChange,
    TemplateRef,
    exclusion,
    new_campaign_id,
    recipient_message_id,
    zone,
)
from flowchat_conversation.outreach.ports import (
    Accounts,
    CampaignStore,
    TemplateLookup,
    TenantZones,
)
from flowchat_conversation.outreach.template_catalog import (
    Template,
    check_parameters,
    contact_fields,
    preview,
    render,
)
from flowchat_platform.accounts import AccountCredentials

#: The campaign statuses a tenant hears of (``scheduled`` and ``cancelled`` are the
#: tenant's own doing, ``completed`` is the runner's).
_CHANGES: dict[str, CampaignChange] = {"running": "started", "paused": "paused"}


@dataclass
class CampaignService:
    store: CampaignStore
    accounts: Accounts
    templates: TemplateLookup
    zones: TenantZones
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    #: Campaign facts for the relay's subscribers (None: none published).
    facts: Facts | None = None
    #: Tells the campaign runner a campaign runs now (None) or is scheduled for a time.
    wake: Callable[[datetime | None], None] | None = None

    # ------------------------------------------------------------ planning

    async def _account(self, tenant_id: str, account_id: str) -> AccountCredentials:
        account = await self.accounts.account(account_id)
        if account is None or account.tenant_id != tenant_id:
            raise OutreachError(f"unknown account {account_id}", code="unknown_account")
        if account.status != "active":
            raise OutreachError(f"account {account_id} is disabled", code="account_disabled")
        return account

    @staticmethod
    def _waba(account: AccountCredentials) -> tuple[str, str]:
        if account.provider != "meta" or not account.waba_id or not account.access_token:
            raise OutreachError(
                "campaigns need a Meta WhatsApp Business account (WABA id and token)",
                code="unsupported_account",
            )
        return account.waba_id, account.access_token

    async def template_catalog(self, tenant_id: str, account_id: str) -> list[Template]:
        """The template catalog of the number's WABA (every status), by name and language."""
        waba_id, token = self._waba(await self._account(tenant_id, account_id))
        found = await self.templates.list_templates(waba_id, token)
        return sorted(found, key=lambda t: (t.name, t.language))

    async def _template(self, account: AccountCredentials, ref: TemplateRef) -> Template:
        waba_id, token = self._waba(account)
        template = await self.templates.find(waba_id, token, ref.name, ref.language)
        if template is None:
            raise OutreachError(
                f"template {ref.name} ({ref.language}) does not exist",
                code="template_not_found",
            )
        if template.status != "APPROVED":
            raise OutreachError(
                f"template {ref.name} ({ref.language}) is {template.status}, not APPROVED",
                code="template_not_approved",
                details=[{"status": template.status}],
            )
        return template

    def _schedule(self, body: CampaignIn, tz: str) -> datetime | None:
        if body.scheduled_at is None:
            return None
        at = body.scheduled_at
        if at.tzinfo is None:
            at = at.replace(tzinfo=zone(tz))
        at = at.astimezone(UTC)
        if at <= self.clock():
            raise OutreachError(
                f"the schedule {body.scheduled_at.isoformat()} ({tz}) is in the past",
                code="schedule_in_past",
            )
        return at

    async def plan(self, tenant_id: str, body: CampaignIn) -> Plan:
        """Everything create and dry run check, in the order a tenant fixes them."""
        tz = body.timezone or await self.zones.timezone(tenant_id)
        zone(tz)
        scheduled_at = self._schedule(body, tz)
        account = await self._account(tenant_id, body.account_id)
        template = await self._template(account, body.template)
        check_parameters(template, body.parameters)
        rate = min(body.rate_mps or account.throughput_mps, account.throughput_mps)
        cap = body.frequency_cap
        candidates = await self.store.candidates(
            tenant_id, body.segment, cap_window_s=cap.window_hours * 3600
        )
        if not candidates:
            raise OutreachError("the segment matches no contact", code="empty_segment")
        campaign_id = new_campaign_id()
        recipients: list[NewRecipient] = []
        excluded: Counter[str] = Counter()
        lacking: list[dict[str, Any]] = []
        missing_count = 0
        for c in candidates:
            message_id = recipient_message_id(campaign_id, c.contact_id)
            reason = exclusion(c, cap)
            if reason is not None:
                excluded[reason] += 1
                recipients.append(
                    NewRecipient(c.contact_id, c.wa_id, message_id, "excluded", reason)
                )
                continue
            address = c.address or c.wa_id
            fields = contact_fields(name=c.name, wa_id=address, attributes=c.attributes)
            rendered = render(template, body.parameters, fields)
            if rendered.missing:
                missing_count += 1
                if len(lacking) < 20:
                    lacking.append(
                        {
                            "contact_id": c.contact_id,
                            "phone": "+" + address,
                            "missing": rendered.missing,
                        }
                    )
                continue
            recipients.append(
                NewRecipient(
                    c.contact_id,
                    c.wa_id,
                    message_id,
                    "pending",
                    components=rendered.components,
                    address=address,
                )
            )
        if missing_count:
            raise OutreachError(
                f"{missing_count} contacts lack values for the template's parameters "
                "(give a fallback such as {{name|there}}, or fill the fields)",
                code="missing_parameters",
                details=lacking,
            )
        if not any(r.state == "pending" for r in recipients):
            raise OutreachError(
                "every contact of the segment is excluded",
                code="no_eligible_contacts",
                details=[dict(excluded)],
            )
        campaign = NewCampaign(
            campaign_id=campaign_id,
            tenant_id=tenant_id,
            account_id=body.account_id,
            name=body.name,
            category=template.category.lower(),
            template=template.as_json(),
            parameters=body.parameters.model_dump(exclude_none=True),
            segment=body.segment.model_dump(exclude_none=True),
            timezone=tz,
            scheduled_at=scheduled_at,
            quiet_hours=body.quiet_hours,
            rate_mps=rate,
            frequency_cap=cap,
            targeted=len(candidates),
        )
        return Plan(campaign, template, recipients, excluded)

    async def dry_run(self, tenant_id: str, body: DryRunIn) -> DryRun:
        plan = await self.plan(tenant_id, body)
        eligible = plan.eligible
        previews = [
            Preview(
                contact_id=r.contact_id,
                phone="+" + (r.address or r.wa_id),
                text=preview(plan.template, r.components or []),
                components=r.components or [],
            )
            for r in eligible[: body.previews]
        ]
        return DryRun(
            template=plan.template.as_json(),
            targeted=plan.campaign.targeted,
            eligible=len(eligible),
            excluded=dict(plan.excluded),
            scheduled_at=plan.campaign.scheduled_at,
            timezone=plan.campaign.timezone,
            rate_mps=plan.campaign.rate_mps,
            estimated_duration_s=round(len(eligible) / plan.campaign.rate_mps, 1),
            previews=previews,
        )

    async def create(self, tenant_id: str, body: CampaignIn) -> Campaign:
        plan = await self.plan(tenant_id, body)
        return await self.store.insert_campaign(plan.campaign, plan.recipients)

    # ------------------------------------------------------------ control

    async def get(self, tenant_id: str, campaign_id: str) -> Campaign:
        campaign = await self.store.get_campaign(tenant_id, campaign_id)
        if campaign is None:
            raise OutreachNotFound("campaign", campaign_id)
        return campaign

    async def list_campaigns(
        self, tenant_id: str, *, limit: int = 100, after: tuple[datetime, str] | None = None
    ) -> list[Campaign]:
        return await self.store.list_campaigns(tenant_id, limit=limit, after=after)

    async def _move(
        self,
        tenant_id: str,
        campaign_id: str,
        from_states: tuple[CampaignStatus, ...],
        to_state: CampaignStatus,
        reason: str | None = None,
    ) -> Campaign:
        moved = await self.store.transition(
            tenant_id, campaign_id, from_states=from_states, to_state=to_state, reason=reason
        )
        if moved is None:
            current = await self.get(tenant_id, campaign_id)
            raise InvalidState(
                f"campaign {campaign_id} is {current.status}; cannot go to {to_state}",
                details=[{"status": current.status}],
            )
        if self.wake is not None and moved.status in ("running", "scheduled"):
            self.wake(moved.scheduled_at if moved.status == "scheduled" else None)
        await self._fact(moved, reason)
        return moved

    async def _fact(self, campaign: Campaign, reason: str | None = None) -> None:
        """``campaign.started`` / ``campaign.paused`` for the relay, once the transition
        is committed (the store's conditional update moved it exactly once)."""
        change: CampaignChange | None = _CHANGES.get(campaign.status)
        if self.facts is None or change is None:
            return
        await self.facts.campaign(
            change,
            tenant_id=campaign.tenant_id,
            account_id=campaign.account_id,
            campaign=CampaignData(
                campaign_id=campaign.campaign_id,
                name=campaign.name,
                status=campaign.status,
                reason=reason if change == "paused" else None,
            ),
        )

    def _run_state(self, campaign: Campaign) -> CampaignStatus:
        if campaign.scheduled_at is not None and campaign.scheduled_at > self.clock():
            return "scheduled"
        return "running"

    async def start(self, tenant_id: str, campaign_id: str) -> Campaign:
        campaign = await self.get(tenant_id, campaign_id)
        return await self._move(tenant_id, campaign_id, ("draft",), self._run_state(campaign))

    async def pause(self, tenant_id: str, campaign_id: str, reason: str = "operator") -> Campaign:
        return await self._move(tenant_id, campaign_id, ACTIVE, "paused", reason)

    async def resume(self, tenant_id: str, campaign_id: str) -> Campaign:
        campaign = await self.get(tenant_id, campaign_id)
        if campaign.status == "paused":
            # A campaign paused by its template stays paused until the template is back.
            # When the provider cannot answer now, resume anyway: a send on a paused
            # template fails with 132015 / 132016, which pauses the campaign again.
            account = await self._account(tenant_id, campaign.account_id)
            ref = TemplateRef(
                name=campaign.template["name"], language=campaign.template["language"]
            )
            with contextlib.suppress(ProviderError):
                await self._template(account, ref)
        return await self._move(tenant_id, campaign_id, ("paused",), self._run_state(campaign))

    async def cancel(self, tenant_id: str, campaign_id: str) -> Campaign:
        return await self._move(
            tenant_id, campaign_id, ("draft", "scheduled", "running", "paused"), "cancelled"
        )

    async def metrics(self, tenant_id: str, campaign_id: str) -> CampaignMetrics:
        metrics = await self.store.metrics(tenant_id, campaign_id)
        if metrics is None:
            raise OutreachNotFound("campaign", campaign_id)
        return metrics

    # ------------------------------------------------------------ events

    async def on_status(self, change: StatusChange) -> None:
        """A status change from the state-manager: campaign metrics and automatic pauses
        (the opt-out a 131050 means is recorded by the contacts service)."""
        if change.campaign_id is None:
            return
        await self.store.record_status(change)
        reason = PAUSING_ERRORS.get(change.error_code or 0) if change.status == "failed" else None
        if reason is not None:
            moved = await self.store.transition(
                change.tenant_id,
                change.campaign_id,
                from_states=ACTIVE,
                to_state="paused",
                reason=reason,
            )
            if moved is not None:
                await self._fact(moved, reason)

    async def on_template_status(
        self, tenant_id: str, name: str, language: str | None, event: str
    ) -> list[str]:
        """Pause the tenant's active campaigns on a template that was paused or disabled."""
        event = event.upper()
        if event not in ("PAUSED", "DISABLED", "REJECTED", "PENDING_DELETION", "DELETED"):
            return []
        reason = f"template_{event.lower()}"
        paused = await self.store.pause_by_template(tenant_id, name, language, reason)
        if self.facts is not None:
            for campaign_id in paused:
                await self._fact(await self.get(tenant_id, campaign_id), reason)
        return paused
