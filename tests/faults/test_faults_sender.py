"""Sender faults: killed between the provider call and the ack, poison messages and the
retry tiers, SIGTERM under load. Everything against the suite's own broker and Redis.

5. Sender killed after the provider call but before the ack: no second send, and the
   result still reaches the state-manager.
6. Poison: a message that always fails makes exactly 5 attempts through the retry tiers
   (their TTLs scaled down 100x by a vhost policy), then the DLQ; malformed JSON on any
   queue is parked in ``flowchat.poison`` with the reason; the consumers carry on.
11. SIGTERM under load: each service drains and exits 0 within its grace; nothing lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time

import aio_pika
import httpx
import pytest
from faults_kit import (
    FaultStack,
    TcpProxy,
    Tenant,
    api_send,
    duplicates,
    ledger,
    message_state,
    metric_value,
    open_windows,
    seed_tenant,
    wait_for,
)

from flowchat_contracts import topology

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

FINAL_OK = {"accepted", "sent", "delivered", "read"}


async def drop_status_webhooks(
    client: httpx.AsyncClient, stack: FaultStack, tenant: Tenant
) -> None:
    """Only the sender's result can tell the state-manager about a send from now on."""
    r = await client.put(
        f"{stack.urls['sandbox']}/sandbox/numbers/{tenant.phone_number_id}/faults",
        json={"drop_webhooks": -1},
    )
    assert r.status_code in (200, 204), r.text


# ----------------------------------------------------------------------------- 5


@pytest.mark.timeout(150)
async def test_sender_killed_between_provider_call_and_ack(make_stack, rabbit_node, vhost, figures):
    with TcpProxy(rabbit_node.port) as proxy:
        stack = make_stack(amqp_urls={"sender": proxy.url(vhost)})
        async with httpx.AsyncClient(timeout=15) as client:
            tenant = await seed_tenant(client, stack)
            customers = [f"2348012{n:06d}" for n in range(300, 305)]
            await open_windows(client, stack, tenant, customers)
            await drop_status_webhooks(client, stack, tenant)
            # the sender's publish link goes silent: results cannot be confirmed
            proxy.set("stall", match=b"sender-publish")
            ids = [
                await api_send(client, stack, tenant, c, "Your order shipped") for c in customers
            ]

            async def all_called() -> bool:
                sent = {e.get("biz_opaque_callback_data") for e in await ledger(client, stack)}
                return set(ids) <= sent

            await wait_for(all_called, timeout_s=20, what="provider called for every message")
            await asyncio.sleep(0.5)
            stack.kill("sender")  # SIGKILL: after the provider call, before any ack
            killed = time.monotonic()
            proxy.set("pass")
            await asyncio.to_thread(stack.restart, "sender")

            async def all_recorded() -> bool:
                states = [await message_state(client, stack, tenant, i) for i in ids]
                return all(s is not None and s["status"] in FINAL_OK for s in states)

            with contextlib.suppress(AssertionError):
                await wait_for(all_recorded, timeout_s=30, interval_s=0.5, what="results")
            figures.recover_s = time.monotonic() - killed
            entries = await ledger(client, stack)
            states = [await message_state(client, stack, tenant, i) for i in ids]
    wamids = {e["biz_opaque_callback_data"]: e["wamid"] for e in entries}
    recorded = [
        s
        for s in states
        if s is not None
        and s["status"] in FINAL_OK
        and s["provider_message_id"] == wamids.get(s["id"])
    ]
    figures.sent = len(ids)
    figures.processed = len(recorded)
    figures.lost = len(ids) - len(recorded)
    figures.duplicated = duplicates(entries)
    figures.notes = f"ledger={len(entries)} states={[s and s['status'] for s in states]}"
    assert figures.duplicated == 0, "a redelivered command was sent again"
    assert figures.lost == 0, "a send result was lost (acked before it was confirmed?)"


# ----------------------------------------------------------------------------- 6


async def publish_raw(url: str, queue: str, body: bytes) -> None:
    conn = await aio_pika.connect(url)
    try:
        channel = await conn.channel(publisher_confirms=True)
        await channel.default_exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), queue
        )
    finally:
        await conn.close()


