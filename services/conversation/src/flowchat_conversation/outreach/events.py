"""Events from ``flowchat.events`` that outreach acts on (no I/O here; the consumer
in :mod:`~flowchat_conversation.outreach.consumer` delivers them):

- the state-manager's ``message_status_changed``: campaign metrics, 131050 opt-outs,
  131048 / template errors pause a campaign;
- the gateway's business events: ``message_template_status_update`` pauses campaigns
  on that template, ``user_marketing_preferences`` records opt-outs and opt-ins;
- the inbox's ``handoff_resolved``: the hand-off is released (the bot speaks again)
  through the :class:`~flowchat_conversation.outreach.ports.HandoffReleaser` port;
  once only (a redelivery finds none open);
- the inbox's ``handoff_requested`` with ``taken_over_by`` (an agent took over a
  conversation the bot was handling): the hand-off opens, the bot goes quiet. The bot's
  own ``handoff_requested`` (no ``taken_over_by``) is ignored: it opened it already, and
  acting on a late copy could reopen a released one.

Opt-outs are per person: ``marketing_preferences[]`` names each customer by identity
(BSUID, phone, or both: linked), error 131050 by the id the message went to (a phone
number or a BSUID); the opt-out set then holds, or loses, every id of that person.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from flowchat_contracts import CustomerIdentity, meta_codes
from flowchat_conversation import metrics
from flowchat_conversation.customers import identity_for
from flowchat_conversation.outreach.campaign_service import CampaignService
from flowchat_conversation.outreach.campaigns import StatusChange
from flowchat_conversation.outreach.contact_service import ContactsService
from flowchat_conversation.outreach.ports import HandoffReleaser
from flowchat_platform.errors import DeadLetter
from flowchat_platform.logs import get_logger

log = get_logger(__name__)


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class StatusChangedEvent(_Event):
    """The state-manager's ``message_status_changed`` (the fields used here)."""

    kind: str
    event_id: str
    message_id: str
    tenant_id: str
    account_id: str
    status: str
    recipient: str | None = None
    campaign_id: str | None = None
    error_code: int | None = None
    timestamp: datetime


class PreferenceIn(_Event):
    """One item of ``marketing_preferences[]`` (``flowchat_contracts.MarketingPreference``)."""

    customer: CustomerIdentity
    value: str
    category: str = "marketing_messages"
    timestamp: datetime | None = None


class BusinessEventIn(_Event):
    """The gateway's ``business_event`` (Meta's account-level webhook fields)."""

    kind: str
    event_id: str
    tenant_id: str
    account_id: str
    field: str
    event: str | None = None
    occurred_at: datetime
    data: dict[str, Any] = {}
    #: ``user_marketing_preferences``: each item with the customer's identity.
    marketing_preferences: list[PreferenceIn] = []


class HandoffResolvedEvent(_Event):
    """The inbox's ``handoff_resolved`` (``flowchat_contracts.HandoffResolved``)."""

    kind: str
    event_id: str
    tenant_id: str
    account_id: str
    customer: CustomerIdentity


class HandoffRequestedEvent(_Event):
    """The inbox's take-over (``flowchat_contracts.HandoffRequested``)."""

    kind: str
    event_id: str
    tenant_id: str
    account_id: str
    customer: CustomerIdentity
    taken_over_by: str | None = None


