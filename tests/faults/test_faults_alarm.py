"""4. A memory alarm on the suite's own RabbitMQ node (never the shared one).

``set_vm_memory_high_watermark 0`` raises the alarm: the node blocks every connection
that publishes. The gateway cannot get a confirm, so each webhook and each send
request is answered 503 within its publish deadline, never 200. Meta retries the
webhooks (same body, same wamid) and a client retries its request (same
Idempotency-Key); after the watermark is reset they get 200 / 202, and each is
processed exactly once, although the publishes that timed out during the alarm were
still sitting in the blocked socket and reach the queues too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import httpx
import pytest
from faults_kit import (
    Attempt,
    FaultStack,
    RabbitNode,
    Tenant,
    baseline_replies,
    deliver_until_accepted,
    duplicates,
    inbound_webhook,
    ledger,
    message_state,
    open_windows,
    seed_tenant,
    sends_per_recipient,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

PUBLISH_TIMEOUT_S = 2.0


def watermark(node: RabbitNode) -> str:
    """The node's relative memory watermark now, as ``set_vm_memory_high_watermark`` takes it."""
    out = node.ctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().").strip()
    float(out)  # a plain fraction (the suite's node is configured no other way)
    return out


def memory_alarm(node: RabbitNode) -> bool:
    return "memory" in node.ctl("eval", "rabbit_alarm:get_alarms().")


def all_connections_blocking(node: RabbitNode, vhost: str) -> bool:
    """Every connection of the vhost has taken the alarm in (``blocking``: it blocks at
    its next publish; ``blocked``: it did). The alarm reaches them a moment after it is
    raised, and a publish in between is still confirmed."""
    out = node.ctl("list_connections", "vhost", "state", "--no-table-headers")
    states = [line.split()[-1] for line in out.splitlines() if line.split()[:1] == [vhost]]
    return bool(states) and all(s in ("blocking", "blocked") for s in states)


async def send_request(
    client: httpx.AsyncClient, stack: FaultStack, tenant: Tenant, key: str, to: str
) -> tuple[int, str | None, float]:
    """One send API request with a fixed Idempotency-Key: status, message id, seconds."""
    started = time.monotonic()
    r = await client.post(
        f"{stack.urls['gateway']}/v1/messages",
        headers={"Authorization": f"Bearer {tenant.api_key}", "Idempotency-Key": key},
        json={
            "account_id": tenant.account_id,
            "to": to,
            "content": {"type": "text", "body": "Your invoice is ready"},
        },
    )
    message_id = r.json().get("message_id") if r.status_code == 202 else None
    return r.status_code, message_id, time.monotonic() - started


