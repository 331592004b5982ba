"""State-manager status ingest: events/s from ``flowchat.status`` into PostgreSQL, with
every status change published to ``flowchat.events`` (transactional outbox), beside
the bare consume → confirmed publish → ack loop with no database, in the same run.

The queue is pre-loaded with ``messages`` x 4 events (send result, sent, delivered,
read) in campaign order (every send result, then every ``sent``, …); the service
then starts as a process and its own ``flowchat_amqp_consumed_total`` counts progress.
(Moved here from ``services/state-manager/bench``.)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
from pydantic import TypeAdapter

from bench import stats
from bench.common import RssSampler, Stack, isolated, load, say, scrape
from bench.sender import curve_rate, watch
from bench.stats import metric_sum
from flowchat_contracts import SendResult, StatusEvent, StatusUpdate, topology
from flowchat_platform.amqp import Amqp
from flowchat_state_manager import SCHEMA

T0 = datetime(2025, 6, 1, tzinfo=UTC)


def events_for(i: int, tag: str) -> list[SendResult | StatusUpdate]:
    mid, wamid = f"m{tag}{i}-{uuid.uuid4().hex[:8]}", f"wamid.{uuid.uuid4().hex}"
    base = {"tenant_id": "tnt_bench", "account_id": "acc_1"}
    out: list[SendResult | StatusUpdate] = [
        SendResult(
            **base,
            message_id=mid,
            idempotency_key=mid,
            to="15551230000",
            message_type="text",
            status="accepted",
            provider="meta",
            provider_message_id=wamid,
        )
    ]
    for n, status in enumerate(("sent", "delivered", "read"), 1):
        out.append(
            StatusUpdate(
                **base,
                provider="meta",
                provider_message_id=wamid,
                status=status,
                timestamp=T0 + timedelta(seconds=n),
            )
        )
    return out


def make_events(messages: int, tag: str) -> list[SendResult | StatusUpdate]:
    """``messages`` x (send result, sent, delivered, read), in waves as a campaign."""
    per_message = [events_for(i, tag) for i in range(messages)]
    return [m[k] for k in range(4) for m in per_message]


async def preload(amqp_url: str, messages: int, tag: str) -> int:
    pub = Amqp(amqp_url, service="bench")
    await pub.connect()
    try:
        ordered = make_events(messages, tag)
        for start in range(0, len(ordered), 500):
            await pub.publish_many(
                (
                    topology.EXCHANGE_STATUS,
                    topology.status_routing_key(e.tenant_id, e.account_id, e.kind),
                    e,
                )
                for e in ordered[start : start + 500]
            )
    finally:
        await pub.close(grace_s=0)
    return len(ordered)


async def run_service(
    stack: Stack, total: int, messages: int, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """The service started on the preloaded queue (``env`` over the stack's: another
    database, say) until every event is acked and the outbox is empty."""
    proc = await stack.start("state-manager", env=env)
    async with aiohttp.ClientSession() as http:

        async def acked() -> int:
            text = await scrape(http, proc.url)
            return int(
                metric_sum(
                    text,
                    "flowchat_amqp_consumed_total",
                    queue=topology.QUEUE_STATE_STATUS,
                    fate="ack",
                )
            )

        with RssSampler([proc]) as rss:
            curve = await watch(acked, total, timeout_s=600)
        db = await asyncpg.connect({**stack.env, **(env or {})}["DATABASE_URL"])
        try:
            deadline = time.perf_counter() + 120
            while time.perf_counter() < deadline:
                backlog = await db.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox")  # noqa: S608
                read = await db.fetchval(
                    f"SELECT count(*) FROM {SCHEMA}.messages WHERE status = 'read'"  # noqa: S608
                )
                if backlog == 0:
                    break
                await asyncio.sleep(0.1)
        finally:
            await db.close()
        outbox_done_s = time.perf_counter() - curve[0][0]
    await stack.stop(proc)
    return {
        "rate": curve_rate(curve, total),
        "acked": curve[-1][1],
        "all_acked_s": round(curve[-1][0] - curve[0][0], 2),
        "outbox_empty_s": round(outbox_done_s, 2),
        "messages_read": read,
        "messages_expected": messages,
        "rss_peak_mb": rss.peak["state-manager"],
    }


async def bare_loop(amqp_url: str, total: int, prefetch: int = 64) -> float:
    """consume ``state-manager.status`` → publish to ``flowchat.events`` → ack."""
    svc = Amqp(amqp_url, service="bench-bare")
    await svc.connect()
    done = asyncio.Event()
    times: list[float] = []

    async def handle(event: object, message: object) -> None:
        await svc.publish(
            topology.EXCHANGE_EVENTS, "t.a.read", b'{"x":1}', message_id="e", mandatory=False
        )
        times.append(time.perf_counter())
        if len(times) >= total:
            done.set()

    try:
        await svc.consume(
            topology.QUEUE_STATE_STATUS,
            handle,
            decoder=TypeAdapter(StatusEvent),
            prefetch=prefetch,
        )
        await asyncio.wait_for(done.wait(), timeout=600)
    finally:
        await svc.close(grace_s=1)
    return stats.steady_rate(times)


async def ingest(quick: bool) -> dict[str, Any]:
    messages = 400 if quick else 2500
    rounds = 1 if quick else 3
    service_rates, bare_rates, runs, loads = [], [], [], []
    async with isolated("state") as stack:
        amqp_url = stack.env["AMQP_URL"]
        for r in range(rounds):
            total = await preload(amqp_url, messages, f"s{r}")
            s = await run_service(stack, total, messages)
            await preload(amqp_url, messages, f"b{r}")
            b = await bare_loop(amqp_url, total)
            service_rates.append(s["rate"])
            bare_rates.append(b)
            runs.append(s)
            loads.append(load())
            say(
                f"state-manager round {r + 1}/{rounds}: {s['rate']:,.0f} events/s "
                f"(outbox empty after {s['outbox_empty_s']} s), bare loop {b:,.0f} events/s"
            )
    svc, bare = stats.median(service_rates), stats.median(bare_rates)
    return {
        "messages_per_run": messages,
        "events_per_run": messages * 4,
        "rounds": rounds,
        "service_events_per_s": round(svc),
        "bare_events_per_s": round(bare),
        "ratio": stats.ratio(svc, bare),
        "service_rounds": [round(x) for x in service_rates],
        "bare_rounds": [round(x) for x in bare_rates],
        "rss_peak_mb": max(r["rss_peak_mb"] for r in runs),
        "runs": runs,
        "load_avg": loads,
    }
