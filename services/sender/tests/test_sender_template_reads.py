"""Template catalogs of many WABAs read from the real Redis together (issue #26).

A fresh sender meets every WABA at once (after a restart or a deploy): each catalog
missing from its memory was one ``HGETALL`` and one pooled connection of its own. Now
concurrent loads are one pipeline per batch; each caller still gets its own catalog,
a key that cannot be read fails its caller only, and Redis down is a warning and a
metric (the check is skipped), as before.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
import redis.asyncio as aioredis

from flowchat_platform.accounts import AccountCredentials
from flowchat_platform.redis import create_redis
from flowchat_platform.testing import free_port
from flowchat_sender import metrics
from flowchat_sender.templates import TemplateCatalog

pytestmark = pytest.mark.integration

WABAS = 40


class Trips:
    """The real client, counting its round trips: a command, or a pipeline's execute."""

    def __init__(self, inner: aioredis.Redis) -> None:
        self.inner = inner
        self.trips = 0
        self.commands = 0

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        pipe = self.inner.pipeline(*args, **kwargs)
        execute = pipe.execute

        async def counted(*a: Any, **kw: Any) -> Any:
            self.trips += 1
            self.commands += len(pipe.command_stack)
            return await execute(*a, **kw)

        pipe.execute = counted  # type: ignore[method-assign]
        return pipe

    async def hgetall(self, key: str) -> Any:
        self.trips += 1
        self.commands += 1
        return await self.inner.hgetall(key)


class Source:
    """The Graph API's answer per WABA: one template named after it (counting fetches)."""

    def __init__(self) -> None:
        self.fetches: list[str] = []

    async def fetch(self, account: AccountCredentials) -> list[dict[str, Any]]:
        self.fetches.append(account.waba_id or "")
        return [{"name": f"t_{account.waba_id}", "language": "en_US", "status": "APPROVED"}]


def account(i: int) -> AccountCredentials:
    return AccountCredentials(
        account_id=f"acc-r{i}", tenant_id=f"tr{i % 7}", provider="meta", waba_id=f"w{i}"
    )


async def stored(redis: aioredis.Redis, accounts: list[AccountCredentials]) -> Source:
    """Every account's catalog synced into Redis (by another catalog: another replica)."""
    source = Source()
    writer = TemplateCatalog(redis, source)
    for a in accounts:
        assert await writer.refresh(a) is not None
    await writer.close()
    return source


def counter(outcome: str) -> float:
    return float(metrics.TEMPLATE_CATALOG.labels(outcome)._value.get())


async def test_concurrent_misses_of_many_wabas_read_redis_in_one_round_trip(
    redis: aioredis.Redis,
) -> None:
    accounts = [account(i) for i in range(WABAS)]
    source = await stored(redis, accounts)
    fetched = len(source.fetches)
    trips = Trips(redis)
    catalog = TemplateCatalog(cast(aioredis.Redis, trips), source)

    lone = await catalog.get(accounts[0])  # a lone miss goes at once, alone
    assert lone is not None
    assert set(lone.templates) == {("t_w0", "en_US")}
    assert (trips.trips, trips.commands) == (1, 1)

    read = counter("redis")
    catalogs = await asyncio.gather(*(catalog.get(a) for a in accounts[1:]))
    assert trips.commands == WABAS  # one HGETALL per WABA ...
    assert trips.trips <= 2 < WABAS - 1  # ... sent together, not one round trip each
    for a, got in zip(accounts[1:], catalogs, strict=True):
        assert got is not None
        assert set(got.templates) == {(f"t_{a.waba_id}", "en_US")}  # its own catalog
    assert counter("redis") - read == WABAS - 1
    assert len(source.fetches) == fetched  # every one from Redis, none from Graph

    before = trips.trips
    again = await asyncio.gather(*(catalog.get(a) for a in accounts))  # the local copies
    assert [c.synced_at if c else None for c in again] == [
        c.synced_at if c else None for c in [lone, *catalogs]
    ]
    assert trips.trips == before
    await catalog.close()


async def test_one_unreadable_or_missing_catalog_of_a_batch_touches_no_other(
    redis: aioredis.Redis,
) -> None:
    accounts = [account(i) for i in range(12)]
    source = await stored(redis, accounts[:10])
    wrong, missing = accounts[10], accounts[11]
    await redis.set(TemplateCatalog.key(wrong.tenant_id, wrong.waba_id or ""), "not a hash")
    fetched = len(source.fetches)
    trips = Trips(redis)
    catalog = TemplateCatalog(cast(aioredis.Redis, trips), source)
    errors = counter("redis_error")

    catalogs = await asyncio.gather(*(catalog.get(a) for a in accounts))

    assert trips.trips <= 3 < len(accounts)  # the reads together, then the missing one's store
    for a, got in zip(accounts[:10], catalogs[:10], strict=True):
        assert got is not None
        assert set(got.templates) == {(f"t_{a.waba_id}", "en_US")}
    assert catalogs[10] is None  # WRONGTYPE: unreadable, the check is skipped
    assert counter("redis_error") - errors == 1
    fresh = catalogs[11]  # not in Redis: synced from Graph, and stored
    assert fresh is not None
    assert set(fresh.templates) == {("t_w11", "en_US")}
    assert source.fetches[fetched:] == ["w11"]
    assert await redis.exists(TemplateCatalog.key(missing.tenant_id, "w11"))
    await catalog.close()


async def test_redis_down_skips_the_check_for_every_caller_without_a_graph_call() -> None:
    dead = create_redis(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    source = Source()
    catalog = TemplateCatalog(dead, source)
    errors = counter("redis_error")
    try:
        catalogs = await asyncio.gather(*(catalog.get(account(i)) for i in range(8)))
    finally:
        await catalog.close()
        await dead.aclose()
    assert catalogs == [None] * 8
    assert counter("redis_error") - errors == 8  # a warning and a count per caller
    assert source.fetches == []
