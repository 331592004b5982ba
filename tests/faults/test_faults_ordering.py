"""13. Order per conversation across conversation replicas, while replicas die and come.

Three conversation replicas (real processes) share the 32 conversation partitions
(``conversation.inbound.<n>``, single active consumer each; membership in Redis). 200
customers write 20 messages each through the gateway, in bursts: ten waves of 20
customers, each wave's 400 messages posted within about a second (a customer's 20 in
20 consecutive webhooks). During the run one replica is SIGKILLed, a fourth is started,
and later one is stopped with SIGTERM (a scale-down). Every message asks the bot for
``help``: exactly one reply each, published with the key ``reply:<wamid>:<n>`` while
the conversation is locked, so the order the replies reach a queue of the test's own
(bound to ``flowchat.outbound``) is the order the messages were handled.

- in order: for every customer, the replies (a repeat of the same reply right after
  itself collapsed: a replica killed between its publish and its commit) name the
  messages 0…19 in order;
- none twice: no reply comes back after a later message's reply; the conversation
  store holds one dedupe row per message;
- none lost: every message has its reply and its row; every queue ends empty.

The sender (and the state-manager, inbox, relay) is not started (the replies wait in
``whatsapp.outbound``); figures: the
run's length, the replies published again, and the time from the kill to the first
reply of a partition the killed replica held.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from faults_kit import (
    FaultStack,
    Figures,
    RabbitNode,
    Tenant,
    free_port,
    seed_tenant,
    sign,
    wait_for,
)

from flowchat_contracts import topology
from flowchat_platform.partitions import owner_of

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.integration,
]

CUSTOMERS = 200
MESSAGES = 20
WAVES = 10
WAVE_GAP_S = 1.5
REPLIES_WITHIN_S = 300
REPLICAS = ("conversation", "conversation-2", "conversation-3")
GROUP_KEY = "flowchat:partitions:{conversation.inbound}:members"


@dataclass
class OrderingStack(FaultStack):
    """The sandbox, tenant, gateway and several conversation replicas (``conversation-<n>``)."""

    @property
    def names(self) -> list[str]:
        return ["sandbox", "tenant", *REPLICAS, "gateway"]

    def module(self, name: str) -> str:
        return super().module("conversation" if name.startswith("conversation") else name)

    def child_env(self, name: str) -> dict[str, str]:
        if name.startswith("conversation-") and name not in self.service_env:
            port = free_port()
            self.urls[name] = f"http://127.0.0.1:{port}"
            self.service_env[name] = {"FLOWCHAT_CONVERSATION_HTTP_PORT": str(port)}
        return super().child_env(name)

    def add(self, name: str) -> None:
        """Start one more process (not waited for)."""
        self.spawn(name)


def wa_id(customer: int) -> str:
    return f"2348{customer:08d}"


def wamid(customer: int, n: int) -> str:
    return f"wamid.ORDER{customer:04d}N{n:02d}"


def webhook(tenant: Tenant, customers: list[int], n: int) -> bytes:
    """One Meta webhook: message ``n`` of each of ``customers``."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": tenant.display.lstrip("+"),
            "phone_number_id": tenant.phone_number_id,
        },
        "contacts": [{"profile": {"name": "Load"}, "wa_id": wa_id(c)} for c in customers],
        "messages": [
            {
                "from": wa_id(c),
                "id": wamid(c, n),
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": "help"},
            }
            for c in customers
        ],
    }
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": tenant.waba_id, "changes": [{"value": value, "field": "messages"}]}],
        }
    ).encode()


async def collect_replies(
    url: str, out: list[tuple[float, int, int]], ready: asyncio.Event
) -> None:
    """Every command published to ``flowchat.outbound``, in queue order, as
    (arrival time, customer, message number), until cancelled."""
    conn = await aio_pika.connect(url)
    try:
        channel = await conn.channel()
        await channel.set_qos(prefetch_count=1000)
        queue = await channel.declare_queue("ordering.replies", exclusive=True)
        await queue.bind(topology.EXCHANGE_OUTBOUND, "#")
        ready.set()
        async with queue.iterator() as messages:
            async for message in messages:
                key = json.loads(message.body)["idempotency_key"]  # reply:<wamid>:<n>
                mid = key.split(":")[1].removeprefix("wamid.ORDER")
                customer, n = mid.split("N")
                out.append((time.monotonic(), int(customer), int(n)))
                await message.ack()
    finally:
        await conn.close()


