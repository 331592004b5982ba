"""Redis faults, on the suite's own redis-server (never the shared one).

9. Redis paused (``CLIENT PAUSE <ms> ALL``) and Redis stopped, under send load on a
   number with a low configured rate:

   - the sender's limiter fails safe: no second within the sandbox's ledger holds more
     sends of the number than its configured rate (+1 for clock jitter between the
     limiter's reserved instants and the sandbox's receive times), and Meta's 130429
     never comes back;
   - Redis calls time out: the send API answers 503 (its idempotency store is Redis)
     within a bounded time; the sender parks its commands in the infra retry tier
     (its 30 s TTL scaled to 3 s by a vhost policy, so the test stays short);
   - the event loops are never blocked: ``/healthz`` of every service keeps answering
     while Redis is paused (latencies reported);
   - a webhook during the fault gets 503, or 200 only once it is durable (published
     with confirms: the gateway skips its Redis dedupe then, the conversation service
     dedupes in PostgreSQL), and is answered exactly once after recovery;
   - recovery: every queued message is sent exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from faults_kit import (
    FaultStack,
    RabbitNode,
    RedisNode,
    Tenant,
    duplicates,
    inbound_webhook,
    ledger,
    open_windows,
    seed_tenant,
    sign,
    wait_for,
)

from flowchat_contracts import topology

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

#: The number's configured rate (messages/s): low, so a limiter failing open shows.
RATE = 8
#: The infra retry delay of the sender (Redis unreachable): its tier's TTL in ms here.
INFRA_TIER_S = 30
INFRA_TIER_TTL_MS = 3000
#: Sends the sandbox may see beyond the rate in a window: the limiter reserves exact
#: instants, but sends held up by a busy event loop (2 cores, six services, the tests)
#: land together with the following ones. A limiter failing open sends dozens at once.
JITTER = 3


def scale_infra_tier(node: RabbitNode, vhost: str) -> None:
    """The sender's "Redis unreachable" tier (30 s) waits 3 s on this vhost."""
    tier = topology.retry_tier_for(INFRA_TIER_S)
    node.ctl(
        "set_policy",
        "-p",
        vhost,
        "--apply-to",
        "queues",
        f"faults-{tier.label}",
        f"^{tier.queue.replace('.', '[.]')}$",
        json.dumps({"message-ttl": INFRA_TIER_TTL_MS}),
    )


async def api_send(
    client: httpx.AsyncClient, stack: FaultStack, tenant: Tenant, to: str, text: str
) -> httpx.Response:
    return await client.post(
        f"{stack.urls['gateway']}/v1/messages",
        headers={"Authorization": f"Bearer {tenant.api_key}", "Idempotency-Key": uuid.uuid4().hex},
        json={"account_id": tenant.account_id, "to": to, "content": {"type": "text", "body": text}},
    )


async def post_webhook(
    client: httpx.AsyncClient, stack: FaultStack, tenant: Tenant, body: bytes
) -> int:
    try:
        r = await client.post(
            f"{stack.urls['gateway']}/webhooks/meta",
            content=body,
            headers=sign(tenant.app_secret, body),
        )
    except httpx.TransportError:
        return 0
    return r.status_code


async def sends_to(client: httpx.AsyncClient, stack: FaultStack, tenant: Tenant) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in await ledger(client, stack, phone_number_id=tenant.phone_number_id):
        counts[e["wa_id"]] = counts.get(e["wa_id"], 0) + 1
    return counts


async def greet_once(
    client: httpx.AsyncClient, stack: FaultStack, tenant: Tenant, wa_id: str
) -> tuple[int, float]:
    """A customer's "Hi" until the gateway answers 200: (first status, its seconds)."""
    body = inbound_webhook(tenant, wa_id, "Hi")
    started = time.monotonic()
    first = await post_webhook(client, stack, tenant, body)
    took = time.monotonic() - started
    status = first
    deadline = time.monotonic() + 60
    while status != 200:
        assert time.monotonic() < deadline, f"webhook never accepted ({status})"
        await asyncio.sleep(0.5)
        status = await post_webhook(client, stack, tenant, body)
    return first, took


