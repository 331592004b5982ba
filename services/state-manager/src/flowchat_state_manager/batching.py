"""Batched writes: events that arrive together are applied in one transaction.

The consumer hands each decoded event to :meth:`Batcher.submit`, which resolves once
the event's transaction has committed (so the platform acks it only then). Workers
each own a partition of messages — an event goes to the worker chosen by its WAMID
(or FlowChat id when it has none) — so one message's events are applied in arrival
order by one worker, and two batches never wait on each other's row locks. A worker
takes whatever is queued for it (up to ``max_batch``) and applies it with
:meth:`StateService.apply_batch`; if the batch fails (one event rejected, a conflict,
the database gone) it is rolled back whole and every event is retried alone, so one
bad event only fails itself.
"""

from __future__ import annotations

import asyncio
import zlib

from flowchat_contracts import SendResult, StatusUpdate
from flowchat_platform.logs import get_logger
from flowchat_state_manager.service import Handled, StateService

log = get_logger(__name__)

Event = SendResult | StatusUpdate
_Item = tuple[Event, asyncio.Future[Handled]]


def partition_key(event: Event) -> str:
    if event.provider_message_id:
        return f"{event.provider}:{event.provider_message_id}"
    return event.message_id or ""


class Batcher:
    def __init__(self, service: StateService, *, workers: int = 4, max_batch: int = 100):
        self._service = service
        self.max_batch = max_batch
        self._queues: list[asyncio.Queue[_Item]] = [asyncio.Queue() for _ in range(workers)]

    async def submit(self, event: Event) -> Handled:
        future: asyncio.Future[Handled] = asyncio.get_running_loop().create_future()
        index = zlib.crc32(partition_key(event).encode()) % len(self._queues)
        self._queues[index].put_nowait((event, future))
        return await future

    async def run(self) -> None:
        """Run every worker until cancelled."""
        await asyncio.gather(*(self._worker(q) for q in self._queues))

    async def _worker(self, queue: asyncio.Queue[_Item]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            live = [(e, f) for e, f in batch if not f.done()]  # a cancelled submit
            if live:
                await self._apply(live)

    async def _apply(self, batch: list[_Item]) -> None:
        if len(batch) > 1:
            try:
                results = await self._service.apply_batch([e for e, _ in batch])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried one by one below
                log.info("batch rolled back; applying one by one", size=len(batch), error=repr(exc))
            else:
                for (_, future), handled in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(handled)
                return
        for event, future in batch:
            try:
                handled = await self._service.apply(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the submitter decides the fate
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(handled)
