"""Batched writes: events that arrive together are applied in one transaction
(:class:`flowchat_platform.batching.PartitionedBatcher`).

The consumer hands each decoded event to :meth:`Batcher.submit`, which resolves once
the event's transaction has committed (so the platform acks it only then). Workers
each own a partition of messages — an event goes to the worker chosen by its WAMID
(or FlowChat id when it has none) — so one message's events are applied in arrival
order by one worker, and two batches never wait on each other's row locks. A worker
takes whatever is queued for it (up to ``max_batch``) and applies it with
:meth:`StateService.apply_batch`; if the batch fails (one event rejected, a conflict,
the database gone) it is rolled back whole and every event is retried alone, so one
bad event only fails itself. Under load a worker lingers ``batch_linger_ms`` to take
what arrives meanwhile (fewer, larger transactions).
"""

from __future__ import annotations

from flowchat_contracts import SendResult, StatusUpdate
from flowchat_contracts.command_events import CommandParked
from flowchat_platform.batching import PartitionedBatcher
from flowchat_state_manager.service import Handled, StateService

Event = SendResult | StatusUpdate | CommandParked


def partition_key(event: Event) -> str:
    if isinstance(event, CommandParked):
        return event.message_id
    if event.provider_message_id:
        return f"{event.provider}:{event.provider_message_id}"
    return event.message_id or ""


class Batcher(PartitionedBatcher[Event, Handled]):
    def __init__(
        self,
        service: StateService,
        *,
        workers: int = 4,
        max_batch: int = 100,
        linger_s: float = 0.0,
    ):
        super().__init__(workers=workers, max_batch=max_batch, linger_s=linger_s)
        self._service = service

    def _key(self, item: Event) -> str:
        return partition_key(item)

    async def _apply_batch(self, items: list[Event]) -> list[Handled]:
        return await self._service.apply_batch(items)

    async def _apply_one(self, item: Event) -> Handled:
        return await self._service.apply(item)