async def drain_queue(url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    conn = await aio_pika.connect(url)
    got = []
    try:
        channel = await conn.channel()
        q = await channel.declare_queue(queue, passive=True)
        while (message := await q.get(fail=False, no_ack=True)) is not None:
            got.append(message)
    finally:
        await conn.close()
    return got


@pytest.mark.timeout(120)
async def test_poison_retry_tiers_then_dlq_and_malformed_json_parked(
    make_stack, rabbit_node, vhost, figures
):
    # Tier TTLs scaled down 100x on this vhost (the lower of policy and argument wins).
    for tier in topology.RETRY_TIERS:
        rabbit_node.ctl(
            "set_policy",
            "-p",
            vhost,
            "--apply-to",
            "queues",
            f"faults-{tier.label}",
            f"^{re.escape(tier.queue)}$",
            json.dumps({"message-ttl": tier.delay_s * 10}),
        )
    stack = make_stack()
    url = rabbit_node.url(vhost)
    async with httpx.AsyncClient(timeout=15) as client:
        tenant = await seed_tenant(client, stack)
        await open_windows(client, stack, tenant, ["2348012000400", "2348012000401"])
        # malformed JSON on every consumed queue
        for queue in (
            topology.QUEUE_OUTBOUND,
            topology.QUEUE_CONVERSATION_INBOUND,
            topology.QUEUE_STATE_STATUS,
        ):
            await publish_raw(url, queue, b'{"not json": ')
        # a message the provider always refuses with a transient error
        faults = f"{stack.urls['sandbox']}/sandbox/numbers/{tenant.phone_number_id}/faults"
        r = await client.put(faults, json={"error_rate": 1.0, "error_status": 500})
        assert r.status_code in (200, 204), r.text
        started = time.monotonic()
        doomed = await api_send(client, stack, tenant, "2348012000400", "never arrives")

        def dlq_depth() -> int:
            return int(rabbit_node.messages(vhost).get(topology.QUEUE_OUTBOUND_DLQ, 0))

        await wait_for(
            lambda: asyncio.to_thread(dlq_depth), timeout_s=60, interval_s=0.5, what="DLQ"
        )
        to_dlq_s = time.monotonic() - started
        await client.delete(faults)
        # the consumer carries on: the next message goes out
        fine = await api_send(client, stack, tenant, "2348012000401", "this one arrives")

        async def fine_sent() -> bool:
            return any(
                e.get("biz_opaque_callback_data") == fine for e in await ledger(client, stack)
            )

        await wait_for(fine_sent, timeout_s=20, what="next message after the poison")
        sender_metrics = (await client.get(f"{stack.urls['sender']}/metrics")).text
        doomed_state = await message_state(client, stack, tenant, doomed)
        entries = await ledger(client, stack)
    parked = await drain_queue(url, topology.QUEUE_OUTBOUND_DLQ)
    poison = await drain_queue(url, topology.QUEUE_POISON)
    headers = parked[0].headers if parked else {}
    retries = metric_value(sender_metrics, "flowchat_sender_sends_total", outcome="retry")
    first = str(headers.get("x-flowchat-first-failure", ""))
    last = str(headers.get("x-flowchat-last-failure", ""))
    figures.sent = 2
    figures.processed = int(any(e.get("biz_opaque_callback_data") == fine for e in entries))
    figures.lost = 1 - figures.processed + (0 if len(parked) == 1 else 1)
    figures.duplicated = duplicates(entries)
    figures.recover_s = to_dlq_s
    figures.notes = (
        f"attempts={headers.get('x-flowchat-attempts')!s} retries={retries:.0f} "
        f"poison={len(poison)} to_dlq={to_dlq_s:.1f}s (tiers scaled 1/100)"
    )
    assert len(parked) == 1
    assert int(str(headers["x-flowchat-attempts"])) == 5
    assert retries == 4, "exactly 4 retries (5 attempts) before the DLQ"
    assert "retries exhausted" in str(headers["x-flowchat-reason"])
    from datetime import datetime

    waited = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()
    # tiers 5 s, 30 s, 2 min, 10 min scaled 1/100: 7.55 s between first and last failure
    assert waited >= 7.0, waited
    assert doomed_state is None or doomed_state["status"] == "parked"
    reasons = {
        str(m.headers.get("x-flowchat-origin-queue")): str(m.headers.get("x-flowchat-reason"))
        for m in poison
    }
    assert set(reasons) == {
        topology.QUEUE_OUTBOUND,
        topology.QUEUE_CONVERSATION_INBOUND,
        topology.QUEUE_STATE_STATUS,
    }, reasons
    assert all(r.startswith("invalid") for r in reasons.values()), reasons
    assert figures.lost == 0
    assert figures.duplicated == 0


# ----------------------------------------------------------------------------- 11


@pytest.mark.timeout(150)
async def test_sigterm_under_load_drains_and_loses_nothing(make_stack, figures):
    stack = make_stack()
    async with httpx.AsyncClient(timeout=15) as client:
        tenant = await seed_tenant(client, stack)
        customers = [f"2348012{n:06d}" for n in range(500, 506)]
        await open_windows(client, stack, tenant, customers)
        # every provider call takes 300 ms: the sender holds a full prefetch when stopped
        faults = f"{stack.urls['sandbox']}/sandbox/numbers/{tenant.phone_number_id}/faults"
        await client.put(faults, json={"latency_ms": 300, "drop_webhooks": -1})
        ids = []
        for n in range(120):
            ids.append(await api_send(client, stack, tenant, customers[n % 6], f"update {n}"))

        async def sent_count() -> int:
            return len(await ledger(client, stack))

        await wait_for(lambda: _at_least(sent_count, 10), timeout_s=30, what="sending")
        drains = {}
        for name in ("sender", "state-manager", "conversation"):
            code, took = await asyncio.to_thread(stack.terminate, name)
            drains[name] = (code, took)
        restarted = time.monotonic()
        for name in ("state-manager", "conversation", "sender"):
            await asyncio.to_thread(stack.restart, name)

        async def all_recorded() -> bool:
            states = [await message_state(client, stack, tenant, i) for i in ids]
            return all(s is not None and s["status"] in FINAL_OK for s in states)

        with contextlib.suppress(AssertionError):
            await wait_for(all_recorded, timeout_s=60, interval_s=1, what="all recorded")
        figures.recover_s = time.monotonic() - restarted
        entries = await ledger(client, stack)
        states = [await message_state(client, stack, tenant, i) for i in ids]
    sent_ids = {e.get("biz_opaque_callback_data") for e in entries}
    figures.sent = len(ids)
    figures.processed = sum(
        1
        for i, s in zip(ids, states, strict=True)
        if i in sent_ids and s and s["status"] in FINAL_OK
    )
    figures.lost = len(ids) - figures.processed
    figures.duplicated = duplicates(entries)
    figures.notes = " ".join(f"{n}: exit={c} in {t:.1f}s" for n, (c, t) in drains.items())
    grace = 20.0
    for name, (code, took) in drains.items():
        assert code == 0, f"{name} exited {code} on SIGTERM"
        assert took < grace + 5, f"{name} took {took:.1f}s to drain"
    assert figures.lost == 0
    assert figures.duplicated == 0


async def _at_least(count, n: int) -> bool:
    return bool((await count()) >= n)
