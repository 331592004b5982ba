"""Fixtures of the sender's tests; the helpers live in ``sender_testkit.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from flowchat_platform.redis import create_redis


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """The services' own client (:func:`create_redis`) on the test's Redis database."""
    client = create_redis(redis_url)
    try:
        yield client
    finally:
        await client.aclose()
