"""Who reads the state-manager's status events now: the app's
:class:`~flowchat_state_manager.ports.StatusAudience`.

- **Every status, every message**: while one of the queues named in
  ``status_reader_queues`` exists (the inbox's ``inbox.history`` by default: it is
  declared by the inbox alone, and keeps what arrives while the inbox is down), or with
  ``status_events_for_all`` (subscribers of an operator's own, bound to
  ``flowchat.events``). A queue found is trusted for ``present_ttl_s``; one found
  missing is looked for again after ``absent_ttl_s``. When the broker cannot say,
  every status is published (an event nobody reads costs a publish; one not published
  is lost to its reader).
- **A tenant's statuses**: while some enabled endpoint of the tenant takes
  ``message.status`` (the relay's subscriptions, ``flowchat_platform.subscriptions``).
- The conversation service's (a campaign message's statuses, any ``failed``) are
  always wanted: :class:`~flowchat_state_manager.models.StatusReaders`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Sequence

from flowchat_contracts.webhooks import MessageStatus
from flowchat_platform.amqp import Amqp
from flowchat_platform.subscriptions import SubscriptionView
from flowchat_state_manager.models import StatusReaders

#: The relay's event type of status webhooks.
MESSAGE_STATUS: str = MessageStatus.model_fields["type"].default
EVERY = StatusReaders()


class BrokerAudience:
    def __init__(
        self,
        amqp: Amqp,
        subscriptions: SubscriptionView,
        *,
        reader_queues: Sequence[str],
        present_ttl_s: float = 30.0,
        absent_ttl_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._amqp = amqp
        self._subscriptions = subscriptions
        self._queues = tuple(reader_queues)
        self._present_ttl = present_ttl_s
        self._absent_ttl = absent_ttl_s
        self._clock = clock
        self._every = False
        self._until = float("-inf")
        self._lock = asyncio.Lock()

    async def readers(self, tenant_ids: Collection[str]) -> StatusReaders:
        if await self._every_status():
            return EVERY
        tenants = frozenset(
            [t for t in tenant_ids if await self._subscriptions.wants(t, MESSAGE_STATUS)]
        )
        return StatusReaders(every=False, tenants=tenants)

    async def _every_status(self) -> bool:
        if self._clock() < self._until:
            return self._every
        async with self._lock:  # one look for every writer waiting on it
            if self._clock() < self._until:
                return self._every
            every = False
            for name in self._queues:
                found = await self._amqp.queue_exists(name)
                if found is not False:  # there, or the broker cannot say
                    every = True
                    break
            self._every = every
            self._until = self._clock() + (self._present_ttl if every else self._absent_ttl)
            return every