def busiest(stamps: list[float], window_s: float = 1.0) -> tuple[int, float, list[int]]:
    """Most sends within any half-open window [t, t + window_s) starting at a send, when
    that window starts (wall clock), and the gaps (ms) between its sends."""
    stamps = sorted(stamps)
    best, at, j = 0, 0, 0
    for i, t in enumerate(stamps):
        j = max(j, i)
        while j < len(stamps) and stamps[j] < t + window_s:
            j += 1
        if j - i > best:
            best, at = j - i, i
    window = stamps[at : at + best]
    gaps = [round((b - a) * 1000) for a, b in itertools.pairwise(window)]
    return best, window[0] if window else 0.0, gaps


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class HealthProbe:
    """Polls every service's ``/healthz`` and records (start, service, seconds, status)."""

    stack: FaultStack
    interval_s: float = 0.25
    samples: list[tuple[float, str, float, int]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def _poll(self, client: httpx.AsyncClient, name: str) -> None:
        while True:
            started = time.monotonic()
            try:
                r = await client.get(f"{self.stack.urls[name]}/healthz")
                status = r.status_code
            except httpx.TransportError:
                status = 0
            self.samples.append((started, name, time.monotonic() - started, status))
            await asyncio.sleep(self.interval_s)

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            await asyncio.gather(*(self._poll(client, n) for n in self.stack.names))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def during(self, start: float, end: float) -> dict[str, list[tuple[float, int]]]:
        out: dict[str, list[tuple[float, int]]] = {n: [] for n in self.stack.names}
        for t, name, took, status in self.samples:
            if start <= t < end:
                out[name].append((took, status))
        return out


@dataclass
class Load:
    """Sends queued through the send API before the fault, and what came of them."""

    ids: list[str]
    customers: list[str]


async def queue_sends(
    client: httpx.AsyncClient, stack: FaultStack, tenant: Tenant, customers: list[str], n: int
) -> Load:
    ids: list[str] = []

    async def worker(ks: range) -> None:
        for k in ks:
            r = await api_send(client, stack, tenant, customers[k % len(customers)], f"update {k}")
            assert r.status_code == 202, r.text
            ids.append(str(r.json()["message_id"]))

    await asyncio.gather(*(worker(range(w, n, 8)) for w in range(8)))
    return Load(ids, customers)


async def sent_ids(client: httpx.AsyncClient, stack: FaultStack, tenant: Tenant) -> set[str]:
    entries = await ledger(client, stack, phone_number_id=tenant.phone_number_id)
    return {str(e.get("biz_opaque_callback_data")) for e in entries}


async def prepare(
    client: httpx.AsyncClient, stack: FaultStack, customers: list[str]
) -> tuple[Tenant, int]:
    """A tenant on a slow number; its windows open; the bot's replies to one "Hi"."""
    tenant = await seed_tenant(client, stack, throughput_mps=RATE)
    await open_windows(client, stack, tenant, [*customers, "15550000001"])
    # the customers' inbound messages used up the number's throughput at the sandbox
    await asyncio.sleep(len(customers) / RATE + 1)
    first, _ = await greet_once(client, stack, tenant, "15550000001")
    assert first == 200

    async def replied() -> int:
        return (await sends_to(client, stack, tenant)).get("15550000001", 0)

    await wait_for(replied, timeout_s=30, what="baseline reply")
    await asyncio.sleep(1.5)  # a reply may come in several messages
    return tenant, await replied()


async def settle(
    client: httpx.AsyncClient,
    stack: FaultStack,
    tenant: Tenant,
    load: Load,
    webhook_customer: str,
    per_customer: int,
    *,
    timeout_s: float = 60,
) -> tuple[list[dict[str, Any]], float]:
    """Wait until every queued send and the webhook's replies went out: the ledger and
    the monotonic time when that was seen."""

    async def done() -> bool:
        counts = await sends_to(client, stack, tenant)
        got = await sent_ids(client, stack, tenant)
        return set(load.ids) <= got and counts.get(webhook_customer, 0) >= per_customer

    with contextlib.suppress(AssertionError):
        await wait_for(done, timeout_s=timeout_s, interval_s=0.5, what="everything sent")
    done_at = time.monotonic()
    await asyncio.sleep(2)  # late duplicates would show up now
    return await ledger(client, stack, phone_number_id=tenant.phone_number_id), done_at


# ----------------------------------------------------------------------------- 9


@pytest.mark.timeout(180)
async def test_redis_paused_limiter_fails_safe_and_loops_stay_responsive(
    make_stack, rabbit_node, vhost, redis_node: RedisNode, figures
):
    scale_infra_tier(rabbit_node, vhost)
    stack = make_stack()
    pause_s = 7.0
    customers = [f"2348013{n:06d}" for n in range(100, 106)]
    webhook_customer = "2348013000200"
    async with httpx.AsyncClient(timeout=30) as client:
        tenant, per_customer = await prepare(client, stack, [*customers, webhook_customer])
        probe = HealthProbe(stack)
        probe.start()
        try:
            # more than the sender may hold waiting for a slot (5 s): the rest waits in
            # the 5 s retry tier and comes back (to Redis) during the pause
            load = await queue_sends(client, stack, tenant, customers, 10 * RATE)
            await asyncio.to_thread(
                redis_node.command, "CLIENT", "PAUSE", str(int(pause_s * 1000)), "ALL"
            )
            paused_at, fault_wall = time.monotonic(), time.time()
            # the send API: its idempotency store does not answer → 503, in bounded time
            started = time.monotonic()
            r = await api_send(client, stack, tenant, customers[0], "during the pause")
            api_status, api_s = r.status_code, time.monotonic() - started
            # a customer writes while Redis is paused
            hook_task = asyncio.create_task(greet_once(client, stack, tenant, webhook_customer))
            started = time.monotonic()
            ready = await client.get(f"{stack.urls['sender']}/readyz")
            ready_status, ready_s = ready.status_code, time.monotonic() - started
            await asyncio.sleep(max(0.0, paused_at + pause_s - time.monotonic()))
            resumed_at = time.monotonic()
            hook_first, hook_s = await hook_task
            entries, done_at = await settle(
                client, stack, tenant, load, webhook_customer, per_customer
            )
        finally:
            await probe.stop()
        sender_metrics = (await client.get(f"{stack.urls['sender']}/metrics")).text
    during = probe.during(paused_at, paused_at + pause_s)
    ours = [e for e in entries if e.get("biz_opaque_callback_data") in set(load.ids)]
    got = {e.get("biz_opaque_callback_data") for e in ours}
    replies = sum(1 for e in entries if e["wa_id"] == webhook_customer)
    peak, peak_at, gaps = busiest([float(e["timestamp"]) for e in entries])
    peak3, _, _ = busiest([float(e["timestamp"]) for e in entries], 3.0)
    throttled = metric(sender_metrics, "flowchat_sender_sends_total", code="130429")
    infra_tier = topology.retry_tier_for(INFRA_TIER_S).label
    infra = metric(sender_metrics, "flowchat_sender_retries_total", tier=infra_tier)
    figures.sent = len(load.ids) + 1
    figures.processed = len(got) + int(replies >= per_customer)
    figures.lost = figures.sent - figures.processed
    figures.duplicated = duplicates(entries) + max(0, replies - per_customer)
    figures.recover_s = done_at - resumed_at
    lat = {
        n: (
            len(v),
            max((t for t, _ in v), default=-1.0),
            statistics.median(t for t, _ in v) if v else -1.0,
        )
        for n, v in during.items()
    }
    figures.notes = (
        f"pause={pause_s:.0f}s rate={RATE}/s peak={peak}/s@{peak_at - fault_wall:+.1f}s,"
        f"{peak3}/3s 130429={throttled:.0f} "
        f"infra_retries={infra:.0f} send_api={api_status} in {api_s:.2f}s "
        f"webhook={hook_first} in {hook_s:.2f}s sender_readyz={ready_status} in {ready_s:.2f}s "
        "healthz(n,max,p50)=" + ",".join(f"{n}:{c}/{m:.2f}/{p:.3f}" for n, (c, m, p) in lat.items())
    )
    assert peak3 <= 3 * RATE + JITTER, f"{peak3} sends within 3 s at {RATE}/s"
    assert peak <= RATE + JITTER, (
        f"{peak} sends within one second at {RATE}/s, {peak_at - fault_wall:+.1f}s "
        f"after the fault began; gaps {gaps} ms"
    )
    assert throttled == 0, "the sandbox refused sends with 130429"
    assert infra >= 1, "the pause never reached the sender (nothing waited in the infra tier)"
    assert api_status == 503, (api_status, r.text)
    assert api_s < 5, api_s
    assert hook_first in (200, 503), hook_first
    for name, samples in during.items():
        assert len(samples) >= 3, f"{name}: /healthz hardly answered while Redis was paused"
        assert all(s == 200 for _, s in samples), (name, samples)
        assert max(t for t, _ in samples) < 3, (name, samples)
    assert figures.lost == 0, f"missing: {set(load.ids) - got}, replies={replies}/{per_customer}"
    assert figures.duplicated == 0


@pytest.mark.timeout(180)
async def test_redis_stopped_then_restarted_sends_everything_once(
    make_stack, rabbit_node, vhost, redis_node: RedisNode, figures
):
    scale_infra_tier(rabbit_node, vhost)
    stack = make_stack()
    # longer than the sender's in-process limiter waits (5 s): a restarted Redis has no
    # limiter state, so no send may still hold a slot reserved in the old one
    down_s = 6.0
    customers = [f"2348013{n:06d}" for n in range(300, 306)]
    webhook_customer = "2348013000400"
    async with httpx.AsyncClient(timeout=30) as client:
        tenant, per_customer = await prepare(client, stack, [*customers, webhook_customer])
        load = await queue_sends(client, stack, tenant, customers, 10 * RATE)
        await asyncio.to_thread(redis_node.stop)
        stopped_at, fault_wall = time.monotonic(), time.time()
        try:
            started = time.monotonic()
            r = await api_send(client, stack, tenant, customers[0], "while Redis is down")
            api_status, api_s = r.status_code, time.monotonic() - started
            hook_task = asyncio.create_task(greet_once(client, stack, tenant, webhook_customer))
            await asyncio.sleep(max(0.0, stopped_at + down_s - time.monotonic()))
        finally:
            await asyncio.to_thread(redis_node.start)
        restarted_at = time.monotonic()
        hook_first, hook_s = await hook_task
        entries, done_at = await settle(client, stack, tenant, load, webhook_customer, per_customer)
        sender_metrics = (await client.get(f"{stack.urls['sender']}/metrics")).text
    ours = [e for e in entries if e.get("biz_opaque_callback_data") in set(load.ids)]
    got = {e.get("biz_opaque_callback_data") for e in ours}
    replies = sum(1 for e in entries if e["wa_id"] == webhook_customer)
    peak, peak_at, gaps = busiest([float(e["timestamp"]) for e in entries])
    peak3, _, _ = busiest([float(e["timestamp"]) for e in entries], 3.0)
    throttled = metric(sender_metrics, "flowchat_sender_sends_total", code="130429")
    figures.sent = len(load.ids) + 1
    figures.processed = len(got) + int(replies >= per_customer)
    figures.lost = figures.sent - figures.processed
    figures.duplicated = duplicates(entries) + max(0, replies - per_customer)
    figures.recover_s = done_at - restarted_at
    figures.notes = (
        f"down={down_s:.0f}s rate={RATE}/s peak={peak}/s@{peak_at - fault_wall:+.1f}s,"
        f"{peak3}/3s 130429={throttled:.0f} "
        f"send_api={api_status} in {api_s:.2f}s webhook={hook_first} in {hook_s:.2f}s "
        f"restart={restarted_at - stopped_at:.1f}s"
    )
    assert peak3 <= 3 * RATE + JITTER, f"{peak3} sends within 3 s at {RATE}/s"
    assert peak <= RATE + JITTER, (
        f"{peak} sends within one second at {RATE}/s, {peak_at - fault_wall:+.1f}s "
        f"after the fault began; gaps {gaps} ms"
    )
    assert throttled == 0
    assert api_status == 503, (api_status, r.text)
    assert api_s < 5, api_s
    assert hook_first in (200, 503), hook_first
    assert figures.lost == 0, f"missing: {set(load.ids) - got}, replies={replies}/{per_customer}"
    assert figures.duplicated == 0
