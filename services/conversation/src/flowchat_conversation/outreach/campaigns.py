"""Campaigns: one approved template to a segment of contacts, checked before anything is queued.

No I/O here: the service works through ports (:class:`CampaignStore`, accounts,
template lookups, tenant time zones).

Life of a campaign::

    create ─▶ draft ─ start ─▶ scheduled ─(time)─▶ running ─(all queued)─▶ completed
                                   │    ▲            │  ▲
                                   └ pause ┐  resume ┘  │ (also auto: template paused or
                                           ▼            │  disabled, 131048 spam signal)
                                          paused ───────┘
    cancel: from any state before completed.

**Create** plans the audience and refuses bad input with the reason: unknown account,
template missing or not approved (looked up at the provider), parameters that do not
fit the template or that some eligible contacts cannot fill, a segment matching
nobody (or nobody left once exclusions apply), a schedule in the past. Then it writes
the campaign and one ``campaign_recipients`` row per targeted contact: ``pending``
with its rendered parameters, or ``excluded`` with the reason (blocked, inactive,
opted_out, frequency_cap). A **dry run** is the same plan, not written, with N
rendered previews.

The runner (:mod:`flowchat_conversation.outreach.campaign_runner`) sends the pending rows;
status events update them (:meth:`CampaignService.on_status`), and the metrics are
aggregates of those rows.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Annotated, Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from flowchat_contracts.meta_codes import MetaCode
from flowchat_conversation.errors import (
    InvalidState,
    OutreachError,
    OutreachNotFound,
    ProviderError,
)
from flowchat_conversation.outreach.contacts import Segment
from flowchat_conversation.outreach.template_catalog import (
    ParameterMap,
    Template,
    check_parameters,
    contact_fields,
    preview,
    render,
)
from flowchat_platform.accounts import AccountCredentials

CampaignStatus = Literal["draft", "scheduled", "running", "paused", "completed", "cancelled"]
ExclusionReason = Literal["blocked", "inactive", "opted_out", "frequency_cap"]
ACTIVE: tuple[CampaignStatus, ...] = ("scheduled", "running")
#: Errors in a campaign message's ``failed`` status that pause the whole campaign.
PAUSING_ERRORS: dict[int, str] = {
    MetaCode.SPAM_RATE_LIMIT: "spam_rate_limit",
    MetaCode.TEMPLATE_PAUSED: "template_paused",
    MetaCode.TEMPLATE_DISABLED: "template_disabled",
    # The sender's own refusals (flowchat_sender.fates) before any provider call.
    -20: "template_unknown",
    -21: "template_not_approved",
}
MAX_PREVIEWS = 50


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TemplateRef(_In):
    name: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    language: Annotated[str, StringConstraints(min_length=2, max_length=15)]


class QuietHours(_In):
    """Local times (campaign time zone) when nothing is sent; may wrap past midnight."""

    start: time
    end: time


class FrequencyCap(_In):
    """At most ``max_messages`` campaign messages per contact in ``window_hours``,
    counted across all of the tenant's campaigns."""

    max_messages: int = Field(default=1, ge=1, le=100)
    window_hours: int = Field(default=24, ge=1, le=24 * 31)


class CampaignIn(_In):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    account_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    template: TemplateRef
    parameters: ParameterMap = ParameterMap()
    segment: Segment = Segment()
    #: When to start; without an offset it is read in ``timezone``. None: on start.
    scheduled_at: datetime | None = None
    #: IANA zone for the schedule and quiet hours (default: the tenant's).
    timezone: str | None = None
    quiet_hours: QuietHours | None = None
    #: Messages per second (default and ceiling: the number's throughput).
    rate_mps: int | None = Field(default=None, ge=1, le=1000)
    frequency_cap: FrequencyCap = FrequencyCap()


class DryRunIn(CampaignIn):
    previews: int = Field(default=5, ge=0, le=MAX_PREVIEWS)


class Campaign(BaseModel):
    campaign_id: str
    tenant_id: str
    account_id: str
    name: str
    status: CampaignStatus
    category: str
    template: dict[str, Any]
    parameters: dict[str, Any]
    segment: dict[str, Any]
    timezone: str
    scheduled_at: datetime | None
    quiet_hours: QuietHours | None
    rate_mps: int
    frequency_cap: FrequencyCap
    pause_reason: str | None
    targeted: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class CampaignMetrics(BaseModel):
    campaign_id: str
    status: CampaignStatus
    pause_reason: str | None
    targeted: int
    excluded: dict[str, int]
    pending: int
    queued: int
    sent: int
    delivered: int
    read: int
    failed: int
    failed_by_code: dict[str, int]
    replied: int


class Preview(BaseModel):
    contact_id: int
    phone: str
    text: str
    components: list[dict[str, Any]]


class DryRun(BaseModel):
    template: dict[str, Any]
    targeted: int
    eligible: int
    excluded: dict[str, int]
    scheduled_at: datetime | None
    timezone: str
    rate_mps: int
    estimated_duration_s: float
    previews: list[Preview]


@dataclass(frozen=True)
class Candidate:
    """A contact the segment matched, with what exclusions need to know."""

    contact_id: int
    wa_id: str
    name: str | None
    status: str
    attributes: dict[str, Any]
    marketing_opt_in: bool
    #: Campaign messages queued to this contact in the cap window (other campaigns).
    recent_sends: int = 0


@dataclass(frozen=True)
class NewRecipient:
    contact_id: int
    wa_id: str
    message_id: str
    state: Literal["pending", "excluded"]
    reason: str | None = None
    components: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class NewCampaign:
    campaign_id: str
    tenant_id: str
    account_id: str
    name: str
    category: str
    template: dict[str, Any]
    parameters: dict[str, Any]
    segment: dict[str, Any]
    timezone: str
    scheduled_at: datetime | None
    quiet_hours: QuietHours | None
    rate_mps: int
    frequency_cap: FrequencyCap
    targeted: int


