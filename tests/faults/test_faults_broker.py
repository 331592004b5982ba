"""Broker faults under load, on the suite's own RabbitMQ node.

1. SIGKILL of the node under webhook load: 503 (never 200) while it is down, every
   webhook answered 200 is processed, consumers back within 30 s, no second send.
2. ``close_all_connections``: every service reconnects, consumers restored.
3. A stalled link (TCP proxy): the gateway answers 503 within its publish deadline.
(4, the memory alarm, is in ``test_faults_alarm.py``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest
from faults_kit import (
    Attempt,
    FaultStack,
    Figures,
    RabbitNode,
    TcpProxy,
    Tenant,
    baseline_replies,
    deliver_until_accepted,
    duplicates,
    inbound_webhook,
    ledger,
    open_windows,
    post_webhook,
    seed_tenant,
    sends_per_recipient,
    wait_for,
)

from flowchat_contracts import topology

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CONSUMED = (
    topology.QUEUE_CONVERSATION_INBOUND,
    *topology.CONVERSATION_PARTITION_QUEUES,  # each by one replica (single active consumer)
    topology.QUEUE_OUTBOUND,
    topology.QUEUE_STATE_STATUS,
)


async def say_hi_until_accepted(
    client: httpx.AsyncClient,
    stack: FaultStack,
    tenant: Tenant,
    wa_id: str,
    attempts: list[Attempt],
    *,
    deadline_s: float = 90,
) -> bool:
    """One customer's "Hi", posted like Meta does (same wamid) until a 200."""
    body = inbound_webhook(tenant, wa_id, "Hi")
    return await deliver_until_accepted(
        client, stack, tenant, body, wa_id, attempts, deadline_s=deadline_s
    )


def consumers_back(node: RabbitNode, vhost: str) -> bool:
    try:
        counts = node.consumers(vhost)
    except Exception:  # noqa: BLE001 - node still booting
        return False
    return all(counts.get(q, 0) >= 1 for q in CONSUMED)


async def settle_and_count(
    client: httpx.AsyncClient,
    stack: FaultStack,
    tenant: Tenant,
    customers: list[str],
    per_customer: int,
    fig: Figures,
    timeout_s: float = 60,
) -> None:
    """Wait until every customer got its replies; fill processed, lost, duplicated."""

    async def all_answered() -> bool:
        counts = await sends_per_recipient(client, stack, tenant)
        return all(counts.get(c, 0) >= per_customer for c in customers)

    with contextlib.suppress(AssertionError):
        await wait_for(all_answered, timeout_s=timeout_s, interval_s=0.5, what="replies")
    await asyncio.sleep(2)  # late duplicates would show up now
    counts = await sends_per_recipient(client, stack, tenant)
    entries = await ledger(client, stack, phone_number_id=tenant.phone_number_id)
    fig.processed = sum(1 for c in customers if counts.get(c, 0) >= per_customer)
    fig.lost = len(customers) - fig.processed
    fig.duplicated = duplicates(entries) + sum(
        max(0, counts.get(c, 0) - per_customer) for c in customers
    )


@pytest.mark.timeout(240)
async def test_broker_sigkill_under_load(make_stack, rabbit_node, vhost, figures):
    stack = make_stack()
    async with httpx.AsyncClient(timeout=15) as client:
        tenant = await seed_tenant(client, stack)
        per_customer = await baseline_replies(client, stack, tenant)
        customers = [f"1555{n:07d}" for n in range(100, 260)]
        await open_windows(client, stack, tenant, customers)
        attempts: list[Attempt] = []
        queue: asyncio.Queue[str] = asyncio.Queue()
        for c in customers:
            queue.put_nowait(c)

        async def worker() -> None:
            while not queue.empty():
                wa_id = queue.get_nowait()
                await say_hi_until_accepted(client, stack, tenant, wa_id, attempts)
                await asyncio.sleep(0.02)

        workers = [asyncio.create_task(worker()) for _ in range(8)]
        await wait_for(
            lambda: sum(a.status == 200 for a in attempts) >= 40, timeout_s=30, what="load"
        )
        killed_at = time.monotonic()
        await asyncio.to_thread(rabbit_node.kill)
        await asyncio.sleep(4)  # down for a while under load
        restart_at = time.monotonic()
        await asyncio.to_thread(rabbit_node.start)
        up_at = time.monotonic()
        await wait_for(
            lambda: asyncio.to_thread(consumers_back, rabbit_node, vhost),
            timeout_s=30,
            interval_s=0.5,
            what="consumers back on every queue",
        )
        figures.recover_s = time.monotonic() - up_at
        await asyncio.gather(*workers)

        while_down = [a for a in attempts if a.started > killed_at + 0.2 and a.ended < restart_at]
        figures.sent = len(customers)
        accepted = {a.wa_id for a in attempts if a.status == 200}
        await settle_and_count(client, stack, tenant, sorted(accepted), per_customer, figures)
        figures.notes = (
            f"attempts={len(attempts)} while_down={len(while_down)} "
            f"503s={sum(a.status == 503 for a in attempts)} "
            f"node_restart={up_at - restart_at:.1f}s"
        )
    assert while_down, "no request reached the gateway while the broker was down"
    assert all(a.status != 200 for a in while_down), "200 while the broker was down"
    assert {a.status for a in while_down} <= {503}, {a.status for a in while_down}
    assert accepted == set(customers), "some webhooks were never accepted after the restart"
    assert figures.recover_s <= 30
    assert figures.lost == 0
    assert figures.duplicated == 0