class OutreachEvents:
    """``conversation.events`` → campaign metrics, opt-outs, automatic pauses and
    hand-off releases."""

    def __init__(
        self,
        campaigns: CampaignService,
        contacts: ContactsService,
        handoffs: HandoffReleaser | None = None,
    ) -> None:
        self._campaigns = campaigns
        self._contacts = contacts
        self._handoffs = handoffs

    async def handle(self, body: dict[str, Any], _raw: object = None) -> None:
        kind = body.get("kind")
        try:
            if kind == "message_status_changed":
                await self._status(StatusChangedEvent.model_validate(body))
            elif kind == "business_event":
                await self._business(BusinessEventIn.model_validate(body))
            elif kind == "handoff_resolved" and self._handoffs is not None:
                await self._resolved(HandoffResolvedEvent.model_validate(body))
            elif (
                kind == "handoff_requested"
                and body.get("taken_over_by")
                and self._handoffs is not None
            ):
                await self._taken_over(HandoffRequestedEvent.model_validate(body))
            else:
                metrics.CAMPAIGN_EVENTS.labels("other", "ignored").inc()
        except ValidationError as exc:
            metrics.CAMPAIGN_EVENTS.labels(str(kind)[:40], "invalid").inc()
            raise DeadLetter(f"invalid {kind} event: {exc.errors()[:3]}") from exc

    async def _status(self, event: StatusChangedEvent) -> None:
        if event.status == "failed" and event.error_code in meta_codes.OPT_OUT and event.recipient:
            # Meta refused a marketing message: the customer stopped them.
            await self._contacts.set_preference(
                event.tenant_id,
                identity_for(event.recipient),
                False,
                source="error_131050",
                at=event.timestamp,
            )
        await self._campaigns.on_status(
            StatusChange(
                tenant_id=event.tenant_id,
                message_id=event.message_id,
                status=event.status,
                at=event.timestamp,
                campaign_id=event.campaign_id,
                recipient=event.recipient,
                error_code=event.error_code,
            )
        )
        metrics.CAMPAIGN_EVENTS.labels("status", "campaign" if event.campaign_id else "other").inc()

    async def _resolved(self, event: HandoffResolvedEvent) -> None:
        assert self._handoffs is not None
        released = await self._handoffs.release_handoff(
            event.tenant_id, event.account_id, event.customer
        )
        metrics.CAMPAIGN_EVENTS.labels("handoff_resolved", "released" if released else "none").inc()
        log.info("hand-off resolved by the inbox", event_id=event.event_id, released=released)

    async def _taken_over(self, event: HandoffRequestedEvent) -> None:
        assert self._handoffs is not None
        started = await self._handoffs.take_over(event.tenant_id, event.account_id, event.customer)
        metrics.CAMPAIGN_EVENTS.labels("handoff_taken_over", "started" if started else "none").inc()
        log.info("conversation taken over in the inbox", event_id=event.event_id, started=started)

    async def _business(self, event: BusinessEventIn) -> None:
        if event.field == "message_template_status_update":
            name = event.data.get("message_template_name")
            status = event.event or event.data.get("event")
            if isinstance(name, str) and isinstance(status, str):
                language = event.data.get("message_template_language")
                paused = await self._campaigns.on_template_status(
                    event.tenant_id, name, language if isinstance(language, str) else None, status
                )
                if paused:
                    log.warning(
                        "campaigns paused: template status changed",
                        template=name,
                        status=status,
                        campaigns=paused,
                    )
            metrics.CAMPAIGN_EVENTS.labels("template_status", "handled").inc()
        elif event.field == "user_marketing_preferences":
            for customer, value, at in self._preferences(event):
                await self._contacts.set_preference(
                    event.tenant_id, customer, value == "resume", source="webhook", at=at
                )
            metrics.CAMPAIGN_EVENTS.labels("marketing_preferences", "handled").inc()
        else:
            metrics.CAMPAIGN_EVENTS.labels("business", "ignored").inc()

    @staticmethod
    def _preferences(
        event: BusinessEventIn,
    ) -> list[tuple[CustomerIdentity, str, datetime]]:
        """``(customer, stop|resume, when)`` of each marketing item: from
        ``marketing_preferences[]`` (identities), else from Meta's ``user_preferences[]``
        as sent (``wa_id`` only: events of older gateways)."""
        found: list[tuple[CustomerIdentity, str, datetime]] = []
        if event.marketing_preferences:
            for item in event.marketing_preferences:
                value = item.value.lower()
                if value in ("stop", "resume") and item.category == "marketing_messages":
                    found.append((item.customer, value, item.timestamp or event.occurred_at))
            return found
        for pref in event.data.get("user_preferences") or []:
            if not isinstance(pref, dict) or not pref.get("wa_id"):
                continue
            value = str(pref.get("value", "")).lower()
            if value not in ("stop", "resume"):
                continue
            at = event.occurred_at
            if isinstance(pref.get("timestamp"), int | float | str):
                with contextlib.suppress(ValueError, OverflowError, OSError):
                    at = datetime.fromtimestamp(int(pref["timestamp"]), UTC)
            with contextlib.suppress(ValueError):
                found.append((identity_for(str(pref["wa_id"])), value, at))
        return found
