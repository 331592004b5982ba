"""12. A webhook storm: duplicated inbound messages and duplicated, out-of-order statuses,
shuffled together and posted concurrently (Meta delivers at least once, in any order).
A copy posted while another copy of the same message is still being published waits
for that publish when the same gateway process holds it (then 200, a duplicate), and is
answered 409 ``in_flight`` otherwise (never 200 before the event is durable); like Meta,
the storm posts a refused webhook again until it is answered 200.

- every inbound message is handled once: each customer gets the bot's reply once;
- every status ends final (``read``) in the state-manager, and only ever moves
  forward: polled during the storm its status never goes back, its history holds
  each status once, and the ``flowchat.events`` it publishes climb strictly, one per
  status reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

import aio_pika
import httpx
import orjson
import pytest
from faults_kit import (
    Attempt,
    Tenant,
    api_send,
    baseline_replies,
    deliver_until_accepted,
    duplicates,
    inbound_webhook,
    ledger,
    message_state,
    open_windows,
    seed_tenant,
    sends_per_recipient,
    set_faults,
    status_webhook,
    wait_for,
)

from flowchat_contracts import topology

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

RANK = {"queued": 0, "accepted": 1, "sent": 2, "delivered": 3, "read": 4, "failed": 100}
COPIES = 3  # each webhook is posted this many times


async def collect_events(url: str, tenant: Tenant, out: list[Any], ready: asyncio.Event) -> None:
    """Every ``flowchat.events`` message of the tenant, as received (until cancelled)."""
    conn = await aio_pika.connect(url)
    try:
        channel = await conn.channel()
        queue = await channel.declare_queue("", exclusive=True)
        exchange = await channel.get_exchange(topology.EXCHANGE_EVENTS, ensure=True)
        await queue.bind(exchange, routing_key=f"{tenant.tenant_id}.#")
        ready.set()
        async with queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    out.append((message.message_id, orjson.loads(message.body)))
    finally:
        await conn.close()


@pytest.mark.timeout(180)
async def test_webhook_storm_duplicates_and_out_of_order_statuses(
    make_stack, rabbit_node, vhost, figures
):
    stack = make_stack()
    events: list[Any] = []
    async with httpx.AsyncClient(timeout=30) as client:
        tenant = await seed_tenant(client, stack)
        per_customer = await baseline_replies(client, stack, tenant)
        ready = asyncio.Event()
        collector = asyncio.create_task(
            collect_events(rabbit_node.url(vhost), tenant, events, ready)
        )
        await asyncio.wait_for(ready.wait(), 20)

        customers = [f"1555{n:07d}" for n in range(900, 920)]
        recipients = [f"2348016{n:06d}" for n in range(10)]
        await open_windows(client, stack, tenant, [*customers, *recipients])
        # From now on only the storm tells the platform about statuses.
        await set_faults(client, stack, tenant, drop_webhooks=-1)
        ids = [
            await api_send(client, stack, tenant, recipients[n % 10], f"n{n}") for n in range(12)
        ]

        async def recorded() -> list[Any] | None:
            states = [await message_state(client, stack, tenant, i) for i in ids]
            done = all(s is not None and s["provider_message_id"] for s in states)
            return states if done else None

        states = await wait_for(recorded, timeout_s=40, interval_s=0.5, what="sends recorded")
        wamids = {s["id"]: s["provider_message_id"] for s in states}
        to = {s["id"]: s["recipient"] for s in states}

        # The storm: each inbound and each status posted COPIES times, all shuffled.
        now = int(time.time())
        bodies = [inbound_webhook(tenant, c, "Hi") for c in customers]
        for i in ids:
            for step, status in enumerate(("sent", "delivered", "read")):
                bodies.append(status_webhook(tenant, wamids[i], status, to[i], now + step))
        storm = [b for b in bodies for _ in range(COPIES)]
        random.Random(12).shuffle(storm)
        answers: list[int] = []  # each webhook's last answer
        attempts: list[Attempt] = []
        seen: dict[str, list[str]] = {i: [] for i in ids}
        stop = asyncio.Event()

        async def poll() -> None:
            """Read every message's status over and over while the storm blows."""
            while not stop.is_set():
                for i in ids:
                    state = await message_state(client, stack, tenant, i)
                    if state is not None and (not seen[i] or seen[i][-1] != state["status"]):
                        seen[i].append(state["status"])
                await asyncio.sleep(0.05)

        poller = asyncio.create_task(poll())
        sem = asyncio.Semaphore(16)

        async def post(body: bytes) -> None:
            async with sem:
                mine: list[Attempt] = []
                await deliver_until_accepted(client, stack, tenant, body, "storm", mine)
                attempts.extend(mine)
                answers.append(mine[-1].status)

        started = time.monotonic()
        await asyncio.gather(*(post(b) for b in storm))
        storm_s = time.monotonic() - started

        async def all_final() -> bool:
            finals = [await message_state(client, stack, tenant, i) for i in ids]
            return all(s is not None and s["status"] == "read" for s in finals)

        async def all_answered() -> bool:
            counts = await sends_per_recipient(client, stack, tenant)
            return all(counts.get(c, 0) >= per_customer for c in customers)

        with contextlib.suppress(AssertionError):
            await wait_for(all_final, timeout_s=40, interval_s=0.5, what="statuses final")
        with contextlib.suppress(AssertionError):
            await wait_for(all_answered, timeout_s=40, interval_s=0.5, what="replies")
        figures.recover_s = time.monotonic() - started
        await asyncio.sleep(2)  # late duplicates (replies, events) would show up now
        stop.set()
        await poller
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
        finals = {i: await message_state(client, stack, tenant, i) for i in ids}
        histories = {i: await message_state(client, stack, tenant, i, "/events") for i in ids}
        counts = await sends_per_recipient(client, stack, tenant)
        entries = await ledger(client, stack, phone_number_id=tenant.phone_number_id)

    # flowchat.events: at-least-once, deduplicated by event id like any subscriber
    published: dict[str, list[str]] = {i: [] for i in ids}
    for event_id in dict.fromkeys(e for e, _ in events):
        body = next(b for e, b in events if e == event_id)
        if body.get("message_id") in published:
            published[body["message_id"]].append(body["status"])
    backwards = {
        i: s for i, s in seen.items() if [RANK[x] for x in s] != sorted(RANK[x] for x in s)
    }
    events_bad = {
        i: s
        for i, s in published.items()
        if [RANK[x] for x in s] != sorted({RANK[x] for x in s}) or not s or s[-1] != "read"
    }
    history_dups = {
        i: [e["status"] for e in h["items"]]
        for i, h in histories.items()
        if h is None or len({e["status"] for e in h["items"]}) != len(h["items"])
    }
    replies_ok = [c for c in customers if counts.get(c, 0) == per_customer]
    finals_ok = [i for i, s in finals.items() if s is not None and s["status"] == "read"]
    figures.sent = len(customers) + len(ids)
    figures.processed = len(replies_ok) + len(finals_ok)
    figures.lost = sum(1 for c in customers if counts.get(c, 0) < per_customer) + (
        len(ids) - len(finals_ok)
    )
    figures.duplicated = (
        duplicates(entries)
        + sum(max(0, counts.get(c, 0) - per_customer) for c in customers)
        + sum(len(s) - len(set(s)) for s in published.values())
    )
    refused = [a.status for a in attempts if a.status != 200]
    figures.notes = (
        f"{len(storm)} webhooks in {storm_s:.1f}s ({COPIES}x each, shuffled), last answers "
        f"{sorted(set(answers))}, posted again after {sorted(set(refused))} x{len(refused)}; "
        f"status events {sum(len(s) for s in published.values())}"
    )
    assert set(answers) == {200}, sorted(set(answers))
    # only a copy of a message still being published is refused, and only as in flight
    assert set(refused) <= {409}, sorted(set(refused))
    assert not backwards, f"a status moved backwards: {backwards}"
    assert not events_bad, f"status events not strictly forward: {events_bad}"
    assert not history_dups, f"a status recorded twice: {history_dups}"
    assert figures.lost == 0
    assert figures.duplicated == 0