@pytest.mark.timeout(120)
async def test_close_all_connections_reconnects_and_restores_consumers(
    make_stack, rabbit_node, vhost, figures
):
    stack = make_stack()
    async with httpx.AsyncClient(timeout=15) as client:
        tenant = await seed_tenant(client, stack)
        per_customer = await baseline_replies(client, stack, tenant)
        customers = [f"1555{n:07d}" for n in range(600, 620)]
        await open_windows(client, stack, tenant, customers)
        closed = time.monotonic()
        await asyncio.to_thread(
            rabbit_node.ctl, "close_all_connections", "-p", vhost, "fault suite"
        )
        await wait_for(
            lambda: asyncio.to_thread(consumers_back, rabbit_node, vhost),
            timeout_s=30,
            interval_s=0.5,
            what="consumers back",
        )
        figures.recover_s = time.monotonic() - closed
        attempts: list[Attempt] = []
        for c in customers:
            assert await say_hi_until_accepted(client, stack, tenant, c, attempts, deadline_s=30)
        figures.sent = len(customers)
        await settle_and_count(client, stack, tenant, customers, per_customer, figures)
        figures.notes = f"attempts={len(attempts)}"
    assert figures.recover_s <= 30
    assert figures.lost == 0
    assert figures.duplicated == 0


@pytest.mark.timeout(120)
async def test_stalled_broker_link_gives_503_within_the_deadline(
    make_stack, rabbit_node, vhost, figures
):
    publish_timeout_s = 2.0
    with TcpProxy(rabbit_node.port) as proxy:
        stack = make_stack(
            amqp_urls={"gateway": proxy.url(vhost)},
            service_env={"gateway": {"FLOWCHAT_GATEWAY_PUBLISH_TIMEOUT_S": str(publish_timeout_s)}},
        )
        async with httpx.AsyncClient(timeout=30) as client:
            tenant = await seed_tenant(client, stack)
            per_customer = await baseline_replies(client, stack, tenant)
            customers = [f"1555{n:07d}" for n in range(700, 710)]
            await open_windows(client, stack, tenant, customers)
            proxy.set("stall")
            timings = []
            for c in customers[:3]:
                started = time.monotonic()
                status = await post_webhook(client, stack, tenant, inbound_webhook(tenant, c, "Hi"))
                timings.append((status, time.monotonic() - started))
            proxy.set("cut")  # then the link breaks outright
            await asyncio.sleep(0.5)
            started = time.monotonic()
            cut_status = await post_webhook(
                client, stack, tenant, inbound_webhook(tenant, "1", "Hi")
            )
            cut_s = time.monotonic() - started
            proxy.set("pass")
            healed = time.monotonic()
            attempts: list[Attempt] = []
            for c in customers:
                assert await say_hi_until_accepted(
                    client, stack, tenant, c, attempts, deadline_s=40
                )
            figures.recover_s = time.monotonic() - healed
            figures.sent = len(customers)
            await settle_and_count(client, stack, tenant, customers, per_customer, figures)
    figures.notes = (
        f"stalled: {[(s, round(t, 2)) for s, t in timings]} cut: {cut_status} in {cut_s:.2f}s"
    )
    assert all(s == 503 for s, _ in timings), timings
    assert all(t < publish_timeout_s + 2 for _, t in timings), timings
    assert cut_status == 503
    assert cut_s < publish_timeout_s + 2
    assert figures.lost == 0
    assert figures.duplicated == 0
