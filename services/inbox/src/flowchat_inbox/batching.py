"""Batched writes: history ops that arrive together are applied in one transaction
(:class:`flowchat_platform.batching.PartitionedBatcher`).

The consumer hands each op to :meth:`Batcher.submit`, which resolves once the op's
transaction has committed (the platform acks the queue message only then). Workers
each own a partition — one number's ops (:func:`~flowchat_inbox.service.partition_key`)
always go to one worker, in arrival order, so two batches never wait on each other's
thread rows. A worker takes what is queued for it (up to ``max_batch``); when a batch
fails it is rolled back whole and each op is retried alone, so one bad op fails only
itself. Committed ops' live updates go to :class:`Live` (the agents' streams).
"""

from __future__ import annotations

from flowchat_inbox import metrics
from flowchat_inbox.ports import Applied, Live, Op
from flowchat_inbox.service import HistoryService, partition_key
from flowchat_platform.batching import PartitionedBatcher


class Batcher(PartitionedBatcher[Op, Applied]):
    def __init__(
        self, service: HistoryService, live: Live, *, workers: int = 4, max_batch: int = 200
    ) -> None:
        super().__init__(workers=workers, max_batch=max_batch)
        self._service = service
        self._live = live

    def _key(self, item: Op) -> str:
        return partition_key(item)

    async def _apply_batch(self, items: list[Op]) -> list[Applied]:
        return await self._service.apply(items)

    async def _apply_one(self, item: Op) -> Applied:
        (applied,) = await self._service.apply([item])
        return applied

    def _observe(self, size: int) -> None:
        metrics.BATCH_SIZE.observe(size)

    def _committed(self, result: Applied) -> None:
        if result.live is not None:
            self._live.publish(result.tenant_id, result.live)
