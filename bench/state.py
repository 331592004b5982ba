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
import contextlib
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import psutil
from pydantic import TypeAdapter

from bench import stats
from bench.common import RssSampler, Stack, cpu_seconds, isolated, load, say, scrape
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


# ------------------------------------------------------------ cost per event

#: What :func:`cost` compares (the service's environment over the stack's): one
#: transaction per event (``max_batch`` 1, the state-manager before batching), the
#: batches as configured by default, and the batches with a linger under load.
COST_CONFIGS: dict[str, dict[str, str]] = {
    "per_event": {"FLOWCHAT_STATE_MANAGER_MAX_BATCH": "1"},
    "batched": {"FLOWCHAT_STATE_MANAGER_BATCH_LINGER_MS": "0"},
    "batched_linger": {"FLOWCHAT_STATE_MANAGER_BATCH_LINGER_MS": "5"},
}
#: PostgreSQL flushes a backend's transaction counts when it has been idle this long
#: at most (PGSTAT_IDLE_INTERVAL): the service idles so long before a run starts.
PG_STATS_IDLE_S = 11.0


class BackendCpu:
    """CPU seconds (``/proc/<pid>/stat``, through psutil) of the PostgreSQL backends of
    one database and ``application_name``, sampled in the background: a backend seen
    first after :meth:`start` counts from zero, one gone counts up to its last sample."""

    def __init__(self, admin: asyncpg.Connection, database: str, application: str) -> None:
        self._admin = admin
        self._database = database
        self._application = application
        self._base: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._started = False
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        pids = await self._admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
            self._database,
            self._application,
        )
        for r in pids:
            pid = r["pid"]
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            seconds = float(t.user + t.system)
            if pid not in self._base:
                self._base[pid] = seconds if not self._started else 0.0
            self._last[pid] = seconds

    async def start(self) -> None:
        await self._sample()
        self._started = True
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            await self._sample()

    async def stop(self) -> float:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._sample()
        return sum(self._last[p] - self._base[p] for p in self._last)


async def _commits(admin: asyncpg.Connection, database: str) -> int:
    return int(
        await admin.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1",
            database,
        )
    )


async def paced_publish(
    amqp_url: str, events: list[SendResult | StatusUpdate], rate: float
) -> None:
    """``events`` published at ``rate`` per second (a slice every 20 ms)."""
    # a loaded machine's broker may confirm late: the run waits, it does not fail
    pub = Amqp(amqp_url, service="bench", publish_timeout_s=120)
    await pub.connect()
    try:
        t0 = time.perf_counter()
        sent = 0
        while sent < len(events):
            due = min(len(events), int((time.perf_counter() - t0) * rate) + 1)
            if due > sent:
                await pub.publish_many(
                    (
                        topology.EXCHANGE_STATUS,
                        topology.status_routing_key(e.tenant_id, e.account_id, e.kind),
                        e,
                    )
                    for e in events[sent:due]
                )
                sent = due
            await asyncio.sleep(0.02)
    finally:
        await pub.close()