@pytest.mark.timeout(180)
async def test_memory_alarm_blocks_publishers_503_then_recovers(
    make_stack, rabbit_node, vhost, figures
):
    stack = make_stack(
        service_env={"gateway": {"FLOWCHAT_GATEWAY_PUBLISH_TIMEOUT_S": str(PUBLISH_TIMEOUT_S)}}
    )
    async with httpx.AsyncClient(timeout=30) as client:
        tenant = await seed_tenant(client, stack)
        per_customer = await baseline_replies(client, stack, tenant)

        customers = [f"1555{n:07d}" for n in range(800, 812)]
        api_to = "2348013000899"
        await open_windows(client, stack, tenant, [*customers, api_to])
        previous = await asyncio.to_thread(watermark, rabbit_node)
        attempts: list[Attempt] = []
        api: list[tuple[int, str | None, float]] = []
        key = uuid.uuid4().hex
        reset_at: float | None = None
        try:
            await asyncio.to_thread(rabbit_node.ctl, "set_vm_memory_high_watermark", "0")
            await wait_for(
                lambda: asyncio.to_thread(memory_alarm, rabbit_node),
                timeout_s=20,
                interval_s=0.3,
                what="memory alarm raised",
            )
            await wait_for(
                lambda: asyncio.to_thread(all_connections_blocking, rabbit_node, vhost),
                timeout_s=20,
                interval_s=0.3,
                what="every connection blocking",
            )
            alarm_at = time.monotonic()
            # Meta keeps retrying each webhook (same body) until it gets a 200.
            bodies = {c: inbound_webhook(tenant, c, "Hi") for c in customers}
            workers = [
                asyncio.create_task(
                    deliver_until_accepted(client, stack, tenant, bodies[c], c, attempts)
                )
                for c in customers
            ]
            api.append(await send_request(client, stack, tenant, key, api_to))
            await asyncio.sleep(2 * PUBLISH_TIMEOUT_S + 1)  # every webhook tried twice at least
            api.append(await send_request(client, stack, tenant, key, api_to))
            # the CLI takes a second or two: the alarm may clear any time during the call
            reset_at = time.monotonic()
        finally:
            await asyncio.to_thread(rabbit_node.ctl, "set_vm_memory_high_watermark", previous)
        assert reset_at is not None
        await wait_for(
            lambda: asyncio.to_thread(lambda: not memory_alarm(rabbit_node)),
            timeout_s=20,
            what="memory alarm cleared",
        )
        accepted = await asyncio.gather(*workers)
        ok_at = min((a.ended for a in attempts if a.status == 200), default=reset_at)
        figures.recover_s = max(0.0, ok_at - reset_at)
        # the client retries its request (same key) until it is queued
        status = 0
        message_id: str | None = None
        while status != 202 and time.monotonic() - reset_at < 30:
            status, message_id, _ = await send_request(client, stack, tenant, key, api_to)
            if status != 202:
                await asyncio.sleep(0.3)

        async def all_answered() -> bool:
            counts = await sends_per_recipient(client, stack, tenant)
            return counts.get(api_to, 0) >= 1 and all(
                counts.get(c, 0) >= per_customer for c in customers
            )

        with contextlib.suppress(AssertionError):
            await wait_for(all_answered, timeout_s=60, interval_s=0.5, what="every reply sent")
        await asyncio.sleep(3)  # late duplicates (the publishes blocked in the socket) land now
        counts = await sends_per_recipient(client, stack, tenant)
        entries = await ledger(client, stack, phone_number_id=tenant.phone_number_id)
        state = None
        if message_id is not None:
            with contextlib.suppress(AssertionError):
                state = await wait_for(
                    lambda: message_state(client, stack, tenant, message_id),
                    timeout_s=20,
                    what="the record of the queued send",
                )

    during = [a for a in attempts if a.started >= alarm_at and a.ended <= reset_at]
    figures.sent = len(customers) + 1
    figures.processed = sum(1 for c in customers if counts.get(c, 0) >= per_customer) + int(
        counts.get(api_to, 0) >= 1
    )
    figures.lost = figures.sent - figures.processed
    figures.duplicated = duplicates(entries) + sum(
        max(0, counts.get(c, 0) - per_customer) for c in customers
    )
    figures.duplicated += max(0, counts.get(api_to, 0) - 1)
    figures.notes = (
        f"during alarm: {len(during)} webhooks, statuses {sorted({a.status for a in during})}, "
        f"slowest {max((a.ended - a.started for a in during), default=0):.2f}s; "
        f"send API {[s for s, _, _ in api]} then {status}"
    )
    assert figures.lost == 0, {c: counts.get(c, 0) for c in [*customers, api_to]}
    assert all(accepted), "some webhooks were never accepted after the reset"
    assert len(during) >= len(customers), "too few requests reached the gateway during the alarm"
    assert {a.status for a in during} == {503}, [
        (a.wa_id, a.status, round(a.started - alarm_at, 2), round(a.ended - alarm_at, 2))
        for a in during
    ]
    assert all(a.ended - a.started < PUBLISH_TIMEOUT_S + 2 for a in during), "503 too late"
    assert all(s == 503 and t < PUBLISH_TIMEOUT_S + 2 for s, _, t in api), api
    assert status == 202
    assert state is not None, "the send the client was told about (202) has no record"
    assert figures.duplicated == 0
