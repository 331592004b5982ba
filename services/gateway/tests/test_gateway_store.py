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


async def marked(store: GatewayStore, keys: list[str], ttl_s: int) -> None:
    """``mark_later`` and wait for it (the service does not)."""
    errors: list[BaseException] = []
    store.mark_later(keys, ttl_s, errors.append)
    await store.flush()
    assert errors == []


async def test_claim_and_windows_in_one_go_even_without_loaded_scripts(
    fresh_redis_url: str,
) -> None:
    redis = create_redis(fresh_redis_url)
    store = GatewayStore(redis)
    try:
        assert await redis.script_exists(store._batcher._bundle.sha or "0" * 40) == [False]
        dedupe = store.dedupe_key("acc-1", "evt-1")
        window = customer_window_key("t-1", "acc-1", "15550001111")
        first = await store.claim(
            [dedupe],
            30,
            [("t-1", "acc-1", "15550001111", 200), ("t-1", "acc-1", "15550001111", 100)],
        )
        assert store._batcher.batches == 1  # the claim and the window: one EVALSHA
        assert (first.done, first.in_flight) == (frozenset(), frozenset())
        assert await redis.get(dedupe) == first.token.encode()
        assert 0 < await redis.ttl(dedupe) <= 30
        assert await redis.get(window) == b"200"
        assert 0 < await redis.ttl(window) <= CUSTOMER_WINDOW_TTL_S
        await store.claim([], 30, [("t-1", "acc-1", "15550001111", 150)])  # older: kept
        assert await redis.get(window) == b"200"
        await store.claim([], 30, [("t-1", "acc-1", "15550001111", 300)])
        assert await redis.get(window) == b"300"
    finally:
        await redis.aclose()


async def test_a_claim_held_is_in_flight_until_marked_done_or_released(
    fresh_redis_url: str,
) -> None:
    redis = create_redis(fresh_redis_url)
    store = GatewayStore(redis)
    try:
        a, b = store.dedupe_key("acc-1", "evt-a"), store.dedupe_key("acc-1", "evt-b")
        first = await store.claim([a, b], 30)
        second = await store.claim([a, b], 30)
        assert second.in_flight == {a, b}
        assert second.done == frozenset()
        assert second.token != first.token
        # another request's token does not release the first's claims
        await store.release([a, b], second.token)
        assert (await store.claim([a], 30)).in_flight == {a}
        # the first request: a confirmed (marked done for the window), b not (released)
        await marked(store, [a], 7 * 24 * 3600)
        await store.release([b], first.token)
        assert await redis.ttl(a) > 7 * 24 * 3600 - 60
        third = await store.claim([a, b], 30)
        assert third.done == {a}
        assert third.in_flight == frozenset()  # b was free: claimed by the third
        assert await redis.get(b) == third.token.encode()
    finally:
        await redis.aclose()


async def test_marks_ride_with_the_next_claim_or_go_after_the_linger(
    fresh_redis_url: str,
) -> None:
    redis = create_redis(fresh_redis_url)
    store = GatewayStore(redis, mark_linger_s=0.2)
    try:
        a, b, c = (store.dedupe_key("acc-1", f"evt-{n}") for n in "abc")
        await store.claim([a, b], 30)
        errors: list[BaseException] = []
        store.mark_later([a], 600, errors.append)
        await asyncio.sleep(0.05)
        assert await redis.get(a) != b"1"  # waiting for a claim to ride with
        before = store._batcher.batches
        claimed = await store.claim([a, c], 30)
        assert store._batcher.batches == before + 1  # the mark and the claim: one EVALSHA
        assert claimed.done == {a}  # the mark ran first
        store.mark_later([b], 600, errors.append)
        await asyncio.sleep(0.4)  # no claim came: sent after the linger
        assert await redis.get(b) == b"1"
        assert errors == []
    finally:
        await redis.aclose()


async def test_a_mark_that_fails_reports_it(fresh_redis_url: str) -> None:
    redis = create_redis(fresh_redis_url)
    store = GatewayStore(redis, timeout_s=0.2)
    try:
        await redis.execute_command("CLIENT", "PAUSE", "1000", "ALL")
        errors: list[BaseException] = []
        store.mark_later([store.dedupe_key("acc-1", "evt-1")], 60, errors.append)
        await store.flush()
        assert len(errors) == 1  # timed out, reported (not raised into the loop)
    finally:
        await redis.aclose()


async def test_concurrent_webhooks_share_one_round_trip(fresh_redis_url: str) -> None:
    redis = create_redis(fresh_redis_url)
    store = GatewayStore(redis)
    try:
        keys = [store.dedupe_key(f"acc-{n % 3}", f"evt-{n}") for n in range(30)]
        await marked(store, keys[:10], 60)
        before = store._batcher.batches
        found = await asyncio.gather(*(store.claim([key], 30) for key in keys))
        assert set().union(*(c.done for c in found)) == set(keys[:10])
        # 30 claims in flight at once: far fewer batches than claims
        assert store._batcher.batches - before <= 3
    finally:
        await redis.aclose()
