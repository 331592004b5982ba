"""The order and campaign facts the service publishes for the relay (no I/O here).

``order_changed`` and ``campaign_changed`` (:mod:`flowchat_contracts.tenant_events`)
exist only for tenants' endpoints, so they are published only while some endpoint of
the tenant subscribes to the event type they become (the relay keeps that set; the
:class:`Subscribers` port reads it, ``flowchat_platform.subscriptions.SubscriptionView``
in the app). They go out through the :class:`~flowchat_conversation.outbox.Outbox`
port like the hand-off events: an order's fact inside the conversation's locked
transaction with an id derived from the change (a redelivery publishes the same id
again and the relay stores it once), a campaign's once its transition is committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from flowchat_contracts import new_id
from flowchat_contracts.tenant_events import (
    CAMPAIGN_EVENT_TYPES,
    ORDER_EVENT_TYPES,
    CampaignChange,
    CampaignChanged,
    CampaignData,
    OrderChange,
    OrderChanged,
    OrderData,
)
from flowchat_conversation import metrics
from flowchat_conversation.outbox import Outbox


class Subscribers(Protocol):
    async def wants(self, tenant_id: str, event_type: str) -> bool:
        """Does some enabled endpoint of the tenant subscribe to ``event_type``?"""


@dataclass
class Facts:
    outbox: Outbox
    subscribers: Subscribers

    async def order(
        self,
        change: OrderChange,
        *,
        tenant_id: str,
        account_id: str,
        event_id: str,
        order: OrderData,
        correlation_id: str | None = None,
    ) -> bool:
        """Publish the order's change when someone subscribes; True when published."""
        if not await self.subscribers.wants(tenant_id, ORDER_EVENT_TYPES[change]):
            metrics.FACTS.labels("order", "unsubscribed").inc()
            return False
        await self.outbox.publish_event(
            OrderChanged(
                tenant_id=tenant_id,
                account_id=account_id,
                event_id=event_id,
                correlation_id=correlation_id or new_id(),
                change=change,
                order=order,
            )
        )
        metrics.FACTS.labels("order", "published").inc()
        return True

    async def campaign(
        self,
        change: CampaignChange,
        *,
        tenant_id: str,
        account_id: str,
        campaign: CampaignData,
        event_id: str | None = None,
    ) -> bool:
        """Publish the campaign's change when someone subscribes; True when published."""
        if not await self.subscribers.wants(tenant_id, CAMPAIGN_EVENT_TYPES[change]):
            metrics.FACTS.labels("campaign", "unsubscribed").inc()
            return False
        await self.outbox.publish_event(
            CampaignChanged(
                tenant_id=tenant_id,
                account_id=account_id,
                event_id=event_id or new_id(),
                change=change,
                campaign=campaign,
            )
        )
        metrics.FACTS.labels("campaign", "published").inc()
        return True
