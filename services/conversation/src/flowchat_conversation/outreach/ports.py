"""The ports the outreach services and workers work through; the values that cross
them live in the domain modules (:mod:`~flowchat_conversation.outreach.contacts`,
:mod:`~flowchat_conversation.outreach.campaigns`,
:mod:`~flowchat_conversation.outreach.reminders`).

Implemented by the adapters the app wires in: every store (together:
:class:`OutreachStore`) by
:class:`~flowchat_conversation.outreach.repository.OutreachRepository` (asyncpg),
:class:`OptOutMirror` by
:class:`~flowchat_conversation.outreach.redis_optouts.RedisOptOuts` (redis),
:class:`TemplateLookup` by
:class:`~flowchat_conversation.outreach.graph_templates.GraphTemplates` (aiohttp),
:class:`TenantZones` by
:class:`~flowchat_conversation.outreach.tenant_zones.TenantServiceZones` (aiohttp) and
:class:`Accounts` by :class:`~flowchat_platform.tenant_client.TenantClient` and
:class:`HandoffReleaser` by the app (commerce's release: outreach never imports
commerce); the outbox
is :class:`~flowchat_conversation.outbox.Outbox`, shared with commerce.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from flowchat_contracts import CustomerIdentity
from flowchat_conversation.outreach.campaigns import (
    Campaign,
    CampaignMetrics,
    CampaignStatus,
    Candidate,
    NewCampaign,
    NewRecipient,
    PendingRecipient,
    RunningCampaign,
    StartedCampaign,
    StatusChange,
)
from flowchat_conversation.outreach.contacts import (
    Contact,
    ContactPatch,
    NewContact,
    OptInSource,
    Segment,
    UpsertCounts,
)
from flowchat_conversation.outreach.reminders import DueReminder, NewReminder, Reminder
from flowchat_conversation.outreach.template_catalog import Template
from flowchat_platform.accounts import AccountCredentials

# ------------------------------------------------------------ contacts


class ContactStore(Protocol):
    async def upsert_contacts(
        self, tenant_id: str, contacts: list[NewContact], *, source: OptInSource
    ) -> UpsertCounts: ...

    async def get_contact(self, tenant_id: str, contact_id: int) -> Contact | None: ...

    async def search_contacts(
        self, tenant_id: str, segment: Segment, *, limit: int, after_id: int
    ) -> list[Contact]: ...

    async def count_contacts(self, tenant_id: str, segment: Segment) -> int: ...

    async def patch_contact(
        self, tenant_id: str, contact_id: int, patch: ContactPatch
    ) -> Contact | None: ...

    async def set_marketing_opt_in(
        self,
        tenant_id: str,
        customer: CustomerIdentity,
        opt_in: bool,
        *,
        source: OptInSource,
        at: datetime,
    ) -> bool:
        """Record the preference of the person ``customer`` names, by any of its ids
        (creating the contact if needed, linking its ids); False when a newer preference
        was recorded already (this one is stale and changes nothing)."""

    async def marketing_states(self, tenant_id: str, wa_ids: Sequence[str]) -> dict[str, bool]:
        """``id → marketing_opt_in`` for every id (phone, BSUID) of the tenant's
        contacts that any of ``wa_ids`` names: an opt-out covers the whole person."""


class OptOutMirror(Protocol):
    """The copy of opt-outs the sender checks (``flowchat_contracts.optout_key``)."""

    async def mirror(self, tenant_id: str, states: Mapping[str, bool]) -> None:
        """``wa_id → marketing_opt_in``: False joins the tenant's opt-out set, True leaves it."""


# ------------------------------------------------------------ campaigns


