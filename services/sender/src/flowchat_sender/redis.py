"""The sender's Redis client: a bounded pool that makes callers wait for a connection.

redis-py's default pool raises ``MaxConnectionsError`` once 100 commands are in
flight; with hundreds of messages in flight that would turn load into failures.
A blocking pool queues them instead (up to the command timeout).
"""

from __future__ import annotations

import redis.asyncio as aioredis


def create_redis(url: str, *, max_connections: int = 64, timeout_s: float = 1.0) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
    )
    # from_pool: the client owns the pool, so ``aclose()`` closes its connections too.
    return aioredis.Redis.from_pool(pool)
