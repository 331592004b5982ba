"""Conversation round trip and memory: the whole platform under a steady stream of
new conversations.

Customers write "Hi" through the sandbox at a fixed rate (open loop: the schedule
never waits for answers). Each message travels sandbox → signed webhook → gateway →
``flowchat.inbound`` → conversation (PostgreSQL) → ``flowchat.outbound`` → sender →
the sandbox's Cloud API. The latency is the sandbox's own clock from the customer's
message to the bot's first reply in the transcript, so no client overhead counts.
Every service's RSS is sampled meanwhile (status webhooks, state-manager included).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import aiohttp

from bench import stats
from bench.common import (
    RssSampler,
    Stack,
    _call,
    cpu_seconds,
    isolated,
    load,
    say,
    scrape,
    seed_accounts,
)
from bench.stats import metric_sum

CATALOG = [
    {
        "sku": f"SKU-{i}",
        "name": f"Product {i}",
        "description": "A bench product",
        "price": "9.50",
        "currency": "USD",
        "category": "Building" if i % 2 else "Hardware",
        "stock": 10_000,
    }
    for i in range(8)
]
SERVICES = ("sandbox", "tenant", "state-manager", "sender", "conversation", "gateway")


async def _first_reply_ms(http: aiohttp.ClientSession, sandbox: str, wa: str) -> float | None:
    async with http.get(f"{sandbox}/sandbox/conversations/{wa}") as r:
        items = await r.json()
    inbound = next((i for i in items if i["direction"] == "inbound"), None)
    reply = next((i for i in items if i["direction"] == "outbound"), None)
    if inbound is None or reply is None:
        return None
    delta = datetime.fromisoformat(reply["time"]) - datetime.fromisoformat(inbound["time"])
    return delta.total_seconds() * 1000


async def _seed_shop(http: aiohttp.ClientSession, stack: Stack, tenant_id: str) -> None:
    """An admin API key, the shop's settings and a small catalog (as ``make demo``)."""
    operator = {"Authorization": f"Bearer {stack.env['FLOWCHAT_OPERATOR_KEY']}"}
    key = await _call(
        http,
        "POST",
        f"{stack.url('tenant')}/v1/tenants/{tenant_id}/api-keys",
        headers=operator,
        json={"name": "bench", "scopes": ["send", "read", "admin"]},
    )
    admin = {"Authorization": f"Bearer {key['key']}"}
    conversation = stack.url("conversation")
    await _call(
        http,
        "PUT",
        f"{conversation}/v1/tenants/{tenant_id}/settings",
        headers=admin,
        json={"business_name": "Bench Hardware", "currency": "USD", "tax_rate": "0"},
    )
    await _call(
        http,
        "POST",
        f"{conversation}/v1/tenants/{tenant_id}/products",
        headers=admin,
        json=CATALOG,
    )


async def roundtrip(quick: bool) -> dict[str, Any]:
    """At 100 conversations/s (the target), and at 10/s as the unloaded reference."""
    full = await _roundtrip(100, 3 if quick else 15, "target")
    if not quick:
        light = await _roundtrip(10, 6, "light")
        keep = ("latency_ms", "no_reply", "cpu_seconds", "histogram_ms")
        full["at_10_per_s"] = {k: light[k] for k in keep}
    return full


async def _roundtrip(rate: int, seconds: int, tag: str) -> dict[str, Any]:
    n = rate * seconds
    async with isolated(f"roundtrip-{tag}") as stack:
        for name in SERVICES:
            await stack.start(name)
        sandbox, gateway = stack.url("sandbox"), stack.url("gateway")
        (account,) = await seed_accounts(
            stack, 1, throughput_mps=1000, webhook_url=f"{gateway}/webhooks/meta"
        )
        async with aiohttp.ClientSession() as http:
            await _seed_shop(http, stack, account.tenant_id)
            # One warm-up conversation: caches, pools and connections, as in steady use.
            await _call(
                http,
                "POST",
                f"{sandbox}/sandbox/customers/2340000000001/messages",
                json={"phone_number_id": account.phone_number_id, "text": "Hi"},
            )
            await asyncio.sleep(1.0)
            customers = [f"2347{rate:03d}{i:06d}" for i in range(n)]
            failures = 0
            late: list[float] = []

            async def write(wa: str) -> None:
                nonlocal failures
                try:
                    async with http.post(
                        f"{sandbox}/sandbox/customers/{wa}/messages",
                        json={"phone_number_id": account.phone_number_id, "text": "Hi"},
                    ) as r:
                        await r.read()
                        if r.status >= 300:
                            failures += 1
                except aiohttp.ClientError:
                    failures += 1

            tasks = []
            procs = [stack.get(s) for s in SERVICES]
            cpu0 = {p.name: cpu_seconds(p) for p in procs}
            with RssSampler(procs) as rss:
                started = time.perf_counter()
                for i, wa in enumerate(customers):
                    delay = started + i / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    else:
                        late.append(-delay)
                    tasks.append(asyncio.create_task(write(wa)))
                offered_s = time.perf_counter() - started
                await asyncio.gather(*tasks)
                # Let the replies and their status webhooks land before reading.
                deadline = time.perf_counter() + 60
                latencies: list[float] = []
                missing = customers
                while missing and time.perf_counter() < deadline:
                    await asyncio.sleep(0.5)
                    found = await asyncio.gather(
                        *(_first_reply_ms(http, sandbox, wa) for wa in missing)
                    )
                    latencies += [x for x in found if x is not None]
                    missing = [wa for wa, x in zip(missing, found, strict=True) if x is None]
            cpu = {p.name: round(cpu_seconds(p) - cpu0[p.name], 2) for p in procs}
            sandbox_metrics = await scrape(http, sandbox)
    summary = stats.summary(latencies) if latencies else {}
    out = {
        "offered_per_s": round(n / offered_s, 1),
        "conversations": n,
        "replied": len(latencies),
        "no_reply": len(missing),
        "write_failures": failures,
        "latency_ms": summary,
        "histogram_ms": sorted(round(x, 2) for x in latencies),
        "rss_peak_mb": rss.peak,
        "cpu_seconds": cpu,
        "sandbox_130429": metric_sum(
            sandbox_metrics, "flowchat_sandbox_sends_total", outcome="130429"
        ),
        "load_avg": load(),
        "targets": {"p95_ms": 50, "rss_mb": 150},
    }
    out["pass"] = bool(summary and summary["p95"] <= 50 and not missing and not failures)
    say(
        f"round trip at {out['offered_per_s']} conv/s: p50 {summary.get('p50')} ms, "
        f"p95 {summary.get('p95')} ms, p99 {summary.get('p99')} ms; "
        f"{len(missing)} without a reply; RSS {rss.peak}; CPU s {cpu}"
    )
    return out
