"""Response bodies of the query API (these shape the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from flowchat_platform.pagination import Page
from flowchat_state_manager.models import HistoryEntry, MessageRecord
from flowchat_state_manager.query_service import Stats
from flowchat_state_manager.state import Status


class ErrorOut(BaseModel):
    code: int | None = Field(description="The provider's error code (Meta's, or Twilio's)")
    title: str | None = None
    details: str | None = None


class MessageOut(BaseModel):
    id: str = Field(description="FlowChat's message id")
    tenant_id: str
    account_id: str
    idempotency_key: str | None
    recipient: str | None = Field(description="The id the send used: a WhatsApp id or a BSUID")
    recipient_alias: str | None = Field(
        default=None,
        description="The customer's other id (BSUID or WhatsApp id), once a status named both",
    )
    message_type: str | None
    category: str | None = Field(description="marketing, utility, authentication or service")
    campaign_id: str | None
    correlation_id: str | None
    provider: str = Field(description="meta or twilio")
    provider_message_id: str | None = Field(description="The WAMID or the Twilio SID")
    status: Status
    error: ErrorOut | None = Field(
        description="Why the message failed or was parked (``title``: the parking reason)"
    )
    pricing_category: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, m: MessageRecord) -> MessageOut:
        error = (
            ErrorOut(code=m.error_code, title=m.error_title, details=m.error_details)
            if m.status in (Status.FAILED, Status.PARKED) or m.error_code is not None
            else None
        )
        return cls(
            id=m.id,
            tenant_id=m.tenant_id,
            account_id=m.account_id,
            idempotency_key=m.idempotency_key,
            recipient=m.recipient,
            recipient_alias=m.recipient_alias,
            message_type=m.message_type,
            category=m.category,
            campaign_id=m.campaign_id,
            correlation_id=m.correlation_id,
            provider=m.provider,
            provider_message_id=m.provider_message_id,
            status=m.status,
            error=error,
            pricing_category=m.pricing_category,
            created_at=m.created_at,
            updated_at=m.updated_at,
        )


class MessagePage(Page[MessageOut]):
    """The tenant's messages, newest first."""


class EventOut(BaseModel):
    sequence: int = Field(
        description="The order FlowChat learned the message's statuses in (the list's order)"
    )
    status: Status
    provider_timestamp: datetime = Field(
        description="When the provider says it happened (Meta's: whole seconds)"
    )
    received_at: datetime = Field(description="When FlowChat learned it")
    error: ErrorOut | None
    pricing_category: str | None

    @classmethod
    def of(cls, e: HistoryEntry) -> EventOut:
        error = (
            ErrorOut(code=e.error_code, title=e.error_title, details=e.error_details)
            if e.error_code is not None
            else None
        )
        return cls(
            sequence=e.sequence,
            status=e.status,
            provider_timestamp=e.provider_timestamp,
            received_at=e.received_at,
            error=error,
            pricing_category=e.pricing_category,
        )


class EventPage(Page[EventOut]):
    """A message's distinct statuses, in the order FlowChat learned them."""


class StatsOut(BaseModel):
    tenant_id: str
    campaign_id: str | None
    since: datetime | None
    until: datetime | None
    total: int
    counts: dict[str, int] = Field(description="Messages by current status")
    reached: dict[str, int] = Field(
        description="Messages that got at least this far (read implies delivered); "
        "failed messages excluded"
    )

    @classmethod
    def of(
        cls,
        tenant_id: str,
        campaign_id: str | None,
        since: datetime | None,
        until: datetime | None,
        s: Stats,
    ) -> StatsOut:
        return cls(
            tenant_id=tenant_id,
            campaign_id=campaign_id,
            since=since,
            until=until,
            total=s.total,
            counts=s.counts,
            reached=s.reached,
        )