@dataclass
class Plan:
    campaign: NewCampaign
    template: Template
    recipients: list[NewRecipient]
    excluded: Counter[str] = field(default_factory=Counter)

    @property
    def eligible(self) -> list[NewRecipient]:
        return [r for r in self.recipients if r.state == "pending"]


@dataclass(frozen=True)
class StatusChange:
    """A message's status, from the state-manager's ``message_status_changed``."""

    tenant_id: str
    message_id: str
    status: str
    at: datetime
    campaign_id: str | None = None
    recipient: str | None = None
    error_code: int | None = None


class CampaignStore(Protocol):
    async def candidates(
        self, tenant_id: str, segment: Segment, *, cap_window_s: int
    ) -> list[Candidate]: ...

    async def insert_campaign(
        self, campaign: NewCampaign, recipients: list[NewRecipient]
    ) -> Campaign: ...

    async def get_campaign(self, tenant_id: str, campaign_id: str) -> Campaign | None: ...

    async def list_campaigns(self, tenant_id: str, *, limit: int) -> list[Campaign]: ...

    async def transition(
        self,
        tenant_id: str,
        campaign_id: str,
        *,
        from_states: tuple[CampaignStatus, ...],
        to_state: CampaignStatus,
        reason: str | None = None,
    ) -> Campaign | None:
        """Move the campaign if it is in one of ``from_states``; None otherwise."""

    async def metrics(self, tenant_id: str, campaign_id: str) -> CampaignMetrics | None: ...

    async def record_status(self, change: StatusChange) -> bool:
        """Move a recipient forward (never back); False when no recipient has the id."""

    async def pause_by_template(
        self, tenant_id: str, name: str, language: str | None, reason: str
    ) -> list[str]: ...


class Accounts(Protocol):
    async def account(self, account_id: str) -> AccountCredentials | None: ...


class TemplateLookup(Protocol):
    async def find(
        self, waba_id: str, access_token: str, name: str, language: str
    ) -> Template | None: ...


class TenantZones(Protocol):
    async def timezone(self, tenant_id: str) -> str: ...


def new_campaign_id() -> str:
    return "cmp_" + uuid.uuid4().hex[:20]


def recipient_message_id(campaign_id: str, contact_id: int) -> str:
    return f"{campaign_id}-{contact_id}"


def idempotency_key(campaign_id: str, contact_id: int) -> str:
    return f"campaign:{campaign_id}:{contact_id}"


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise OutreachError(f"unknown time zone {name!r}", code="invalid_timezone") from exc


def in_quiet_hours(quiet: QuietHours | None, tz: str, now: datetime) -> bool:
    if quiet is None or quiet.start == quiet.end:
        return False
    local = now.astimezone(zone(tz)).time()
    if quiet.start < quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


def exclusion(candidate: Candidate, cap: FrequencyCap) -> ExclusionReason | None:
    """Why a contact is not messaged, or None (first reason wins)."""
    if candidate.status == "blocked":
        return "blocked"
    if candidate.status == "inactive":
        return "inactive"
    if not candidate.marketing_opt_in:
        return "opted_out"
    if candidate.recent_sends >= cap.max_messages:
        return "frequency_cap"
    return None


@dataclass
class CampaignService:
    store: CampaignStore
    accounts: Accounts
    templates: TemplateLookup
    zones: TenantZones
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    # ------------------------------------------------------------ planning

    async def _account(self, tenant_id: str, account_id: str) -> AccountCredentials:
        account = await self.accounts.account(account_id)
        if account is None or account.tenant_id != tenant_id:
            raise OutreachError(f"unknown account {account_id}", code="unknown_account")
        if account.status != "active":
            raise OutreachError(f"account {account_id} is disabled", code="account_disabled")
        return account

    async def _template(self, account: AccountCredentials, ref: TemplateRef) -> Template:
        if account.provider != "meta" or not account.waba_id or not account.access_token:
            raise OutreachError(
                "campaigns need a Meta WhatsApp Business account (WABA id and token)",
                code="unsupported_account",
            )
        template = await self.templates.find(
            account.waba_id, account.access_token, ref.name, ref.language
        )
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
            fields = contact_fields(name=c.name, wa_id=c.wa_id, attributes=c.attributes)
            rendered = render(template, body.parameters, fields)
            if rendered.missing:
                missing_count += 1
                if len(lacking) < 20:
                    lacking.append(
                        {
                            "contact_id": c.contact_id,
                            "phone": "+" + c.wa_id,
                            "missing": rendered.missing,
                        }
                    )
                continue
            recipients.append(
                NewRecipient(
                    c.contact_id, c.wa_id, message_id, "pending", components=rendered.components
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
                phone="+" + r.wa_id,
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

    async def list_campaigns(self, tenant_id: str, *, limit: int = 100) -> list[Campaign]:
        return await self.store.list_campaigns(tenant_id, limit=limit)

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
        return moved

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
            await self.store.transition(
                change.tenant_id,
                change.campaign_id,
                from_states=ACTIVE,
                to_state="paused",
                reason=reason,
            )

    async def on_template_status(
        self, tenant_id: str, name: str, language: str | None, event: str
    ) -> list[str]:
        """Pause the tenant's active campaigns on a template that was paused or disabled."""
        event = event.upper()
        if event not in ("PAUSED", "DISABLED", "REJECTED", "PENDING_DELETION", "DELETED"):
            return []
        return await self.store.pause_by_template(
            tenant_id, name, language, f"template_{event.lower()}"
        )
