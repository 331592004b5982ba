"""The outbox relay: publishes committed status-change events, then forgets them.

Design (transactional outbox): the status transaction writes the event into
``outbox`` next to the change; this loop takes a batch (``FOR UPDATE SKIP LOCKED``,
so replicas share the work), publishes every event with a broker confirm, and
deletes the batch in the same transaction. A crash or a broker failure between the
publish and the delete rolls the batch back, so it is published again: delivery is
at-least-once, and subscribers deduplicate by the AMQP ``message_id`` (the event id).
The relay wakes at once when a commit wrote events, and polls as a fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from flowchat_platform.logs import get_logger
from flowchat_state_manager import metrics
from flowchat_state_manager.ports import OutboxStore

log = get_logger(__name__)

#: ``publish(routing_key, body, event_id)``: returns once the broker confirmed.
Publish = Callable[[str, bytes, str], Awaitable[None]]


class OutboxRelay:
    def __init__(
        self,
        repository: OutboxStore,
        publish: Publish,
        *,
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        self._repo = repository
        self._publish = publish
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.max_backoff_s = max_backoff_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def relay_once(self) -> int:
        """Publish one batch; return how many events were published (0: outbox empty)."""
        async with self._repo.outbox_batch(self.batch_size) as items:
            if items:
                results = await asyncio.gather(
                    *(self._publish(i.routing_key, i.body, i.event_id) for i in items),
                    return_exceptions=True,
                )
                failures = [r for r in results if isinstance(r, BaseException)]
                if failures:
                    metrics.EVENTS_PUBLISHED.labels("failed").inc(len(failures))
                    raise failures[0]
        metrics.EVENTS_PUBLISHED.labels("confirmed").inc(len(items))
        return len(items)

    async def run(self) -> None:
        backoff = 0.5
        while True:
            self._wake.clear()
            try:
                published = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - broker or database down: retry later
                log.warning("outbox relay failed; retrying", error=repr(exc), delay_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            backoff = 0.5
            if published < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval_s)
