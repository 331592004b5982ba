"""The Redis factory against a real server: commands packed in C mean the same thing."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import DataError

from flowchat_platform.redis import CPackingConnection, cluster_url, create_redis, is_cluster


@pytest.fixture
async def client(redis_url: str):
    r = create_redis(redis_url)
    yield r
    await r.aclose()


async def test_commands_and_pipelines_round_trip(client: aioredis.Redis) -> None:
    assert isinstance(client.connection_pool.connection_class, type)
    assert issubclass(client.connection_pool.connection_class, CPackingConnection)
    await client.set("k", "é\x00b", ex=60)
    assert await client.get("k") == "é\x00b".encode()
    await client.zadd("z", {"a": 1.5, "b": 1e20})
    assert await client.zrange("z", 0, -1, withscores=True) == [(b"a", 1.5), (b"b", 1e20)]
    async with client.pipeline(transaction=False) as pipe:
        pipe.incrby("n", 5)
        pipe.eval("return ARGV[1] .. ARGV[2]", 0, 0.25, -3)
        assert await pipe.execute() == [5, b"0.25-3"]
    # redis-py's multi-word command names (sent as one token to the packer)
    await client.client_setname("flowchat-test")
    assert await client.client_getname() == "flowchat-test"


async def test_connections_share_the_clients_driver_info(client: aioredis.Redis) -> None:
    pool = client.connection_pool
    connections = [await pool.get_connection() for _ in range(3)]
    try:
        # one DriverInfo (one read of the package's metadata) for every connection
        assert len({id(c.driver_info) for c in connections}) == 1
        info = connections[0].driver_info
        assert info is not None  # CLIENT SETINFO is still sent, with what redis-py sends
        assert (info.formatted_name, info.lib_version) == ("redis-py", redis.__version__)
    finally:
        for c in connections:
            await pool.release(c)


async def test_values_redis_cannot_take_still_raise_redis_pys_error(client) -> None:
    with pytest.raises(DataError):
        await client.set("k", None)
    with pytest.raises(DataError):
        await client.set("k", True)


def test_the_url_scheme_picks_the_c_packing_twin() -> None:
    tls = create_redis("rediss://127.0.0.1:6380/0")
    unix = create_redis("unix:///tmp/redis.sock")
    assert tls.connection_pool.connection_class.__name__ == "CPackingSSLConnection"
    assert unix.connection_pool.connection_class.__name__ == "CPackingUnixConnection"


async def test_a_cluster_url_builds_a_cluster_client_and_a_plain_one_does_not() -> None:
    assert cluster_url("redis+cluster://10.0.0.1:7000") == "redis://10.0.0.1:7000"
    assert cluster_url("rediss+cluster://u:p@h:7000") == "rediss://u:p@h:7000"
    assert cluster_url("redis://127.0.0.1:6379/0") is None
    cluster = create_redis("redis+cluster://127.0.0.1:7000")  # connects on first use
    plain = create_redis("redis://127.0.0.1:6379/0")
    try:
        # typed as Redis (the same commands); a RedisCluster underneath
        assert type(cluster).__name__ == RedisCluster.__name__
        assert is_cluster(cluster)
        assert not is_cluster(plain)
    finally:
        await cluster.aclose()
        await plain.aclose()
