"""Retry tiers and circuit breakers of the sender, on the suite's own broker and Redis.

7. Head-of-line: the retry tiers are separate queues with a queue-level TTL, so a
   message parked for 10 min does not hold back one waiting 5 s. One account's breaker
   is open for longer than 5 min (its messages go to the 10 min tier); another
   account's message fails once, waits in the 5 s tier, comes back and is sent while
   the 10 min messages are still parked.
8. One account's provider failing: only its breaker opens (state metric and log), the
   other account keeps its configured rate, each half-open period lets exactly one
   probe through, and once the provider heals every message goes out exactly once.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import pytest
from faults_kit import (
    FaultStack,
    Tenant,
    api_send,
    duplicates,
    ledger,
    message_state,
    metric_value,
    open_windows,
    scrape,
    seed_tenant,
    set_faults,
    wait_for,
)

from flowchat_contracts import topology

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

TIER_5S = topology.retry_tier_for(5)
TIER_10M = topology.retry_tier_for(600)


def breaker_log(stack: FaultStack, account_id: str) -> list[str]:
    """The account's breaker states, in the order the sender logged the changes."""
    states = []
    for line in stack.log("sender").splitlines():
        if "circuit breaker state changed" not in line:
            continue
        with_fields: dict[str, Any] = json.loads(line)
        if with_fields.get("account_id") == account_id:
            states.append(str(with_fields["state"]))
    return states


async def breaker_state(client: httpx.AsyncClient, stack: FaultStack, account_id: str) -> int:
    """0 closed, 1 half-open, 2 open (an account never changed has no sample: closed)."""
    text = await scrape(client, stack, "sender")
    return int(metric_value(text, "flowchat_sender_breaker_state", account=account_id))


async def provider_failures(client: httpx.AsyncClient, stack: FaultStack) -> int:
    """Cloud API requests the sandbox refused with code 2 (only the failing number's)."""
    text = await scrape(client, stack, "sandbox")
    return int(metric_value(text, "flowchat_sandbox_sends_total", provider="meta", outcome="2"))


# ----------------------------------------------------------------------------- 7