async def members(redis_url: str) -> list[str]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        raw = await client.zrange(GROUP_KEY, 0, -1)
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in raw)
    finally:
        await client.aclose()


def member_of(all_members: list[str], pid: int) -> str:
    return next(m for m in all_members if m.split(":")[1] == str(pid))


def queue_depths(node: RabbitNode, vhost: str) -> dict[str, int]:
    names = {topology.QUEUE_CONVERSATION_INBOUND, *topology.CONVERSATION_PARTITION_QUEUES}
    return {q: n for q, n in node.messages(vhost).items() if q in names and n}


@pytest.mark.timeout(600)
async def test_order_per_conversation_across_replicas(
    tmp_path: Path,
    rabbit_node: RabbitNode,
    vhost: str,
    fault_db: str,
    fault_redis_url: str,
    figures: Figures,
) -> None:
    stack = OrderingStack.create(
        tmp_path,
        amqp_url=rabbit_node.url(vhost),
        database_url=fault_db,
        redis_url=fault_redis_url,
        extra_env={"FLOWCHAT_CONVERSATION_OUTREACH_WORKERS": "false"},
    )
    # a busy machine starts seven processes slowly (at a load of 36 on 2 cores: > 240 s)
    stack.start(timeout_s=480)
    replies: list[tuple[float, int, int]] = []
    ready = asyncio.Event()
    collector = asyncio.create_task(collect_replies(rabbit_node.url(vhost), replies, ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        async with httpx.AsyncClient(timeout=30) as client:
            tenant = await seed_tenant(client, stack)
            # every replica a member, each with its share of the partitions
            await wait_for(
                lambda: _has(fault_redis_url, len(REPLICAS)), timeout_s=30, what="3 members"
            )
            before_kill = await members(fault_redis_url)
            victim = "conversation-2"
            victim_member = member_of(before_kill, stack.procs[victim].pid)
            victim_partitions = {
                q
                for q in topology.CONVERSATION_PARTITION_QUEUES
                if owner_of(q, before_kill) == victim_member
            }
            shares = sorted(
                sum(
                    1
                    for q in topology.CONVERSATION_PARTITION_QUEUES
                    if owner_of(q, before_kill) == m
                )
                for m in before_kill
            )

            started = time.monotonic()
            killed_at = 0.0
            per_wave = CUSTOMERS // WAVES
            statuses: list[int] = []

            async def wave(w: int) -> None:
                customers = list(range(w * per_wave, (w + 1) * per_wave))
                for n in range(MESSAGES):  # one after the other: the gateway's order
                    body = webhook(tenant, customers, n)
                    for _ in range(20):  # as Meta does: again until a 200
                        try:
                            r = await client.post(
                                f"{stack.urls['gateway']}/webhooks/meta",
                                content=body,
                                headers=sign(tenant.app_secret, body),
                            )
                            status = r.status_code
                        except httpx.TransportError:
                            status = 0
                        statuses.append(status)
                        if status == 200:
                            break
                        await asyncio.sleep(0.5)

            waves = []
            for w in range(WAVES):
                waves.append(asyncio.create_task(wave(w)))
                if w == 3:  # mid-run: one replica killed, one added
                    stack.kill(victim)
                    killed_at = time.monotonic()
                    stack.add("conversation-4")
                    watch = asyncio.create_task(gone(fault_redis_url, victim_member))
                if w == 7:  # a scale-down: one replica stopped (SIGTERM)
                    proc = stack.procs["conversation-3"]
                    proc.send_signal(signal.SIGTERM)
                await asyncio.sleep(WAVE_GAP_S)
            await asyncio.gather(*waves)
            gone_at = await watch
            accepted = statuses.count(200)
            assert accepted == WAVES * MESSAGES, statuses
            await asyncio.to_thread(stack.wait_ready, ["conversation-4"], 60)
            assert await asyncio.to_thread(stack.procs["conversation-3"].wait, 40) == 0

            total = CUSTOMERS * MESSAGES
            # generous: a busy machine handles a few dozen messages a second
            with contextlib.suppress(AssertionError):  # what is missing is counted below
                await wait_for(
                    lambda: len({(c, n) for _, c, n in replies}) >= total,
                    timeout_s=REPLIES_WITHIN_S,
                    what=f"{total} replies",
                )
            run_s = time.monotonic() - started
            # the deliveries a hand-over returned (acks not written after a release) come
            # back to their new owner, which drops them as handled: let them drain
            with contextlib.suppress(AssertionError):
                await wait_for(
                    lambda: _empty(rabbit_node, vhost), timeout_s=60, what="queues empty"
                )
            empty = await _empty(rabbit_node, vhost)
            final = await members(fault_redis_url)
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await collector
        codes = stack.stop()

    # in order, none twice, none lost
    sequences: dict[int, list[int]] = {c: [] for c in range(CUSTOMERS)}
    republished = 0
    for _, c, n in replies:
        seq = sequences[c]
        if seq and seq[-1] == n:
            republished += 1  # the same reply again right after itself: a replay
            continue
        seq.append(n)
    # a later message before an earlier one, or one handled again after a later one
    out_of_order = [c for c, seq in sequences.items() if seq != sorted(set(seq))]
    no_reply = sum(MESSAGES - len(set(seq)) for seq in sequences.values())
    conn = await asyncpg.connect(fault_db)
    try:
        rows = await conn.fetch(
            "SELECT provider_message_id, count(*) AS n FROM conversation.handled_messages "
            "GROUP BY provider_message_id"
        )
    finally:
        await conn.close()
    handled = {r["provider_message_id"]: r["n"] for r in rows}
    lost = sum(1 for c in range(CUSTOMERS) for n in range(MESSAGES) if wamid(c, n) not in handled)
    twice = sum(n - 1 for n in handled.values() if n > 1)
    victim_customers = {
        c
        for c in range(CUSTOMERS)
        if topology.conversation_partition_queue(
            topology.conversation_partition(tenant.tenant_id, wa_id(c))
        )
        in victim_partitions
    }
    # its partitions change hands once its membership expired: the first reply of one of
    # its customers after that (the collector's own lag included)
    after = [t for t, c, _ in replies if t > gone_at and c in victim_customers]
    recover_s = (min(after) - killed_at) if after else None

    figures.sent = CUSTOMERS * MESSAGES
    figures.processed = len(handled)
    figures.lost = lost
    figures.duplicated = twice + sum(
        len(s) - MESSAGES for s in sequences.values() if len(s) > MESSAGES
    )
    figures.recover_s = recover_s
    figures.notes = (
        f"run={run_s:.1f}s replicas 3 -kill +1 -term; partitions per replica {shares}; "
        f"killed held {len(victim_partitions)}, its membership gone after "
        f"{gone_at - killed_at:.1f}s; replies republished={republished}; "
        f"webhooks posted again={len(statuses) - accepted}; "
        f"out_of_order={len(out_of_order)}; without reply={no_reply}; "
        f"members at end={len(final)}"
    )
    print(figures.notes)
    assert not out_of_order, {c: sequences[c] for c in out_of_order[:5]}
    assert no_reply == 0
    assert empty, queue_depths(rabbit_node, vhost)
    assert lost == 0
    assert twice == 0
    assert len(final) == 2, final  # conversation and conversation-4
    bad = {n: c for n, c in codes.items() if c not in (0, None) and n != victim}
    assert not bad, bad


async def gone(redis_url: str, member: str) -> float:
    """When ``member`` left the group (its membership expired)."""

    async def left() -> bool:
        return member not in await members(redis_url)

    await wait_for(left, timeout_s=60, interval_s=0.05, what="the killed member gone")
    return time.monotonic()


async def _empty(node: RabbitNode, vhost: str) -> bool:
    return not await asyncio.to_thread(queue_depths, node, vhost)


async def _has(redis_url: str, count: int) -> bool:
    return len(await members(redis_url)) >= count
