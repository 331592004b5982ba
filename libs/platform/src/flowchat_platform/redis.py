"""Redis client factory: every call bounded by a timeout, so a paused Redis never hangs us."""

from __future__ import annotations

import redis.asyncio as aioredis


def create_redis(url: str, *, timeout_s: float = 1.0) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        decode_responses=False,
    )