@pytest.mark.timeout(150)
async def test_ten_minute_retry_does_not_delay_a_five_second_one(
    make_stack, rabbit_node, vhost, figures
):
    # Account A's breaker opens after 2 failures and stays open past 5 min: its
    # messages are deferred (no attempt used) to the tier that waits >= 400 s, 10 min.
    stack = make_stack(
        service_env={
            "sender": {
                "FLOWCHAT_SENDER_BREAKER_MIN_VOLUME": "2",
                "FLOWCHAT_SENDER_BREAKER_OPEN_S": "400",
            }
        }
    )

    def depth(queue: str) -> int:
        return int(rabbit_node.messages(vhost).get(queue, 0))

    async with httpx.AsyncClient(timeout=15) as client:
        slow = await seed_tenant(client, stack)
        fast = await seed_tenant(client, stack)
        await open_windows(client, stack, slow, ["2348013000001", "2348013000002"])
        await open_windows(client, stack, fast, ["2348013000101"])
        await set_faults(client, stack, slow, error_rate=1.0, error_status=500)
        parked = [
            await api_send(client, stack, slow, "2348013000001", "order update 1"),
            await api_send(client, stack, slow, "2348013000002", "order update 2"),
        ]
        await wait_for(
            lambda: breaker_state(client, stack, slow.account_id),
            timeout_s=20,
            what="A's breaker open",
        )
        parked.append(await api_send(client, stack, slow, "2348013000001", "order update 3"))
        await wait_for(
            lambda: asyncio.to_thread(lambda: depth(TIER_10M.queue) >= 1),
            timeout_s=20,
            what="a message parked in the 10 min tier",
        )
        # B: the provider refuses once (transient, code 2), then takes the message.
        await set_faults(client, stack, fast, error_code=2, error_count=1)
        started = time.monotonic()
        quick = await api_send(client, stack, fast, "2348013000101", "your code is ready")

        async def quick_sent() -> bool:
            rows = await ledger(client, stack, biz_opaque_callback_data=quick)
            return bool(rows)

        await wait_for(quick_sent, timeout_s=60, interval_s=0.3, what="the 5 s retry sent")
        back_s = time.monotonic() - started
        # A's messages: the two that failed came back from the 5 s tier meanwhile and
        # were deferred again (breaker still open); all three wait in the 10 min tier.
        await wait_for(
            lambda: asyncio.to_thread(lambda: depth(TIER_10M.queue) == len(parked)),
            timeout_s=20,
            what="every A message in the 10 min tier",
        )
        in_10m = await asyncio.to_thread(depth, TIER_10M.queue)
        # the 5 s tier empties (quorum queues count a dead-lettered message until the
        # target confirms it)
        await wait_for(
            lambda: asyncio.to_thread(lambda: depth(TIER_5S.queue) == 0),
            timeout_s=20,
            what="the 5 s tier empty",
        )
        state = await wait_for(
            lambda: message_state(client, stack, fast, quick), timeout_s=20, what="B's record"
        )
        entries = await ledger(client, stack)
        sender_metrics = await scrape(client, stack, "sender")
    sent_ids = {e.get("biz_opaque_callback_data") for e in entries}
    figures.sent = 1 + len(parked)
    figures.processed = int(quick in sent_ids)
    figures.lost = 1 - figures.processed + (len(parked) - in_10m)
    figures.duplicated = duplicates(entries)
    figures.recover_s = back_s
    figures.notes = (
        f"5 s retry sent after {back_s:.1f}s while {in_10m} wait in the 10 min tier "
        f"({TIER_10M.queue})"
    )
    deferred_10m = metric_value(
        sender_metrics, "flowchat_sender_retries_total", tier=TIER_10M.label, counted="false"
    )
    assert deferred_10m >= len(parked), "A's messages did not go to the 10 min tier"
    assert not sent_ids & set(parked), "a message of the open circuit was sent"
    assert back_s >= TIER_5S.delay_s * 0.9, "the retry did not wait in the 5 s tier"
    assert state["status"] != "failed", state
    assert figures.lost == 0
    assert figures.duplicated == 0


# ----------------------------------------------------------------------------- 8


