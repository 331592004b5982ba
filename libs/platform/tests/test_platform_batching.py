import asyncio

import pytest

from flowchat_platform.batching import PartitionedBatcher


class Recorder(PartitionedBatcher[str, str]):
    """Applies ``key:value`` items; an item ``bad`` fails (and with it its batch)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.batches: list[list[str]] = []
        self.committed: list[str] = []
        self.sizes: list[int] = []

    def _key(self, item: str) -> str:
        return item.split(":", maxsplit=1)[0]

    async def _apply_batch(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        if any(i.endswith(":bad") for i in items):
            raise ValueError("bad item")
        return [i.upper() for i in items]

    async def _apply_one(self, item: str) -> str:
        (result,) = await self._apply_batch([item])
        return result

    def _committed(self, result: str) -> None:
        self.committed.append(result)

    def _observe(self, size: int) -> None:
        self.sizes.append(size)


async def _run(batcher: Recorder, items: list[str]) -> list[object]:
    worker = asyncio.create_task(batcher.run())
    try:
        return await asyncio.gather(*(batcher.submit(i) for i in items), return_exceptions=True)
    finally:
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker


async def test_items_queued_together_are_applied_as_one_batch_in_order():
    batcher = Recorder(workers=1, max_batch=10)
    results = await _run(batcher, ["a:1", "a:2", "b:1"])
    assert results == ["A:1", "A:2", "B:1"]
    assert batcher.batches == [["a:1", "a:2", "b:1"]]
    assert batcher.sizes == [3]
    assert batcher.committed == ["A:1", "A:2", "B:1"]


async def test_a_failing_batch_is_retried_item_by_item_and_fails_only_the_bad_one():
    batcher = Recorder(workers=1, max_batch=10)
    results = await _run(batcher, ["a:1", "a:bad", "a:3"])
    assert results[0] == "A:1"
    assert isinstance(results[1], ValueError)
    assert results[2] == "A:3"
    assert batcher.batches == [["a:1", "a:bad", "a:3"], ["a:1"], ["a:bad"], ["a:3"]]
    assert batcher.committed == ["A:1", "A:3"]


async def test_max_batch_bounds_a_batch_and_one_key_stays_on_one_worker():
    batcher = Recorder(workers=3, max_batch=2)
    items = [f"k:{n}" for n in range(5)]
    assert await _run(batcher, items) == [i.upper() for i in items]
    assert batcher.batches == [["k:0", "k:1"], ["k:2", "k:3"], ["k:4"]]


async def test_under_load_a_worker_lingers_and_takes_what_arrives_meanwhile():
    batcher = Recorder(workers=1, max_batch=10, linger_s=0.3)
    worker = asyncio.create_task(batcher.run())
    try:
        # queued together: a batch of two, so the worker is under load
        first = [asyncio.ensure_future(batcher.submit(i)) for i in ("a:1", "a:2")]
        assert await asyncio.wait_for(asyncio.gather(*first), 5) == ["A:1", "A:2"]
        third = asyncio.ensure_future(batcher.submit("a:3"))
        await asyncio.sleep(0.05)  # within the linger
        fourth = asyncio.ensure_future(batcher.submit("a:4"))
        assert list(await asyncio.wait_for(asyncio.gather(third, fourth), 5)) == ["A:3", "A:4"]
    finally:
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker
    assert batcher.batches == [["a:1", "a:2"], ["a:3", "a:4"]]


async def test_an_idle_worker_applies_an_item_at_once_and_without_linger_never_waits():
    loop = asyncio.get_running_loop()
    for linger in (30.0, 0.0):
        batcher = Recorder(workers=1, max_batch=10, linger_s=linger)
        worker = asyncio.create_task(batcher.run())
        try:
            for item in ("a:1", "a:2"):
                t0 = loop.time()
                assert await asyncio.wait_for(batcher.submit(item), 5) == item.upper()
                assert loop.time() - t0 < 1.0
            # without a linger, a loaded worker still applies what it has at once
            both = [asyncio.ensure_future(batcher.submit(i)) for i in ("a:3", "a:4")]
            await asyncio.wait_for(asyncio.gather(*both), 5)
            if linger == 0.0:
                t0 = loop.time()
                assert await asyncio.wait_for(batcher.submit("a:5"), 5) == "A:5"
                assert loop.time() - t0 < 1.0
        finally:
            worker.cancel()
            with pytest.raises(asyncio.CancelledError):
                await worker
        assert batcher.batches[:3] == [["a:1"], ["a:2"], ["a:3", "a:4"]]
