"""Campaigns: one approved template to a segment of contacts, checked before anything is queued.

The domain, no I/O: the values (what a tenant asks for, what is stored and shown, what
crosses the ports in :mod:`~flowchat_conversation.outreach.ports`) and the rules
(exclusions, quiet hours, pacing). The service that plans and controls campaigns is
:class:`~flowchat_conversation.outreach.campaign_service.CampaignService`.

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
status events update them
(:meth:`~flowchat_conversation.outreach.campaign_service.CampaignService.on_status`), and
the metrics are aggregates of those rows.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from flowchat_contracts.meta_codes import MetaCode
from flowchat_conversation.errors import OutreachError
from flowchat_conversation.outreach.contacts import Segment
from flowchat_conversation.outreach.template_catalog import ParameterMap, Template

CampaignStatus = Literal["draft", "scheduled", "running", "paused", "completed", "cancelled"]
#: ``suppressed``: an erased customer (``flowchat_conversation.privacy``), checked by the runner.
ExclusionReason = Literal["blocked", "inactive", "opted_out", "frequency_cap", "suppressed"]
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
#: The pacing clock never lags more than this: an idle campaign does not burst.
MAX_BURST_S = 1.0
MAX_BATCH = 1000


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
    #: Where to send: the phone number when known, else the BSUID (None: ``wa_id``).
    address: str | None = None


@dataclass(frozen=True)
class NewRecipient:
    contact_id: int
    wa_id: str
    message_id: str
    state: Literal["pending", "excluded"]
    reason: str | None = None
    components: list[dict[str, Any]] | None = None
    #: The phone number (else BSUID) in clear, for previews (``wa_id`` is the stored key).
    address: str | None = None


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


@dataclass(frozen=True)
class StartedCampaign:
    """A campaign the runner started on schedule."""

    campaign_id: str
    tenant_id: str
    account_id: str
    name: str | None = None


@dataclass(frozen=True)
class RunningCampaign:
    """A running campaign as the runner locked it, with the database's time."""

    campaign_id: str
    tenant_id: str
    account_id: str
    category: str
    template: dict[str, Any]
    timezone: str
    quiet_hours: QuietHours | None
    rate_mps: int
    frequency_cap: FrequencyCap
    paced_until: datetime | None
    now: datetime


@dataclass(frozen=True)
class PendingRecipient:
    candidate: Candidate
    message_id: str
    components: list[dict[str, Any]]


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


def pace(
    paced_until: datetime | None, now: datetime, rate_mps: int, *, max_batch: int = MAX_BATCH
) -> tuple[int, datetime]:
    """How many messages may go now, and the pacing clock after sending them (GCRA-like:
    the clock advances by 1/rate per message and never lags ``now`` by more than a burst)."""
    floor = now - timedelta(seconds=MAX_BURST_S)
    start = max(paced_until or floor, floor)
    n = min(max_batch, math.floor((now - start).total_seconds() * rate_mps))
    n = max(n, 0)
    return n, start + timedelta(seconds=n / rate_mps)
