"""Live updates: each tenant's subscribers (the agents' event streams) get every new
message, status change and assignment change of their tenant: what this process
receives from the broker (:mod:`.live_fanout`), every replica's updates.

A subscriber that stops reading is dropped once its buffer is full (it reconnects and
pages the history) rather than holding the writers back.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from flowchat_inbox import metrics

#: The end of a stream whose reader fell behind.
OVERFLOW: dict[str, Any] = {"type": "overflow"}


class LiveHub:
    def __init__(self, buffer: int = 1000) -> None:
        self._buffer = buffer
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)

    def publish(self, tenant_id: str, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers.get(tenant_id, ())):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._subscribers[tenant_id].discard(queue)
                queue.get_nowait()
                queue.put_nowait(OVERFLOW)

    @asynccontextmanager
    async def subscribe(self, tenant_id: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._buffer)
        self._subscribers[tenant_id].add(queue)
        metrics.STREAMS.inc()
        try:
            yield queue
        finally:
            metrics.STREAMS.dec()
            subscribers = self._subscribers.get(tenant_id)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[tenant_id]