async def cost_run(
    stack: Stack, admin: asyncpg.Connection, config: str, rate: float, messages: int, tag: str
) -> dict[str, Any]:
    """One service run on ``config`` fed ``messages`` x 4 events at ``rate``: CPU ms per
    event of the service and of its PostgreSQL backends, transactions per event."""
    database = stack.env["DATABASE_URL"].rsplit("/", 1)[1]
    events = make_events(messages, tag)
    # a loaded machine may take minutes to start a service
    proc = await stack.start("state-manager", env=COST_CONFIGS[config], ready_timeout_s=300)
    await asyncio.sleep(PG_STATS_IDLE_S)  # start-up work done, its counts flushed
    own = await asyncpg.connect(stack.env["DATABASE_URL"], server_settings={"search_path": SCHEMA})
    async with aiohttp.ClientSession() as http:

        async def progress() -> tuple[int, int]:
            text = await scrape(http, proc.url)
            acked = metric_sum(
                text, "flowchat_amqp_consumed_total", queue=topology.QUEUE_STATE_STATUS, fate="ack"
            )
            published = metric_sum(
                text, "flowchat_state_manager_events_published_total", outcome="confirmed"
            )
            return int(acked), int(published)

        acked0, published0 = await progress()
        text = await scrape(http, proc.url)
        batches0 = metric_sum(text, "flowchat_state_manager_batch_size_count")
        backends = BackendCpu(admin, database, f"flowchat-{SCHEMA}")
        commits0 = await _commits(admin, database)
        cpu0 = cpu_seconds(proc)
        await backends.start()
        t0 = time.perf_counter()
        try:
            publisher = asyncio.get_running_loop().create_task(
                paced_publish(stack.env["AMQP_URL"], events, rate)
            )
            deadline = t0 + 300
            drained = False
            while time.perf_counter() < deadline:
                acked, published = await progress()
                # every event acked and its outbox row (if one was written: only changes
                # somebody reads are, flowchat_state_manager.audience) published
                if acked - acked0 >= len(events):
                    drained = not await own.fetchval("SELECT count(*) FROM outbox")
                    if drained:
                        break
                await asyncio.sleep(0.1)
            await publisher
            elapsed = time.perf_counter() - t0
            service_s = cpu_seconds(proc) - cpu0
        finally:
            backend_s = await backends.stop()
        text = await scrape(http, proc.url)
        batches = metric_sum(text, "flowchat_state_manager_batch_size_count") - batches0
    await own.close()
    await stack.stop(proc)  # its backends exit and flush their counts
    await asyncio.sleep(0.5)
    commits = await _commits(admin, database) - commits0
    n = len(events)
    return {
        "config": config,
        "rate": rate,
        "events": n,
        "acked": acked - acked0,
        "published": published - published0,
        "complete": acked - acked0 >= n and drained,
        "seconds": round(elapsed, 2),
        "service_cpu_ms_per_event": round(service_s * 1000 / n, 3),
        "postgres_cpu_ms_per_event": round(backend_s * 1000 / n, 3),
        "cpu_ms_per_event": round((service_s + backend_s) * 1000 / n, 3),
        "transactions_per_event": round(commits / n, 3),
        "events_per_write_transaction": round(n / batches, 2) if batches else None,
    }


async def cost(quick: bool) -> dict[str, Any]:
    """CPU per event and transactions per event of the state-manager at steady rates,
    per configuration (:data:`COST_CONFIGS`), in interleaved rounds; medians."""
    # FLOWCHAT_BENCH_STATE_COST_RATES: other steady rates (events/s, comma-separated)
    default = "200" if quick else "400"
    rates = [
        float(r) for r in os.environ.get("FLOWCHAT_BENCH_STATE_COST_RATES", default).split(",")
    ]
    rounds = 1 if quick else 3
    messages = 150 if quick else 600
    runs: list[dict[str, Any]] = []
    async with isolated("state-cost") as stack:
        admin = await asyncpg.connect(stack.env["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres")
        try:
            for r in range(rounds):
                for rate in rates:
                    for config in COST_CONFIGS:
                        run = await cost_run(
                            stack, admin, config, rate, messages, f"c{r}{config[:3]}{int(rate)}"
                        )
                        run["round"] = r
                        run["load_avg"] = load()
                        runs.append(run)
                        say(
                            f"state cost {config} at {rate:.0f}/s: service "
                            f"{run['service_cpu_ms_per_event']} + postgres "
                            f"{run['postgres_cpu_ms_per_event']} ms/event, "
                            f"{run['transactions_per_event']} transactions/event, "
                            f"{run['events_per_write_transaction']} events/write transaction"
                        )
        finally:
            await admin.close()
    summary: dict[str, Any] = {}
    for rate in rates:
        for config in COST_CONFIGS:
            mine = [x for x in runs if x["rate"] == rate and x["config"] == config]
            summary[f"{config}@{int(rate)}"] = {
                k: stats.median([x[k] for x in mine if x[k] is not None])
                for k in (
                    "service_cpu_ms_per_event",
                    "postgres_cpu_ms_per_event",
                    "cpu_ms_per_event",
                    "transactions_per_event",
                    "events_per_write_transaction",
                )
            }
    return {
        "configs": COST_CONFIGS,
        "rates": rates,
        "rounds": rounds,
        "events_per_run": messages * 4,
        "medians": summary,
        "runs": runs,
    }
