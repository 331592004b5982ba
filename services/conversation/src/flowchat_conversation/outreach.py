"""Wiring of contacts, campaigns and reminders: services, workers and their edges.

:class:`Outreach` is built by the app's lifespan once the database and the broker are
up; it starts three background workers in every replica (they coordinate through
PostgreSQL row locks, so any number of replicas is safe):

- the campaign runner (:mod:`~flowchat_conversation.campaign_runner`);
- the reminder scheduler (:mod:`~flowchat_conversation.scheduler`);
- the events consumer on ``conversation.events`` (bound to ``flowchat.events``):
  the state-manager's ``message_status_changed`` (campaign metrics, 131050 opt-outs,
  131048 / template errors pause a campaign) and the gateway's business events
  (``message_template_status_update`` pauses campaigns on that template,
  ``user_marketing_preferences`` records opt-outs and opt-ins).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aio_pika.abc import AbstractIncomingMessage
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from flowchat_contracts import topology
from flowchat_conversation import metrics
from flowchat_conversation.campaign_runner import CampaignRunner, Outbox
from flowchat_conversation.campaigns import OPT_OUT_ERROR, CampaignService, StatusChange
from flowchat_conversation.contacts import ContactsService, OptOutMirror
from flowchat_conversation.outreach_repository import OutreachRepository
from flowchat_conversation.reminders import ReminderService
from flowchat_conversation.scheduler import ReminderScheduler
from flowchat_conversation.settings import Settings
from flowchat_conversation.templates import GraphTemplates
from flowchat_platform.amqp import Amqp
from flowchat_platform.errors import DeadLetter
from flowchat_platform.logs import get_logger
from flowchat_platform.runner import Background
from flowchat_platform.tenant_client import TenantClient

log = get_logger(__name__)

EVENT_DECODER: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


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


@dataclass
class TenantZones:
    """The tenant's time zone from the tenant service's internal API (cached)."""

    session: aiohttp.ClientSession
    base_url: str
    token: str
    default: str = "UTC"
    _cache: dict[str, str] = field(default_factory=dict)

    async def timezone(self, tenant_id: str) -> str:
        if tenant_id in self._cache:
            return self._cache[tenant_id]
        url = f"{self.base_url.rstrip('/')}/internal/v1/tenants/{tenant_id}"
        try:
            async with self.session.get(
                url,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=aiohttp.ClientTimeout(total=3),
            ) as r:
                if r.status != 200:
                    return self.default
                body = await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            log.warning("tenant time zone unavailable; using the default", tenant_id=tenant_id)
            return self.default
        zone = str((body or {}).get("timezone") or self.default)
        self._cache[tenant_id] = zone
        return zone


class OutreachEvents:
    """``conversation.events`` → campaign metrics, opt-outs and automatic pauses."""

    def __init__(self, campaigns: CampaignService, contacts: ContactsService) -> None:
        self._campaigns = campaigns
        self._contacts = contacts

    async def handle(self, body: dict[str, Any], _raw: AbstractIncomingMessage | None) -> None:
        kind = body.get("kind")
        try:
            if kind == "message_status_changed":
                await self._status(StatusChangedEvent.model_validate(body))
            elif kind == "business_event":
                await self._business(BusinessEventIn.model_validate(body))
            else:
                metrics.CAMPAIGN_EVENTS.labels("other", "ignored").inc()
        except ValidationError as exc:
            metrics.CAMPAIGN_EVENTS.labels(str(kind)[:40], "invalid").inc()
            raise DeadLetter(f"invalid {kind} event: {exc.errors()[:3]}") from exc

    async def _status(self, event: StatusChangedEvent) -> None:
        if event.status == "failed" and event.error_code == OPT_OUT_ERROR and event.recipient:
            # Meta refused a marketing message: the customer stopped them.
            await self._contacts.set_preference(
                event.tenant_id,
                event.recipient.lstrip("+"),
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
                await self._contacts.set_preference(
                    event.tenant_id,
                    str(pref["wa_id"]).lstrip("+"),
                    value == "resume",
                    source="webhook",
                    at=at,
                )
            metrics.CAMPAIGN_EVENTS.labels("marketing_preferences", "handled").inc()
        else:
            metrics.CAMPAIGN_EVENTS.labels("business", "ignored").inc()


@dataclass
class Outreach:
    contacts: ContactsService
    campaigns: CampaignService
    reminders: ReminderService
    runner: CampaignRunner
    scheduler: ReminderScheduler
    events: OutreachEvents

    @classmethod
    def build(
        cls,
        settings: Settings,
        repository: OutreachRepository,
        outbox: Outbox,
        tenants: TenantClient | None,
        http: aiohttp.ClientSession,
        *,
        optouts: OptOutMirror | None = None,
    ) -> Outreach:
        if tenants is None:
            raise RuntimeError("the tenant client is created before outreach")
        token = settings.service_token.get_secret_value() if settings.service_token else ""
        contacts = ContactsService(repository, optouts=optouts)
        campaigns = CampaignService(
            store=repository,
            accounts=tenants,
            templates=GraphTemplates(http, settings.graph_url, settings.graph_version),
            zones=TenantZones(http, settings.tenant_url, token),
        )
        return cls(
            contacts=contacts,
            campaigns=campaigns,
            reminders=ReminderService(repository),
            runner=CampaignRunner(
                repository,
                outbox,
                tick_s=settings.campaign_tick_s,
                max_inflight=settings.campaign_max_inflight,
                inflight_window_s=settings.campaign_inflight_window_s,
            ),
            scheduler=ReminderScheduler(
                repository, outbox, tick_s=settings.reminder_tick_s, batch=settings.reminder_batch
            ),
            events=OutreachEvents(campaigns, contacts),
        )

    async def start(self, amqp: Amqp, background: Background, *, prefetch: int) -> None:
        """Consume ``conversation.events`` and start the runner and the scheduler."""
        await amqp.consume(
            topology.QUEUE_CONVERSATION_EVENTS,
            self.events.handle,
            decoder=EVENT_DECODER,
            prefetch=prefetch,
        )
        background.start("campaign-runner", self.runner.run())
        background.start("reminder-scheduler", self.scheduler.run())
