"""Batched writes: history ops that arrive together are applied in one transaction.

The consumer hands each op to :meth:`Batcher.submit`, which resolves once the op's
transaction has committed (the platform acks the queue message only then). Workers
each own a partition — one number's ops (:func:`~flowchat_inbox.service.partition_key`)
always go to one worker, in arrival order, so two batches never wait on each other's
thread rows. A worker takes what is queued for it (up to ``max_batch``); when a batch
fails it is rolled back whole and each op is retried alone, so one bad op fails only
itself. Committed ops' live updates go to :class:`Live` (the agents' streams).
"""

from __future__ import annotations

import asyncio
import zlib

from flowchat_inbox import metrics
from flowchat_inbox.ports import Applied, Live, Op
from flowchat_inbox.service import HistoryService, partition_key
from flowchat_platform.logs import get_logger

log = get_logger(__name__)

_Item = tuple[Op, asyncio.Future[Applied]]


class Batcher:
    def __init__(
        self, service: HistoryService, live: Live, *, workers: int = 4, max_batch: int = 200
    ) -> None:
        self._service = service
        self._live = live
        self.max_batch = max_batch
        self._queues: list[asyncio.Queue[_Item]] = [asyncio.Queue() for _ in range(workers)]

    async def submit(self, op: Op) -> Applied:
        future: asyncio.Future[Applied] = asyncio.get_running_loop().create_future()
        index = zlib.crc32(partition_key(op).encode()) % len(self._queues)
        self._queues[index].put_nowait((op, future))
        return await future

    async def run(self) -> None:
        await asyncio.gather(*(self._worker(q) for q in self._queues))

    async def _worker(self, queue: asyncio.Queue[_Item]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            live = [(op, f) for op, f in batch if not f.done()]
            if live:
                await self._apply(live)

    def _done(self, future: asyncio.Future[Applied], applied: Applied) -> None:
        if applied.live is not None:
            self._live.publish(applied.tenant_id, applied.live)
        if not future.done():
            future.set_result(applied)

    async def _apply(self, batch: list[_Item]) -> None:
        metrics.BATCH_SIZE.observe(len(batch))
        if len(batch) > 1:
            try:
                results = await self._service.apply([op for op, _ in batch])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried one by one below
                log.info("batch rolled back; applying one by one", size=len(batch), error=repr(exc))
            else:
                for (_, future), applied in zip(batch, results, strict=True):
                    self._done(future, applied)
                return
        for op, future in batch:
            try:
                (applied,) = await self._service.apply([op])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the submitter decides the fate
                if not future.done():
                    future.set_exception(exc)
            else:
                self._done(future, applied)
