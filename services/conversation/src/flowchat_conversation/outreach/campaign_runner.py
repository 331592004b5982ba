"""The campaign runner: sends running campaigns' pending recipients, paced and checkpointed.

While any campaign is running, every ``tick_s`` each replica:

1. starts the scheduled campaigns whose time has come (one conditional ``UPDATE``);
2. for each running campaign, opens a transaction and locks the campaign row with
   ``FOR UPDATE SKIP LOCKED`` (a campaign is driven by one replica at a time; the
   others skip it), then, unless it is quiet hours or too many of its messages are
   still in flight (``max_inflight`` queued in the last ``inflight_window_s`` with no
   status yet: the sender's limits push back here; a message whose status never comes,
   parked by the sender with its outcome unknown, stops counting after the window
   instead of holding the campaign forever), takes the next ``n`` pending recipients,
   where ``n`` follows the campaign's rate
   (:func:`~flowchat_conversation.outreach.campaigns.pace`) with the pacing clock
   ``paced_until`` kept *in the row* (so two replicas together still send at the rate,
   and a pause takes effect within one small batch);
3. re-checks each one (blocked, inactive, opted out, frequency cap: things may have
   changed since the campaign was created; an erased customer's suppression entry,
   ``suppressed``, however the contact came back) and marks the others ``excluded``;
4. publishes the commands with publisher confirms, then marks them ``queued`` and
   commits.

A crash between 4's publish and its commit leaves the rows ``pending``: they are
published again after the restart with the *same* message id and idempotency key
``campaign:<campaign>:<contact>``, which the sender drops as a duplicate, so no
contact is messaged twice. When no pending row is left the campaign is ``completed``.

With no campaign running the runner sleeps until it is woken (:meth:`CampaignRunner.wake`:
a campaign started or resumed in this replica, or the start time of one scheduled here)
or ``idle_s`` passes: that slow tick finds the campaigns started through another replica,
scheduled ones, and those left running by a crashed replica. An idle service costs no
more than one query every ``idle_s``.

For the relay's subscribers (``facts``): a campaign started on schedule is
``campaign.started``, a finished one ``campaign.completed`` (published in the batch's
transaction with an id of its own: a retried completion is stored once).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flowchat_contracts import OutboundCommand
from flowchat_contracts.tenant_events import CampaignData
from flowchat_conversation import metrics
from flowchat_conversation.facts import Facts
from flowchat_conversation.outbox import Outbox
from flowchat_conversation.outreach.campaigns import (
    RunningCampaign,
    exclusion,
    idempotency_key,
    in_quiet_hours,
    pace,
)
from flowchat_conversation.outreach.ports import RunnerStore
from flowchat_conversation.outreach.template_catalog import Template, content
from flowchat_platform.logs import get_logger

log = get_logger(__name__)


@dataclass
class CampaignRunner:
    store: RunnerStore
    outbox: Outbox
    tick_s: float = 0.2
    max_inflight: int = 5000
    inflight_window_s: float = 120.0
    #: Campaign facts for the relay's subscribers (None: none published).
    facts: Facts | None = None
    #: The safety tick while no campaign runs (scheduled starts, other replicas, crashes).
    idle_s: float = 5.0
    #: The ids among some of a tenant's that belong to an erased customer (None: no check).
    suppressed: Callable[[str, Sequence[str]], Awaitable[set[str]]] | None = None
    _woken: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    #: Whether the last tick saw a running campaign (then the runner ticks every tick_s).
    _busy: bool = field(default=False, init=False, repr=False)
    #: The earliest scheduled start this replica was told of and has not reached yet.
    _due: datetime | None = field(default=None, init=False, repr=False)

    def wake(self, at: datetime | None = None) -> None:
        """Work is there now (``at`` None) or will be at ``at`` (a scheduled start)."""
        if at is None:
            self._woken.set()
        elif self._due is None or at < self._due:
            self._due = at
            self._woken.set()  # the sleep is re-armed with the earlier deadline

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("campaign runner tick failed")
                await asyncio.sleep(min(5.0, self.tick_s * 10))
            await self._sleep()

    async def _sleep(self) -> None:
        if self._busy:
            await asyncio.sleep(self.tick_s)
            return
        timeout = self.idle_s
        if self._due is not None:
            timeout = min(timeout, max(0.0, (self._due - datetime.now(UTC)).total_seconds()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), timeout)
        self._woken.clear()  # a wake during the coming tick sets it again

    async def tick(self) -> int:
        """One pass over every running campaign; the number of messages queued."""
        if self._due is not None and self._due <= datetime.now(UTC):
            self._due = None  # this tick starts it (or the safety tick does, clocks apart)
        for started in await self.store.activate_due():
            log.info("campaign started on schedule", campaign_id=started.campaign_id)
            if self.facts is not None:
                await self.facts.campaign(
                    "started",
                    tenant_id=started.tenant_id,
                    account_id=started.account_id,
                    campaign=CampaignData(
                        campaign_id=started.campaign_id, name=started.name, status="running"
                    ),
                )
        sent = 0
        running = await self.store.running_campaigns()
        self._busy = bool(running)
        for campaign_id in running:
            sent += await self.step(campaign_id)
        return sent

    async def step(self, campaign_id: str) -> int:
        async with self.store.campaign_batch(campaign_id) as tx:
            campaign = await tx.lock()
            if campaign is None:
                return 0
            if in_quiet_hours(campaign.quiet_hours, campaign.timezone, campaign.now):
                return 0
            n, paced_until = pace(campaign.paced_until, campaign.now, campaign.rate_mps)
            if n == 0:
                return 0
            if self.max_inflight and await tx.inflight(self.inflight_window_s) >= self.max_inflight:
                return 0
            batch = await tx.pending(n, cap_window_s=campaign.frequency_cap.window_hours * 3600)
            if not batch:
                if await tx.complete_if_done():
                    await self._completed(campaign)
                return 0
            template = Template.from_graph(campaign.template)
            commands: list[OutboundCommand] = []
            queued: list[int] = []
            excluded: list[tuple[int, str]] = []
            erased: set[str] = set()
            if self.suppressed is not None:
                ids = {i for r in batch for i in (r.candidate.wa_id, r.candidate.address) if i}
                erased = await self.suppressed(campaign.tenant_id, sorted(ids))
            for row in batch:
                reason = exclusion(row.candidate, campaign.frequency_cap)
                if erased and {row.candidate.wa_id, row.candidate.address} & erased:
                    reason = "suppressed"
                if reason is not None:
                    excluded.append((row.candidate.contact_id, reason))
                    continue
                queued.append(row.candidate.contact_id)
                commands.append(
                    OutboundCommand(
                        tenant_id=campaign.tenant_id,
                        account_id=campaign.account_id,
                        correlation_id=row.message_id,
                        message_id=row.message_id,
                        idempotency_key=idempotency_key(
                            campaign.campaign_id, row.candidate.contact_id
                        ),
                        to=row.candidate.address or row.candidate.wa_id,
                        category=_category(campaign.category),
                        campaign_id=campaign.campaign_id,
                        content=content(template, row.components),
                    )
                )
            # Every publish confirmed before the checkpoint; any failure rolls back the
            # whole batch, which is published again (same keys) on the next tick.
            await asyncio.gather(*(self.outbox.send(c) for c in commands))
            await tx.mark_queued(queued)
            await tx.mark_excluded(excluded)
            await tx.set_paced_until(paced_until)
            metrics.CAMPAIGN_MESSAGES.labels("queued").inc(len(queued))
            metrics.CAMPAIGN_MESSAGES.labels("excluded").inc(len(excluded))
            if len(batch) < n and await tx.complete_if_done():
                await self._completed(campaign)
            return len(queued)

    async def _completed(self, campaign: RunningCampaign) -> None:
        log.info("campaign completed", campaign_id=campaign.campaign_id)
        if self.facts is not None:
            await self.facts.campaign(
                "completed",
                tenant_id=campaign.tenant_id,
                account_id=campaign.account_id,
                campaign=CampaignData(
                    campaign_id=campaign.campaign_id, status="completed", previous_status="running"
                ),
                event_id=f"campaign-completed-{campaign.campaign_id}",
            )


def _category(value: str) -> Any:
    return value if value in ("marketing", "utility", "authentication") else "marketing"
