"""Outreach as one object: contacts, campaigns and reminders, their workers and the
events they follow (no I/O here: every store and provider comes in through a port).

:class:`Outreach` is built by the app's lifespan once the database and the broker are
up, with the adapters (the outreach repository, the Redis opt-out mirror, the Graph
template lookups, the tenant service); the app then starts, in every replica, the
campaign runner (:mod:`~flowchat_conversation.outreach.campaign_runner`), the reminder
scheduler (:mod:`~flowchat_conversation.outreach.scheduler`) and the events consumer
(:mod:`~flowchat_conversation.outreach.consumer` →
:class:`~flowchat_conversation.outreach.events.OutreachEvents`). They coordinate
through PostgreSQL row locks, so any number of replicas is safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowchat_conversation.facts import Facts
from flowchat_conversation.outbox import Outbox
from flowchat_conversation.outreach.campaign_runner import CampaignRunner
from flowchat_conversation.outreach.campaign_service import CampaignService
from flowchat_conversation.outreach.contact_service import ContactsService
from flowchat_conversation.outreach.events import OutreachEvents
from flowchat_conversation.outreach.ports import (
    Accounts,
    HandoffReleaser,
    OptOutMirror,
    OutreachStore,
    TemplateLookup,
    TenantZones,
)
from flowchat_conversation.outreach.reminder_service import ReminderService
from flowchat_conversation.outreach.scheduler import ReminderScheduler


@dataclass(frozen=True)
class Pacing:
    """How often and how much the workers do (from the settings)."""

    campaign_tick_s: float = 0.2
    #: The runner's safety tick while no campaign runs (it is woken on work).
    campaign_idle_s: float = 5.0
    campaign_max_inflight: int = 5000
    campaign_inflight_window_s: float = 120
    reminder_tick_s: float = 1.0
    reminder_idle_s: float = 5.0
    reminder_batch: int = 100


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
        store: OutreachStore,
        outbox: Outbox,
        *,
        accounts: Accounts,
        templates: TemplateLookup,
        zones: TenantZones,
        optouts: OptOutMirror | None = None,
        pacing: Pacing | None = None,
        handoffs: HandoffReleaser | None = None,
        facts: Facts | None = None,
    ) -> Outreach:
        pacing = pacing or Pacing()
        contacts = ContactsService(store, optouts=optouts)
        runner = CampaignRunner(
            store,
            outbox,
            tick_s=pacing.campaign_tick_s,
            max_inflight=pacing.campaign_max_inflight,
            inflight_window_s=pacing.campaign_inflight_window_s,
            facts=facts,
            idle_s=pacing.campaign_idle_s,
        )
        campaigns = CampaignService(
            store=store,
            accounts=accounts,
            templates=templates,
            zones=zones,
            facts=facts,
            wake=runner.wake,
        )
        scheduler = ReminderScheduler(
            store,
            outbox,
            tick_s=pacing.reminder_tick_s,
            batch=pacing.reminder_batch,
            idle_s=pacing.reminder_idle_s,
        )
        return cls(
            contacts=contacts,
            campaigns=campaigns,
            reminders=ReminderService(store, wake=scheduler.wake),
            runner=runner,
            scheduler=scheduler,
            events=OutreachEvents(campaigns, contacts, handoffs),
        )
