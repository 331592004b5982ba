"""Redis work of concurrent callers runs as one ``EVALSHA`` per batch: each caller gets
its own reply or its own error (real Redis, a database of its own)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from flowchat_contracts import OutboundCommand, TextContent
from flowchat_platform.errors import StoreUnavailable
from flowchat_platform.redis import create_redis
from flowchat_platform.redis_batch import LuaScript, RedisBatcher
from flowchat_sender.idempotency import IdempotencyStore

pytestmark = pytest.mark.integration

INCR = LuaScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
# fails when the key holds a string: WRONGTYPE from redis.call, inside the bundle
PUSH = LuaScript("return redis.call('LPUSH', KEYS[1], ARGV[1])")
NOTHING = LuaScript("local unused = KEYS[1]")
BAD_LUA = LuaScript("return nil + 1")


async def test_concurrent_scripts_share_calls_and_each_gets_its_reply(
    redis: aioredis.Redis,
) -> None:
    batcher = RedisBatcher(redis)
    replies = await asyncio.gather(
        *(batcher.script(INCR, [f"n:{i % 3}"], [i]) for i in range(60)),
        *(batcher.script(PUSH, ["list"], [f"v{i}"]) for i in range(30)),
    )
    assert batcher.items == 90
    assert batcher.batches < 10
    # each INCRBY answered with the counter right after its own increment
    for k in range(3):
        seen = sorted(replies[i] for i in range(60) if i % 3 == k)
        assert seen[-1] == sum(range(k, 60, 3))
    assert sorted(replies[60:]) == list(range(1, 31))
    total = await redis.get("n:0")
    assert total is not None
    assert int(total) == sum(range(0, 60, 3))
    assert await redis.llen("list") == 30


async def test_a_failing_item_fails_only_its_caller(redis: aioredis.Redis) -> None:
    await redis.set("text", "not a list")
    batcher = RedisBatcher(redis)
    replies = await asyncio.gather(
        batcher.script(INCR, ["n"], [1]),
        batcher.script(PUSH, ["text"], ["x"]),
        batcher.script(BAD_LUA, ["n"], []),
        batcher.script(NOTHING, ["n"], []),
        batcher.script(INCR, ["n"], [1]),
        return_exceptions=True,
    )
    assert batcher.batches == 1
    assert replies[0] == 1
    assert isinstance(replies[1], ResponseError)
    assert "WRONGTYPE" in str(replies[1])
    assert isinstance(replies[2], ResponseError)
    assert "arithmetic" in str(replies[2])
    assert replies[3] is None  # a script that returns nothing: nil, not a cut-short batch
    assert replies[4] == 2


async def test_the_bundle_is_loaded_again_after_a_flush_and_a_new_script(
    redis: aioredis.Redis,
) -> None:
    batcher = RedisBatcher(redis)
    assert await batcher.script(INCR, ["n"], [5]) == 5
    await redis.script_flush()
    assert await batcher.script(INCR, ["n"], [1]) == 6
    # a script first seen now joins the bundle: a new source, loaded on its NOSCRIPT
    assert await batcher.script(PUSH, ["list"], ["a"]) == 1
    assert await batcher.script(INCR, ["n"], [1]) == 7


async def test_redis_down_fails_every_caller_of_the_batch() -> None:
    client = create_redis("redis://127.0.0.1:1/0", timeout_s=0.2)
    try:
        batcher = RedisBatcher(client)
        replies = await asyncio.gather(
            *(batcher.script(INCR, ["n"], [1]) for _ in range(5)), return_exceptions=True
        )
    finally:
        await client.aclose()
    assert all(isinstance(r, RedisError | OSError | TimeoutError) for r in replies), replies


async def test_a_claim_no_replica_acknowledged_is_released_and_not_taken(
    redis: aioredis.Redis,
) -> None:
    # the test Redis has no replica: with claim_replicas=1 no claim may count, and none
    # may stay behind (a redelivery must be able to claim it once a replica is there)
    command = OutboundCommand(
        tenant_id="t-wait",
        account_id="acc-wait",
        idempotency_key="k-1",
        message_id="m-1",
        to="+16505550100",
        content=TextContent(body="hi"),
    )
    durable = IdempotencyStore(redis, ttl_s=60, batcher=RedisBatcher(redis, replicas=1, wait_ms=20))
    with pytest.raises(StoreUnavailable, match="0 of 1 replicas"):
        await durable.claim(command, "owner-1")
    assert await redis.exists(durable.key("t-wait", "k-1")) == 0
    # without the setting the same claim is taken at once
    plain = IdempotencyStore(redis, ttl_s=60, batcher=RedisBatcher(redis))
    assert await plain.claim(command, "owner-1") is None
    assert await redis.exists(plain.key("t-wait", "k-1")) == 1
    # a claim that finds a record needs no replica: it sends nothing
    record = await durable.claim(command, "owner-2")
    assert record is not None
    assert record.owner == "owner-1"
