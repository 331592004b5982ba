"""Batched writes: work that arrives together is applied in one transaction.

A consumer hands each item to :meth:`PartitionedBatcher.submit`, which resolves once the
item's transaction has committed (so the platform acks its message only then). Workers
each own a partition — an item goes to the worker chosen by :meth:`~PartitionedBatcher._key`
(crc32 modulo the workers) — so one key's items are applied in arrival order by one
worker, and two batches never wait on each other's row locks. A worker takes whatever
is queued for it (up to ``max_batch``) and applies it with
:meth:`~PartitionedBatcher._apply_batch`; if the batch fails (one item rejected, a
conflict, the database gone) it is rolled back whole and every item is retried alone
(:meth:`~PartitionedBatcher._apply_one`), so one bad item only fails itself.

Under load (a worker's last batch took more than one item: items arrive faster than it
commits), a worker lingers ``linger_s`` after taking what is queued and takes what came
meanwhile, so a busy worker commits fewer, larger batches; an idle one applies an item
at once (no added latency at low rates).

A service subclasses it with its own item and result types (the state-manager's events,
the inbox's history ops).
"""

from __future__ import annotations

import asyncio
import zlib
from abc import ABC, abstractmethod
from typing import Any, Generic, TypeVar

from flowchat_platform.logs import get_logger

__all__ = ["PartitionedBatcher"]

log = get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class PartitionedBatcher(ABC, Generic[T, R]):
    """Items of type ``T`` applied in batches by ``workers`` partitioned workers; each
    submitter gets its item's result ``R`` (or its error, raised)."""

    def __init__(self, *, workers: int = 4, max_batch: int = 100, linger_s: float = 0.0) -> None:
        self.max_batch = max_batch
        self.linger_s = linger_s
        self._queues: list[asyncio.Queue[tuple[T, asyncio.Future[R]]]] = [
            asyncio.Queue() for _ in range(workers)
        ]

    @abstractmethod
    def _key(self, item: T) -> str:
        """The partition of ``item``: items of one key are applied in arrival order."""

    @abstractmethod
    async def _apply_batch(self, items: list[T]) -> list[R]:
        """Apply ``items`` in one transaction; a result per item, in their order."""

    @abstractmethod
    async def _apply_one(self, item: T) -> R:
        """Apply ``item`` alone (after its batch was rolled back)."""

    def _committed(self, result: R) -> None:
        """Called with each committed item's result before its submitter gets it."""

    def _observe(self, size: int) -> None:
        """Called with the size of each batch a worker applies (for metrics)."""

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        index = zlib.crc32(self._key(item).encode()) % len(self._queues)
        self._queues[index].put_nowait((item, future))
        return await future

    async def run(self) -> None:
        """Run every worker until cancelled."""
        await asyncio.gather(*(self._worker(q) for q in self._queues))

    async def _worker(self, queue: asyncio.Queue[tuple[T, asyncio.Future[R]]]) -> None:
        loaded = False
        while True:
            batch = [await queue.get()]
            self._take(queue, batch)
            if loaded and self.linger_s > 0 and len(batch) < self.max_batch:
                # a plain sleep, then what is queued: no cancelled get() can drop an item
                await asyncio.sleep(self.linger_s)
                self._take(queue, batch)
            loaded = len(batch) > 1
            live = [(i, f) for i, f in batch if not f.done()]  # a cancelled submit
            if live:
                await self._apply(live)

    def _take(self, queue: asyncio.Queue[tuple[T, asyncio.Future[R]]], batch: list[Any]) -> None:
        while len(batch) < self.max_batch and not queue.empty():
            batch.append(queue.get_nowait())

    def _done(self, future: asyncio.Future[R], result: R) -> None:
        self._committed(result)
        if not future.done():
            future.set_result(result)

    async def _apply(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self._observe(len(batch))
        if len(batch) > 1:
            try:
                results = await self._apply_batch([item for item, _ in batch])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried one by one below
                log.info("batch rolled back; applying one by one", size=len(batch), error=repr(exc))
            else:
                for (_, future), result in zip(batch, results, strict=True):
                    self._done(future, result)
                return
        for item, future in batch:
            try:
                result = await self._apply_one(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the submitter decides the fate
                if not future.done():
                    future.set_exception(exc)
            else:
                self._done(future, result)
