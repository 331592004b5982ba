"""Cost per conversation turn, and the knee: what one customer's "Hi" costs the whole
platform, and the highest rate whose round trip stays within its target.

A turn is the round-trip scenario's (:mod:`bench.roundtrip`): a customer writes "Hi"
through the sandbox, the gateway takes the signed webhook, the conversation service
answers, the sender sends, and every status webhook, send result and event it causes
follows. Each step of the search offers new conversations at a fixed rate (open loop)
for a few seconds, then waits until the platform has *settled*: every reply in the
transcripts, every known queue of the vhost empty, and the counters below unchanged
over two polls (so the status webhooks the sandbox sends after the replies are counted,
which the round-trip scenario's CPU figures were read before).

Then, divided by the turns:

- CPU ms of every process (``/proc/<pid>/stat`` utime + stime, through psutil): each
  service with its children, RabbitMQ's ``beam.smp``, the PostgreSQL backends connected
  to the run's database (sampled while they live: a backend that leaves early keeps its
  last reading), and ``redis-server``. Not the sandbox (it plays Meta and the customers)
  nor this load driver. RabbitMQ and Redis are the machine's shared servers: their CPU
  includes whatever else runs on the machine meanwhile (``shared`` in the results; found
  by the port of the run's AMQP and Redis URLs, not by name: fault suites run brokers of
  their own), so the figures that are this run's own are the services' and PostgreSQL's.
  The sandbox's and this load driver's CPU per turn are reported beside them
  (``cpu_ms_outside``), not counted: what the whole machine spends on a turn;
- broker messages: published (confirmed) and consumed, from every service's
  ``flowchat_amqp_published_total`` / ``flowchat_amqp_consumed_total``;
- PostgreSQL commits: the run database's ``pg_stat_database.xact_commit`` delta (also
  the services' pools' reset queries and the bench's own polling, a few per step);
- webhooks: the sandbox's delivery attempts (``flowchat_sandbox_webhook_attempts_total``;
  a retried delivery counts each time: its CPU is spent each time).

The knee search steps the rate up (:data:`STEPS`) and stops at the first step whose
p95 round trip exceeds :data:`P95_TARGET_MS` or that leaves a customer without a reply;
the knee is the last step within the target. Then the :data:`TARGET_RATE` step runs too
if the search stopped before it (its p95 is stated beside the knee). The budget is
reported at 10/s and at the knee. ``bench.turn_ab`` runs :func:`measure` at fixed rates
(no search) against other revisions' services, interleaved.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aiohttp
import asyncpg
import psutil

from bench import stats
from bench.common import Stack, _call, isolated, load, say, scrape, seed_accounts
from bench.roundtrip import SERVICES, _first_reply_ms, _seed_shop
from bench.stats import metric_sum
from flowchat_contracts import topology

P95_TARGET_MS = 50
#: Rates (conversations/s) of the knee search, in order; the first is the light reference.
STEPS = (10, 15, 20, 30, 40, 60, 80, 100)
QUICK_STEPS = (10, 20, 40)
#: The round trip's target rate: measured after the search whatever the knee.
TARGET_RATE = 100
#: Shared servers: their CPU is the machine's, not this run's alone.
SHARED = ("rabbitmq", "redis")
#: Measured beside the platform, not counted in its figures: Meta and the customers, and
#: this process (the load driver: offering, polling transcripts, queues and counters).
OUTSIDE = ("sandbox", "load_driver")
SETTLE_TIMEOUT_S = 180.0
#: The sandbox's counter of sends (the bot's replies), by outcome.
REPLIES = "flowchat_sandbox_sends_total"
#: Seconds of nothing offered, before the first step: each process's idle CPU.
IDLE_S = 3.0


def _cpu_s(proc: psutil.Process, *, children: bool = False) -> float:
    total = 0.0
    procs = [proc]
    with contextlib.suppress(psutil.Error):
        if children:
            procs += proc.children(recursive=True)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _listening_on(url: str) -> list[psutil.Process]:
    """The process listening on ``url``'s port on this machine: the shared broker's
    ``beam.smp`` or ``redis-server``, not the other brokers a fault suite may run."""
    port = urlsplit(url).port
    pids = {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
    }
    return [psutil.Process(pid) for pid in sorted(pids)]


@dataclass
class CpuMeter:
    """CPU seconds of the platform's processes since :meth:`start`, PostgreSQL's backends
    of one database followed as they come and go (:meth:`sample` while the step runs)."""

    services: dict[str, psutil.Process]
    shared: dict[str, list[psutil.Process]]
    pg: asyncpg.Connection
    #: Measured, not counted in the platform's figures: the sandbox and the load driver.
    outside: dict[str, psutil.Process] = field(default_factory=dict)
    base: dict[str, float] = field(default_factory=dict)
    backends0: dict[int, float] = field(default_factory=dict)
    backends: dict[int, float] = field(default_factory=dict)
    started: float = 0.0

    async def _backend_pids(self) -> list[int]:
        rows = await self.pg.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        return [r["pid"] for r in rows]

    def _now(self) -> dict[str, float]:
        out = {n: _cpu_s(p, children=True) for n, p in self.services.items()}
        out |= {n: sum(_cpu_s(p) for p in ps) for n, ps in self.shared.items()}
        # without children: the services are the load driver's children
        out |= {n: _cpu_s(p) for n, p in self.outside.items()}
        return out

    async def start(self) -> None:
        self.started = time.perf_counter()
        self.base = self._now()
        self.backends0, self.backends = {}, {}
        for pid in await self._backend_pids():
            with contextlib.suppress(psutil.Error):
                self.backends0[pid] = self.backends[pid] = _cpu_s(psutil.Process(pid))

    async def sample(self) -> None:
        for pid in await self._backend_pids():
            with contextlib.suppress(psutil.Error):
                self.backends[pid] = _cpu_s(psutil.Process(pid))
                self.backends0.setdefault(pid, 0.0)  # born during the step: all of it counts

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    async def read(self) -> dict[str, float]:
        await self.sample()
        now = self._now()
        out = {n: now[n] - self.base[n] for n in now}
        out["postgresql"] = sum(v - self.backends0[pid] for pid, v in self.backends.items())
        return out


class Queues:
    """Ready messages in every topology queue of the vhost (passive declares; a queue
    this stack never declared is skipped)."""

    def __init__(self, conn: aio_pika.abc.AbstractConnection) -> None:
        self.conn = conn
        self.names = [q.name for q in topology.ALL_QUEUES] + list(
            topology.CONVERSATION_PARTITION_QUEUES
        )
        self.absent: set[str] = set()

    async def depth(self) -> int:
        total = 0
        channel = await self.conn.channel()
        try:
            for name in self.names:
                if name in self.absent:
                    continue
                try:
                    q = await channel.declare_queue(name, passive=True)
                except aio_pika.exceptions.ChannelClosed:
                    self.absent.add(name)
                    channel = await self.conn.channel()
                    continue
                total += int(q.declaration_result.message_count or 0)
        finally:
            with contextlib.suppress(Exception):
                await channel.close()
        return total


async def _counters(
    http: aiohttp.ClientSession, stack: Stack, pg: asyncpg.Connection
) -> dict[str, float]:
    published = consumed = 0.0
    for name in SERVICES:
        if name == "sandbox":
            continue
        text = await scrape(http, stack.url(name))
        published += metric_sum(text, "flowchat_amqp_published_total", outcome="confirmed")
        consumed += metric_sum(text, "flowchat_amqp_consumed_total")
    sandbox = await scrape(http, stack.url("sandbox"))
    commits = await pg.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    )
    return {
        "replies": metric_sum(sandbox, REPLIES, outcome="accepted"),
        "broker_published": published,
        "broker_consumed": consumed,
        "webhooks": metric_sum(sandbox, "flowchat_sandbox_webhook_attempts_total"),
        "pg_commits": float(commits),
    }


def _per_turn(
    cpu: dict[str, float],
    counts: dict[str, float],
    turns: int,
    *,
    idle_per_s: dict[str, float],
    seconds: float,
) -> dict[str, Any]:
    """Per turn: CPU ms of each process (``cpu_ms``: all of the step, settling included),
    the same less what the process spends idle over as long (``cpu_ms_net_of_idle``), and
    the counters. The processes in :data:`OUTSIDE` go to ``cpu_ms_outside`` (shown, not
    counted)."""
    ms = {k: round(v * 1000 / turns, 2) for k, v in sorted(cpu.items()) if k not in OUTSIDE}
    net = {
        k: round((v - idle_per_s.get(k, 0.0) * seconds) * 1000 / turns, 2)
        for k, v in sorted(cpu.items())
        if k not in OUTSIDE
    }
    outside = {k: round(cpu[k] * 1000 / turns, 2) for k in OUTSIDE if k in cpu}
    return {
        "cpu_ms_outside": outside,
        "cpu_ms": ms,
        "cpu_ms_total": round(sum(ms.values()), 2),
        "cpu_ms_own": round(sum(v for k, v in ms.items() if k not in SHARED), 2),
        "cpu_ms_net_of_idle": net,
        "cpu_ms_own_net_of_idle": round(sum(v for k, v in net.items() if k not in SHARED), 2),
        **{k: round(v / turns, 2) for k, v in counts.items()},
    }


@dataclass
class Run:
    """One stack under test and the instruments of the search's steps."""

    http: aiohttp.ClientSession
    stack: Stack
    meter: CpuMeter
    queues: Queues
    pg: asyncpg.Connection
    phone_number_id: str
    idle_per_s: dict[str, float] = field(default_factory=dict)

    async def _offer(self, customers: list[str], rate: int) -> tuple[float, int]:
        """Each customer's "Hi" on schedule (open loop): the seconds it took, the failures."""
        sandbox = self.stack.url("sandbox")
        failures = 0

        async def write(wa: str) -> None:
            nonlocal failures
            try:
                async with self.http.post(
                    f"{sandbox}/sandbox/customers/{wa}/messages",
                    json={"phone_number_id": self.phone_number_id, "text": "Hi"},
                ) as r:
                    await r.read()
                    failures += r.status >= 300
            except aiohttp.ClientError:
                failures += 1

        tasks = []
        started = time.perf_counter()
        for i, wa in enumerate(customers):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(write(wa)))
            if i % max(1, rate) == 0:
                await self.meter.sample()
        offered_s = time.perf_counter() - started
        await asyncio.gather(*tasks)
        return offered_s, failures

    async def replies(self) -> float:
        """Sends the sandbox accepted so far (one scrape of its /metrics)."""
        text = await scrape(self.http, self.stack.url("sandbox"))
        return metric_sum(text, REPLIES, outcome="accepted")

    async def _settle(
        self, customers: list[str], replies_due: float | None = None
    ) -> tuple[list[float], list[str], bool]:
        """Every reply there, every queue empty and the counters still twice in a row:
        the latencies, the customers still without a reply, whether it settled.

        The transcripts are read once the sandbox has accepted ``replies_due`` sends (its
        counter, one scrape a poll), not every customer's each poll while the platform
        still works: a transcript read costs the sandbox about 0.9 ms of CPU on the same
        2 cores, and hundreds of them every 0.3 s slowed the very turns being timed. The
        latencies are the sandbox's own clock either way."""
        sandbox = self.stack.url("sandbox")
        latencies: list[float] = []
        missing = customers
        last: dict[str, float] | None = None
        still = 0
        deadline = time.perf_counter() + SETTLE_TIMEOUT_S
        while still < 2 and time.perf_counter() < deadline:
            await asyncio.sleep(0.3)
            await self.meter.sample()
            if missing:
                if replies_due is not None and await self.replies() < replies_due:
                    continue
                replies_due = None  # then per customer (one turn may have had two replies)
                found = await asyncio.gather(
                    *(_first_reply_ms(self.http, sandbox, wa) for wa in missing)
                )
                latencies += [x for x in found if x is not None]
                missing = [wa for wa, x in zip(missing, found, strict=True) if x is None]
                if missing:
                    continue
            # commits are not waited for: idle services commit now and then (the campaign
            # runner's slow tick, pools' health checks)
            counts = await _counters(self.http, self.stack, self.pg)
            now = {k: v for k, v in counts.items() if k != "pg_commits"}
            still = still + 1 if now == last and await self.queues.depth() == 0 else 0
            last = now
        return latencies, missing, still >= 2

    async def step(self, rate: int, seconds: float) -> dict[str, Any]:
        n = max(1, round(rate * seconds))
        customers = [f"2348{rate:03d}{i:06d}" for i in range(n)]
        before = await _counters(self.http, self.stack, self.pg)
        await self.meter.start()
        offered_s, failures = await self._offer(customers, rate)
        latencies, missing, settled = await self._settle(
            customers, before["replies"] + n - failures
        )
        cpu, elapsed = await self.meter.read(), self.meter.elapsed()
        after = await _counters(self.http, self.stack, self.pg)
        counts = {k: after[k] - before[k] for k in after}
        summary = stats.summary(latencies) if latencies else {}
        pt = _per_turn(cpu, counts, n, idle_per_s=self.idle_per_s, seconds=elapsed)
        out = {
            "rate_per_s": rate,
            "offered_per_s": round(n / offered_s, 1) if offered_s else float(rate),
            "turns": n,
            "no_reply": len(missing),
            "write_failures": failures,
            "settled": settled,
            "latency_ms": summary,
            "seconds": round(elapsed, 1),
            "per_turn": pt,
            "load_avg": load(),
        }
        out["within_target"] = bool(
            summary and summary["p95"] <= P95_TARGET_MS and not missing and not failures
        )
        say(
            f"turn cost at {rate}/s ({n} turns): p95 {summary.get('p95')} ms, "
            f"{len(missing)} without a reply; CPU ms/turn {pt['cpu_ms_total']} "
            f"(own {pt['cpu_ms_own']}, own net of idle {pt['cpu_ms_own_net_of_idle']}) "
            f"{pt['cpu_ms']}; broker {pt['broker_published']} published "
            f"{pt['broker_consumed']} consumed; {pt['pg_commits']} commits; "
            f"{pt['webhooks']} webhooks; settled {settled}; not counted: "
            f"{pt['cpu_ms_outside']}; load {out['load_avg']}"
        )
        return out


