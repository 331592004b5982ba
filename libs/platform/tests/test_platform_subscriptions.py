"""The relay's subscription sets and the producers' cached view of them (real Redis)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis

from flowchat_platform.redis import create_redis
from flowchat_platform.subscriptions import (
    SubscriptionView,
    SubscriptionWriter,
    subscriptions_key,
)
from flowchat_platform.testing import private_redis_server

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_writer_replaces_sets_and_view_caches_for_its_ttl(redis_url: str) -> None:
    redis: aioredis.Redis = create_redis(redis_url)
    try:
        writer = SubscriptionWriter(redis, set_ttl_s=60)
        clock = Clock()
        view = SubscriptionView(redis, ttl_s=5.0, clock=clock)
        assert not await view.wants("t1", "order.created")
        await writer.replace("t1", ["order.created", "order.paid"])
        # cached "no" until the TTL passes
        assert not await view.wants("t1", "order.created")
        clock.now += 5.1
        assert await view.wants("t1", "order.created")
        assert not await view.wants("t1", "campaign.started")
        assert not await view.wants("t2", "order.created")
        assert 0 < await redis.ttl(subscriptions_key("t1")) <= 60
        # the last endpoint goes: so does the set
        await writer.replace("t1", [])
        assert not await redis.exists(subscriptions_key("t1"))
        clock.now += 5.1
        assert not await view.wants("t1", "order.created")
        # a full sync keeps exactly the tenants given
        await writer.replace("gone", ["order.paid"])
        await writer.replace_all({"t2": {"campaign.paused"}, "t3": set()})
        assert not await redis.exists(subscriptions_key("gone"))
        assert not await redis.exists(subscriptions_key("t3"))
        assert await redis.smembers(subscriptions_key("t2")) == {b"campaign.paused"}
    finally:
        await redis.aclose()


async def test_view_publishes_when_redis_cannot_answer(tmp_path: Path) -> None:
    """Fail open: a stale answer when there is one, else yes (an event for nobody costs a
    publish; an event not published is lost to a subscriber). A Redis of the test's own,
    stopped halfway."""
    clock = Clock()
    with private_redis_server(tmp_path) as url:
        redis: aioredis.Redis = create_redis(url, timeout_s=0.3)
        view = SubscriptionView(redis, ttl_s=1.0, clock=clock)
        never_read = SubscriptionView(redis, ttl_s=1.0, clock=clock)
        await SubscriptionWriter(redis).replace("t1", ["order.paid"])
        assert not await view.wants("t1", "order.created")
    try:
        clock.now += 2  # stale, and Redis is gone: the stale answer
        assert not await view.wants("t1", "order.created")
        assert await view.wants("t1", "order.paid")
        # nothing known: yes
        assert await never_read.wants("t1", "order.created")
    finally:
        await redis.aclose()
