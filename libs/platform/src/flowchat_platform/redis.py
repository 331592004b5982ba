"""Redis client factory: every call bounded by a timeout, so a paused Redis never hangs us.

The pool blocks (up to the timeout) for a free connection instead of failing at once
when a burst needs more than ``max_connections`` (redis-py's plain pool raises
``MaxConnectionsError`` past 100, which turned webhook bursts into errors).

Commands are written with hiredis' C packer: redis-py's asyncio connection packs in
Python (~50 µs for a 20-argument ``EVALSHA`` on the benchmark machine, 6.5 µs in C),
which was a tenth of the sender's time per message. Replies already go through
hiredis' parser (redis-py picks it up when installed).

Each client names itself to the server (``CLIENT SETINFO lib-name/lib-ver``) with one
:class:`~redis.driver_info.DriverInfo` for all its connections: redis-py otherwise
builds one per connection, reading the package's metadata from disk each time
(0.6 ms), and a fresh sender opens its pool's 64 at once.

Redis Cluster: a ``redis+cluster://host:port`` (or ``rediss+cluster://``) URL — any node
of the cluster, as ``REDIS_URL`` of every service — gives a
:class:`redis.asyncio.cluster.RedisCluster` instead (it discovers the other nodes and
follows ``MOVED``/``ASK``). It answers the same commands, so callers keep the
``aioredis.Redis`` type; what they must do for it is theirs: every script and
multi-key command within one hash slot (the tenant's hash tag,
:func:`flowchat_contracts.shared_state.tenant_tag`). Its pool per node does not block
when full, and it packs commands in Python (no C-packing connection class).
"""

from __future__ import annotations

from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.driver_info import DriverInfo


class _CPacking(AbstractConnection):
    def pack_command(self, *args: Any) -> list[bytes]:
        # redis-py names some commands with a space ("CLIENT SETNAME"): one token each
        if isinstance(args[0], str) and " " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # None, bool, …: redis-py's own packer raises its clear DataError
            return super().pack_command(*args)


class CPackingConnection(_CPacking, Connection):
    pass


class CPackingSSLConnection(_CPacking, SSLConnection):
    pass


class CPackingUnixConnection(_CPacking, UnixDomainSocketConnection):
    pass


_PACKING: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: CPackingConnection,
    SSLConnection: CPackingSSLConnection,
    UnixDomainSocketConnection: CPackingUnixConnection,
}


CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def cluster_url(url: str) -> str | None:
    """The plain URL of a ``redis+cluster://`` one (None: not a cluster URL)."""
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower())
    return f"{plain}{sep}{rest}" if plain and sep else None


def is_cluster(redis: Any) -> bool:
    """True when ``redis`` is a Redis Cluster client (``redis+cluster://``)."""
    return isinstance(redis, RedisCluster)


def create_redis(url: str, *, timeout_s: float = 1.0, max_connections: int = 64) -> aioredis.Redis:
    plain = cluster_url(url)
    driver = DriverInfo()  # the library's name and version, read once
    if plain is not None:
        cluster = RedisCluster.from_url(
            plain,
            driver_info=driver,
            max_connections=max_connections,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )
        # the same commands as a Redis client (scripts and multi-key commands: one slot)
        return cast(aioredis.Redis, cluster)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        driver_info=driver,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
    )
    # the URL's scheme chose the connection class (TCP, TLS, unix socket): its C-packing twin
    pool.connection_class = _PACKING.get(pool.connection_class, pool.connection_class)
    # from_pool: the client owns the pool, so aclose() closes its connections too
    return aioredis.Redis.from_pool(pool)