@pytest.mark.timeout(180)
async def test_failing_account_opens_only_its_breaker_with_one_probe(
    make_stack, rabbit_node, vhost, figures
):
    # Retry tiers 10x shorter on this vhost (the lower of policy and argument wins):
    # deferred messages come back every 0.5 s, so each half-open period sees a crowd.
    for tier in topology.RETRY_TIERS:
        rabbit_node.ctl(
            "set_policy",
            "-p",
            vhost,
            "--apply-to",
            "queues",
            f"faults-{tier.label}",
            f"^{re.escape(tier.queue)}$",
            json.dumps({"message-ttl": tier.delay_s * 100}),
        )
    min_volume, open_s, rate_mps = 5, 2.0, 10
    stack = make_stack(
        service_env={
            "sender": {
                "FLOWCHAT_SENDER_BREAKER_MIN_VOLUME": str(min_volume),
                "FLOWCHAT_SENDER_BREAKER_OPEN_S": str(open_s),
            }
        }
    )
    async with httpx.AsyncClient(timeout=15) as client:
        bad = await seed_tenant(client, stack)
        good = await seed_tenant(client, stack, throughput_mps=rate_mps)
        bad_to = [f"2348014{n:06d}" for n in range(15)]
        good_to = [f"2348015{n:06d}" for n in range(8)]
        await open_windows(client, stack, bad, bad_to)
        await open_windows(client, stack, good, good_to)
        # slow refusals: a probe is in flight long enough for a crowd to come back
        await set_faults(client, stack, bad, error_rate=1.0, error_status=500, latency_ms=300)
        bad_ids = [await api_send(client, stack, bad, to, "invoice") for to in bad_to[:min_volume]]
        await wait_for(
            lambda: _is(breaker_state(client, stack, bad.account_id), 2),
            timeout_s=20,
            what="the failing account's breaker open",
        )
        before_open = await provider_failures(client, stack)
        # More traffic for both accounts while the circuit is open.
        sem = asyncio.Semaphore(8)

        async def send(tenant: Tenant, to: str, text: str) -> str:
            async with sem:
                return await api_send(client, stack, tenant, to, text)

        good_ids, more_bad = await asyncio.gather(
            asyncio.gather(*(send(good, good_to[n % 8], f"update {n}") for n in range(40))),
            asyncio.gather(*(send(bad, to, "invoice") for to in bad_to[min_volume:])),
        )
        bad_ids += more_bad

        async def failed_probes() -> int:
            return breaker_log(stack, bad.account_id)[1:].count("open")

        await wait_for(
            lambda: _at_least(failed_probes(), 2), timeout_s=40, what="two failed probes"
        )
        await set_faults(client, stack, bad)  # the provider heals
        healed = time.monotonic()

        async def bad_all_sent() -> bool:
            rows = await ledger(client, stack, phone_number_id=bad.phone_number_id)
            return len(rows) >= len(bad_ids)

        await wait_for(bad_all_sent, timeout_s=60, interval_s=0.5, what="failing account healed")
        figures.recover_s = time.monotonic() - healed

        async def good_all_sent() -> bool:
            rows = await ledger(client, stack, phone_number_id=good.phone_number_id)
            return len(rows) >= len(good_ids)

        await wait_for(good_all_sent, timeout_s=30, interval_s=0.5, what="healthy account sent")
        await asyncio.sleep(1.5)  # late duplicates would show up now
        failures = await provider_failures(client, stack)
        transitions = breaker_log(stack, bad.account_id)
        good_state = await breaker_state(client, stack, good.account_id)
        sender_metrics = await scrape(client, stack, "sender")
        bad_rows = await ledger(client, stack, phone_number_id=bad.phone_number_id)
        good_rows = await ledger(client, stack, phone_number_id=good.phone_number_id)
    entries = bad_rows + good_rows
    sent_ids = {e.get("biz_opaque_callback_data") for e in entries}
    times = sorted(float(e["timestamp"]) for e in good_rows)
    achieved = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    half_opens = transitions.count("half_open")
    probes_failed = transitions[1:].count("open")
    figures.sent = len(bad_ids) + len(good_ids)
    figures.processed = sum(1 for i in [*bad_ids, *good_ids] if i in sent_ids)
    figures.lost = figures.sent - figures.processed
    figures.duplicated = duplicates(entries)
    figures.notes = (
        f"breaker {'→'.join(transitions)}; provider calls refused {failures} "
        f"(= {min_volume} + {probes_failed} probes); healthy account {achieved:.1f} msg/s "
        f"of {rate_mps}"
    )
    # only the failing account's breaker moved; the other kept its rate
    assert transitions[0] == "open", transitions
    assert transitions[-1] == "closed", transitions
    assert good_state == 0
    assert not breaker_log(stack, good.account_id)
    good_retries = metric_value(
        sender_metrics, "flowchat_sender_sends_total", account=good.account_id, outcome="retry"
    )
    assert good_retries == 0
    assert achieved <= rate_mps * 1.1, "the healthy account went above its rate"
    assert achieved >= rate_mps * 0.5, "the healthy account was slowed down"
    # exactly one probe per half-open period: the circuit opened after min_volume
    # refusals, then each failed probe is one refused call and nothing else got through
    assert before_open == min_volume
    assert failures == min_volume + probes_failed, (failures, transitions)
    assert half_opens == probes_failed + 1, transitions
    assert figures.lost == 0
    assert figures.duplicated == 0


async def _is(value: Any, expected: int) -> bool:
    return bool(await value == expected)


async def _at_least(value: Any, n: int) -> bool:
    return bool(await value >= n)
