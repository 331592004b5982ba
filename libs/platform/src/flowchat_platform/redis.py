"""Redis client factory: every call bounded by a timeout, so a paused Redis never hangs us.

The pool blocks (up to the timeout) for a free connection instead of failing at once
when a burst needs more than ``max_connections`` (redis-py's plain pool raises
``MaxConnectionsError`` past 100, which turned webhook bursts into errors).
"""

from __future__ import annotations

import redis.asyncio as aioredis


def create_redis(url: str, *, timeout_s: float = 1.0, max_connections: int = 64) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
    )
    # from_pool: the client owns the pool, so aclose() closes its connections too
    return aioredis.Redis.from_pool(pool)
