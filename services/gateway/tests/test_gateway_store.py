"""The gateway's Redis store against a private ``redis-server``: a fresh server has no
scripts loaded, like one that restarted under a running gateway."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowchat_contracts.shared_state import customer_window_key
from flowchat_gateway.store import CUSTOMER_WINDOW_TTL_S, GatewayStore
from flowchat_platform.redis import create_redis
from flowchat_platform.testing import private_redis_server

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_redis_url(tmp_path: Path) -> Iterator[str]:
    with private_redis_server(tmp_path) as url:
        yield url


async def test_record_marks_and_windows_in_one_go_even_without_loaded_scripts(
    fresh_redis_url: str,
) -> None:
    redis = create_redis(fresh_redis_url)
    store = GatewayStore(redis)
    try:
        assert await redis.script_exists(store._batcher._bundle.sha or "0" * 40) == [False]
        dedupe = store.dedupe_key("acc-1", "evt-1")
        window = customer_window_key("t-1", "acc-1", "15550001111")
        await store.record(
            [dedupe],
            7 * 24 * 3600,
            [("t-1", "acc-1", "15550001111", 200), ("t-1", "acc-1", "15550001111", 100)],
        )
        assert store._batcher.batches == 1  # the mark and the window: one EVALSHA
        assert await store.seen([dedupe, store.dedupe_key("acc-1", "evt-2")]) == {dedupe}
        assert await redis.get(window) == b"200"
        assert 0 < await redis.ttl(window) <= CUSTOMER_WINDOW_TTL_S
        await store.record([], 60, [("t-1", "acc-1", "15550001111", 150)])  # older: kept at 200
        assert await redis.get(window) == b"200"
        await store.record([], 60, [("t-1", "acc-1", "15550001111", 300)])
        assert await redis.get(window) == b"300"
    finally:
        await redis.aclose()


async def test_concurrent_webhooks_share_one_round_trip(fresh_redis_url: str) -> None:
    redis = create_redis(fresh_redis_url)
    store = GatewayStore(redis)
    try:
        keys = [store.dedupe_key(f"acc-{n % 3}", f"evt-{n}") for n in range(30)]
        await store.record(keys[:10], 60)
        before = store._batcher.batches
        found = await asyncio.gather(*(store.seen([key]) for key in keys))
        assert set().union(*found) == set(keys[:10])
        # 30 checks in flight at once: far fewer batches than checks
        assert store._batcher.batches - before <= 3
    finally:
        await redis.aclose()