def knee(steps: Iterable[dict[str, Any]]) -> int | None:
    """The last rate within the target before the first step that is not."""
    best = None
    for s in steps:
        if not s["within_target"]:
            break
        best = s["rate_per_s"]
    return best


async def turn_cost(quick: bool) -> dict[str, Any]:
    """The knee search and the budget: 3 s steps with ``quick``, 10 s otherwise."""
    return await measure(QUICK_STEPS if quick else STEPS, 3.0 if quick else 10.0)


@contextlib.asynccontextmanager
async def running(root: Path | None = None) -> AsyncIterator[Run]:
    """One isolated stack (``root``: another checkout's services), its account and shop
    seeded and warmed up, and the instruments of a step (:class:`Run`)."""
    async with isolated("turn-cost", log_level="WARNING", root=root) as stack:
        for name in SERVICES:
            await stack.start(name)
        gateway = stack.url("gateway")
        (account,) = await seed_accounts(
            stack, 1, throughput_mps=1000, webhook_url=f"{gateway}/webhooks/meta"
        )
        pg = await asyncpg.connect(stack.env["DATABASE_URL"])
        amqp = await aio_pika.connect(stack.env["AMQP_URL"])
        try:
            async with aiohttp.ClientSession() as http:
                await _seed_shop(http, stack, account.tenant_id)
                # Warm-up conversations: caches, pools and connections, as in steady use.
                for i in range(3):
                    await _call(
                        http,
                        "POST",
                        f"{stack.url('sandbox')}/sandbox/customers/234000000000{i}/messages",
                        json={"phone_number_id": account.phone_number_id, "text": "Hi"},
                    )
                await asyncio.sleep(2.0)
                meter = CpuMeter(
                    services={
                        p.name: psutil.Process(p.pid) for p in stack.procs if p.name != "sandbox"
                    },
                    outside={
                        "sandbox": psutil.Process(stack.get("sandbox").pid),
                        "load_driver": psutil.Process(),
                    },
                    shared={
                        "rabbitmq": _listening_on(stack.env["AMQP_URL"]),
                        "redis": _listening_on(stack.env["REDIS_URL"]),
                    },
                    pg=pg,
                )
                yield Run(http, stack, meter, Queues(amqp), pg, account.phone_number_id)
        finally:
            await amqp.close()
            await pg.close()