class CampaignStore(Protocol):
    async def candidates(
        self, tenant_id: str, segment: Segment, *, cap_window_s: int
    ) -> list[Candidate]: ...

    async def insert_campaign(
        self, campaign: NewCampaign, recipients: list[NewRecipient]
    ) -> Campaign: ...

    async def get_campaign(self, tenant_id: str, campaign_id: str) -> Campaign | None: ...

    async def list_campaigns(
        self, tenant_id: str, *, limit: int, after: tuple[datetime, str] | None = None
    ) -> list[Campaign]:
        """Newest first; ``after``: the (created_at, campaign_id) of the last seen."""

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

    async def list_templates(self, waba_id: str, access_token: str) -> list[Template]: ...


class TenantZones(Protocol):
    async def timezone(self, tenant_id: str) -> str: ...


# ------------------------------------------------------------ the campaign runner


class CampaignBatch(Protocol):
    """One transaction on one campaign, holding its row lock."""

    async def lock(self) -> RunningCampaign | None:
        """The campaign if it is running and no other replica holds it; else None."""

    async def inflight(self, window_s: float) -> int:
        """Recipients queued less than ``window_s`` ago still waiting for a status."""

    async def pending(self, limit: int, *, cap_window_s: int) -> list[PendingRecipient]: ...

    async def mark_queued(self, contact_ids: list[int]) -> None: ...

    async def mark_excluded(self, rows: list[tuple[int, str]]) -> None: ...

    async def set_paced_until(self, at: datetime) -> None: ...

    async def complete_if_done(self) -> bool: ...


class RunnerStore(Protocol):
    async def activate_due(self) -> list[StartedCampaign]:
        """Scheduled campaigns whose time has come → running; which they are."""

    async def running_campaigns(self) -> list[str]: ...

    def campaign_batch(self, campaign_id: str) -> AbstractAsyncContextManager[CampaignBatch]: ...


# ------------------------------------------------------------ reminders


class ReminderStore(Protocol):
    async def insert_reminder(self, reminder: NewReminder) -> tuple[Reminder, bool]:
        """Insert; with a dedupe key already used, the existing reminder and False."""

    async def get_reminder(self, tenant_id: str, reminder_id: str) -> Reminder | None: ...

    async def list_reminders(
        self,
        tenant_id: str,
        *,
        state: str | None,
        limit: int,
        after: tuple[datetime, str] | None = None,
    ) -> list[Reminder]:
        """By due time; ``after``: the (due_at, reminder_id) of the last seen."""

    async def cancel_reminder(self, tenant_id: str, reminder_id: str) -> Reminder | None: ...

    async def cancel_reference(self, tenant_id: str, kind: str, reference: str) -> int: ...


class DueBatch(Protocol):
    #: After :meth:`claim`: the due time of the first pending reminder not due yet.
    next_due: datetime | None

    async def claim(self, limit: int) -> tuple[datetime, list[DueReminder]]:
        """The database's time and the due pending reminders, locked (SKIP LOCKED)."""

    async def fired(self, reminder_id: str, outcome: str) -> None: ...

    async def skipped(self, reminder_id: str, reason: str) -> None: ...

    async def postpone(self, reminder_id: str, until: datetime) -> None: ...


class SchedulerStore(Protocol):
    def due_batch(self) -> AbstractAsyncContextManager[DueBatch]: ...


class OutreachStore(
    ContactStore, CampaignStore, ReminderStore, RunnerStore, SchedulerStore, Protocol
):
    """Every table outreach uses (the outreach repository implements it)."""


# ------------------------------------------------------------ hand-offs


class HandoffReleaser(Protocol):
    """Ends a customer's operator hand-off as ``POST …/conversations/{wa_id}/release``
    does (the bot speaks again); the inbox's ``handoff_resolved`` asks for it."""

    async def release_handoff(
        self, tenant_id: str, account_id: str, customer: CustomerIdentity
    ) -> bool:
        """True when a hand-off was open and is released now; False when none was open
        (already released: a redelivered event does nothing)."""
        ...

    async def take_over(self, tenant_id: str, account_id: str, customer: CustomerIdentity) -> bool:
        """An agent took the conversation over in the inbox: open the hand-off (the bot
        stays quiet). False when one was open already."""
        ...
