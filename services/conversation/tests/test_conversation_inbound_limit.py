"""The per-customer inbound limit's counter in a real Redis."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from flowchat_contracts import TextContent
from flowchat_conversation.commerce import bot
from flowchat_conversation.commerce.domain import BotSettings, ConversationKey
from flowchat_conversation.commerce.redis_limits import RedisInboundLimiter
from flowchat_platform.privacy import BlindIndex


async def test_counts_per_customer_per_window(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        limiter = RedisInboundLimiter(client, BlindIndex(b"k" * 32), window_s=3600)
        ada = ConversationKey("t1", "a1", "2348000000001")
        bo = ConversationKey("t1", "a1", "2348000000002")
        other_tenant = ConversationKey("t2", "a1", "2348000000001")
        counts = await asyncio.gather(*(limiter.hit(ada) for _ in range(31)))
        assert sorted(counts) == list(range(1, 32))  # atomic: every count once
        assert await limiter.hit(bo) == 1
        assert await limiter.hit(other_tenant) == 1
        keys: list[bytes] = [k async for k in client.scan_iter("conversation:inbound:*")]
        assert len(keys) == 3
        for k in keys:  # the window expires
            assert 0 < await client.ttl(k) <= 7200
            assert b"2348000000001" not in k  # digests only
            assert b"2348000000002" not in k
    finally:
        await client.aclose()


def test_default_limit_is_thirty_a_minute_and_the_notice_is_short() -> None:
    assert BotSettings().inbound_limit_per_minute == 30
    (notice,) = bot.flooded(None).replies
    assert isinstance(notice, TextContent)
    assert "reply shortly" in notice.body