async def measure(
    rates: Iterable[int],
    seconds: float,
    *,
    search: bool = True,
    also: Iterable[int] = (TARGET_RATE,),
    root: Path | None = None,
) -> dict[str, Any]:
    """One stack; each rate in turn for ``seconds``. With ``search``, until one misses
    the target, then each rate of ``also`` not run yet; without, every rate of ``rates``
    (``also`` ignored). ``root``: another checkout whose services to run
    (:func:`bench.common.isolated`)."""
    rates = tuple(rates)
    async with running(root) as run:
        meter = run.meter
        # What each process costs idle, per second (over IDLE_S, nothing offered).
        await meter.start()
        await asyncio.sleep(IDLE_S)
        run.idle_per_s = {k: v / meter.elapsed() for k, v in (await meter.read()).items()}
        idle_ms = {k: round(v * 1000, 2) for k, v in run.idle_per_s.items()}
        say(f"turn cost: idle CPU ms/s {idle_ms}")
        done: list[dict[str, Any]] = []
        for rate in rates:
            done.append(await run.step(rate, seconds))
            if search and not done[-1]["within_target"]:
                break
        # after the search: the target rate's p95 even past the knee (kept apart from
        # ``steps``: the knee is read from the search's steps alone)
        extra = [
            await run.step(rate, seconds)
            for rate in (also if search else ())
            if rate not in {s["rate_per_s"] for s in done}
        ]
    k = knee(done)
    at_knee = next((s for s in done if s["rate_per_s"] == k), None)
    at_target = next((s for s in [*done, *extra] if s["rate_per_s"] == TARGET_RATE), None)
    out: dict[str, Any] = {
        "steps": done,
        "after_search": extra,
        "at_100_per_s": at_target,
        "idle_cpu_ms_per_s": idle_ms,
        "knee_per_s": k,
        "seconds_per_step": seconds,
        "at_10_per_s": done[0] if done[0]["rate_per_s"] == 10 else None,
        "at_knee": at_knee,
        "shared_servers": list(SHARED),
        "targets": {"p95_ms": P95_TARGET_MS, "cpu_ms_per_turn": 25, "knee_per_s": 60},
        "load_avg": load(),
    }
    out["pass"] = bool(
        k is not None
        and k >= 60
        and at_knee is not None
        and at_knee["per_turn"]["cpu_ms_total"] <= 25
    )
    p95_target = ((at_target or {}).get("latency_ms") or {}).get("p95")
    if search:
        say(
            f"turn cost: knee {k}/s (p95 <= {P95_TARGET_MS} ms, steps {list(rates)}); "
            f"p95 at {TARGET_RATE}/s: {p95_target} ms"
        )
    return out
