"""The outbox port: where commerce and outreach hand the commands they send
(``OutboundCommand`` → ``flowchat.outbound``) and the few events they publish
(``HandoffRequested``, and for the relay ``OrderChanged`` / ``CampaignChanged`` →
``flowchat.events``). Wired to
:class:`~flowchat_conversation.amqp_outbox.AmqpOutbox` in the app."""

from __future__ import annotations

from typing import Protocol

from flowchat_contracts import HandoffRequested, OutboundCommand
from flowchat_contracts.tenant_events import CampaignChanged, OrderChanged

Event = HandoffRequested | OrderChanged | CampaignChanged


class Outbox(Protocol):
    async def send(self, command: OutboundCommand) -> None:
        """Publish one command and return once the broker confirmed it."""

    async def publish_event(self, event: Event) -> None:
        """Publish one event on ``flowchat.events`` (key ``<tenant>.<account>.<kind>``,
        AMQP ``message_id`` = ``event_id``) once the broker confirmed it."""
