"""The campaign runner's idle cost: with no campaign running it waits for work instead of
ticking every ``tick_s`` (issue 26): a start or resume in this replica wakes it at once,
a scheduled start at its time, and the slow ``idle_s`` tick covers the rest; while a
campaign runs it ticks every ``tick_s``. No I/O: the store is a stand-in for the
``RunnerStore`` port that counts the runner's passes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from flowchat_conversation.outbox import Outbox
from flowchat_conversation.outreach.campaign_runner import CampaignRunner


class _Batch:
    async def lock(self) -> None:
        return None  # the campaign is another replica's: nothing to send


class CountingStore:
    """Each pass of the runner calls ``activate_due`` once: its times are the ticks."""

    def __init__(self) -> None:
        self.ticks: list[float] = []
        self.running: list[str] = []

    async def activate_due(self) -> list[Any]:
        self.ticks.append(time.monotonic())
        return []

    async def running_campaigns(self) -> list[str]:
        return list(self.running)

    @contextlib.asynccontextmanager
    async def campaign_batch(self, campaign_id: str) -> AsyncIterator[_Batch]:
        yield _Batch()


@contextlib.asynccontextmanager
async def running(runner: CampaignRunner) -> AsyncIterator[None]:
    task = asyncio.create_task(runner.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def runner_on(store: CountingStore) -> CampaignRunner:
    # the outbox is never reached: no campaign batch is locked here
    return CampaignRunner(
        store=cast(Any, store), outbox=cast(Outbox, object()), tick_s=0.05, idle_s=30
    )


async def until(predicate: Any, timeout_s: float = 2.0) -> float:
    """Seconds until ``predicate()`` held (fails after ``timeout_s``)."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout_s, "not in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_an_idle_runner_does_not_tick_until_woken():
    store = CountingStore()
    runner = runner_on(store)
    async with running(runner):
        await until(lambda: len(store.ticks) == 1)  # the first pass, at start
        await asyncio.sleep(0.5)  # ten tick_s: an idle runner stays asleep
        assert len(store.ticks) == 1
        runner.wake()  # a campaign started (or resumed) through this replica
        waited = await until(lambda: len(store.ticks) == 2)
        assert waited < 0.5


async def test_a_scheduled_start_wakes_the_runner_at_its_time():
    store = CountingStore()
    runner = runner_on(store)
    async with running(runner):
        await until(lambda: len(store.ticks) == 1)
        told = time.monotonic()
        runner.wake(datetime.now(UTC) + timedelta(seconds=0.4))
        runner.wake(datetime.now(UTC) + timedelta(seconds=20))  # a later one keeps the earlier
        # (a wake re-arms the sleep with the earlier deadline: one pass may come at once)
        await until(lambda: any(t - told >= 0.35 for t in store.ticks), timeout_s=1.5)
        ticks = len(store.ticks)
        assert ticks <= 3
        await asyncio.sleep(0.5)
        assert len(store.ticks) == ticks  # then idle again


async def test_a_running_campaign_keeps_the_runner_ticking_and_it_rests_after():
    store = CountingStore()
    store.running = ["cmp_1"]
    runner = runner_on(store)
    async with running(runner):
        await until(lambda: len(store.ticks) >= 5)  # every tick_s while one runs
        store.running = []
        await asyncio.sleep(0.2)  # the next pass sees none running
        settled = len(store.ticks)
        await asyncio.sleep(0.5)
        assert len(store.ticks) == settled
