"""Conversation partitions against a real broker and Redis: the header routes a message
to its partition (no header: ``conversation.inbound``), rendezvous hashing spreads the
partitions and moves only a joining member's share, and two replicas share the
partitions and hand them over when one stops, every message handled, in order per key."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aio_pika
import pytest
from pydantic import TypeAdapter

from flowchat_contracts import InboundMessage, topology
from flowchat_platform.amqp import Amqp, ConsumerHandle, declare_own_queues
from flowchat_platform.partitions import PartitionedConsumer, PartitionMembers, owner_of
from flowchat_platform.redis import create_redis

pytestmark = pytest.mark.integration

QUEUES = topology.CONVERSATION_PARTITION_QUEUES


def inbound(customer: str, n: int) -> InboundMessage:
    return InboundMessage(
        tenant_id="t1",
        account_id="a1",
        provider="meta",
        provider_message_id=f"wamid.{customer}.{n}",
        phone_number_id="100",
        customer_wa_id=customer,
        type="text",
        text=f"hi {n}",
        timestamp="2026-01-01T00:00:00Z",
    )


async def declare_partitions(url: str) -> None:
    await declare_own_queues(
        url, topology.CONVERSATION_PARTITION_SPECS, topology.CONVERSATION_PARTITION_BINDINGS
    )


async def depths(url: str) -> dict[str, int]:
    conn = await aio_pika.connect(url)
    try:
        channel = await conn.channel()
        out = {}
        for name in topology.CONVERSATION_INBOUND_QUEUES:
            queue = await channel.declare_queue(name, passive=True)
            out[name] = queue.declaration_result.message_count or 0
        return {k: v for k, v in out.items() if v}
    finally:
        await conn.close()


async def test_the_header_routes_to_the_partition_and_no_header_to_the_old_queue(
    amqp_url: str,
) -> None:
    amqp = Amqp(amqp_url, service="test")
    await amqp.connect()
    try:
        # before the conversation service declares its partitions: all to the old queue
        await amqp.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", inbound("15550003", 1))
        await declare_partitions(amqp_url)
        msg = inbound("15550001", 1)
        headers = topology.inbound_headers("t1", "15550001")
        partition = topology.conversation_partition("t1", "15550001")
        assert headers == {topology.HEADER_CONVERSATION_PARTITION: str(partition)}
        await amqp.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", msg, headers=headers)
        await amqp.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", inbound("15550002", 1))
        assert await depths(amqp_url) == {
            topology.conversation_partition_queue(partition): 1,
            topology.QUEUE_CONVERSATION_INBOUND: 2,
        }
    finally:
        await amqp.close(grace_s=1)


def test_rendezvous_spreads_the_partitions_and_a_joiner_takes_only_its_share() -> None:
    three = ["a:1:x", "b:2:y", "c:3:z"]
    owners = {q: owner_of(q, three) for q in QUEUES}
    shares = sorted(list(owners.values()).count(m) for m in three)
    assert sum(shares) == len(QUEUES)
    assert min(shares) >= 4, shares
    four = [*three, "d:4:w"]
    moved = {q for q in QUEUES if owner_of(q, four) != owners[q]}
    assert moved
    assert all(owner_of(q, four) == "d:4:w" for q in moved)
    assert owner_of(QUEUES[0], []) is None


class Replica:
    """One consumer process's partition side: its own broker client and membership."""

    def __init__(self, amqp_url: str, redis_url: str, name: str, seen: list[Any]) -> None:
        self.amqp = Amqp(amqp_url, service=f"test-{name}")
        self.redis = create_redis(redis_url)
        self.name = name
        self.seen = seen
        self.group: PartitionedConsumer | None = None

    async def handle(self, message: InboundMessage, _raw: Any) -> None:
        await asyncio.sleep(0.002)
        self.seen.append((self.name, message.customer_wa_id, message.provider_message_id))

    async def start(self) -> None:
        await self.amqp.connect()
        await declare_partitions(self.amqp.url)  # as the conversation service does

        async def consume(queue: str) -> ConsumerHandle:
            return await self.amqp.consume(
                queue,
                self.handle,
                decoder=TypeAdapter(InboundMessage),
                prefetch=4,
                return_on_stop=True,
            )

        self.group = PartitionedConsumer(
            self.amqp,
            PartitionMembers(self.redis, "test.partitions", ttl_s=2.0),
            QUEUES,
            consume,
            interval_s=0.2,
            release_grace_s=5,
        )
        await self.group.start()

    async def stop(self) -> None:
        assert self.group is not None
        await self.group.stop()
        await self.amqp.close(grace_s=5)
        await self.redis.aclose()


async def wait_until(predicate: Any, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.05)


async def test_two_replicas_share_the_partitions_and_hand_them_over(
    amqp_url: str, redis_url: str
) -> None:
    seen: list[Any] = []
    a = Replica(amqp_url, redis_url, "a", seen)
    b = Replica(amqp_url, redis_url, "b", seen)
    await a.start()
    await b.start()
    stopped = False
    try:
        assert a.group is not None
        assert b.group is not None
        await wait_until(
            lambda: (
                len(a.group.held) + len(b.group.held) == len(QUEUES)
                and bool(a.group.held)
                and bool(b.group.held)
            )
        )
        publisher = Amqp(amqp_url, service="test-publisher", declare=False)
        await publisher.connect()
        customers = [f"1555{c:04d}" for c in range(20)]
        total = 0
        try:
            for n in range(15):
                for customer in customers:
                    await publisher.publish(
                        topology.EXCHANGE_INBOUND,
                        "t1.a1.text",
                        inbound(customer, n),
                        headers=topology.inbound_headers("t1", customer),
                    )
                    total += 1
                if n == 5:  # mid-way: b stops (a scale-down), a takes every partition
                    await b.stop()
                    stopped = True
        finally:
            await publisher.close(grace_s=1)
        await wait_until(lambda: len(a.group.held) == len(QUEUES))
        await wait_until(lambda: len({m for _, _, m in seen}) == total)
        for customer in customers:
            mine = [m for _, c, m in seen if c == customer]
            collapsed = [m for i, m in enumerate(mine) if i == 0 or mine[i - 1] != m]
            assert collapsed == [f"wamid.{customer}.{n}" for n in range(15)], collapsed
    finally:
        await a.stop()
        if not stopped:
            await b.stop()
