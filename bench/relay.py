"""Relay benchmarks: deliveries per second per relay process, and the isolation of
healthy endpoints from a black-holed and a failing one.

The relay runs as its own process (``python -m flowchat_relay``) against an isolated
vhost and database; the receivers run in another process (``python -m bench.relay
receive``): aiohttp on loopback answering 204 (healthy, arrivals recorded), 500
(failing), and a bare TCP listener that accepts and never answers (black-holed).

- **throughput**: ``endpoints`` healthy endpoints are registered through the API, the
  relay is stopped, ``events`` x ``endpoints`` pending deliveries are written into its
  store, and the relay started again: the rate at which the receivers get them (steady
  middle of the run) is the deliveries per second of the one process. Beside it, the
  end-to-end rate with the events published to the broker (intake and delivery in the
  same process).
- **isolation**: status events published at a steady ``rate`` to healthy endpoints;
  each delivery's latency is its arrival at the receiver minus its publication. The p95
  of the healthy endpoints alone, then with a black-holed and a failing (500) endpoint of
  the same tenant subscribed to the same events (target ≤ 1.2x).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from bench import stats
from bench.common import ROOT, Proc, RssSampler, Stack, cpu_seconds, isolated, load, say, wait_ready
from flowchat_contracts import topology
from flowchat_platform.amqp import Amqp
from flowchat_platform.crypto import SecretBox
from flowchat_platform.testing import free_port
from flowchat_relay import SCHEMA

TENANT = "tnt_bench"
ACCOUNT = "acc_bench"
RELAY_ENV = {
    "FLOWCHAT_RELAY_ALLOW_PRIVATE_TARGETS": "true",
    # retries, timeouts and concurrency as deployed (backoff from 5 s, 15 s timeout, 4
    # lanes an endpoint): the black hole holds its 4 lanes for the whole phase
    "FLOWCHAT_RELAY_GAUGE_INTERVAL_S": "5",
    "FLOWCHAT_TENANT_URL": "http://127.0.0.1:9",
    "LOG_LEVEL": "WARNING",
}
#: How the relay process is started (a profiler may wrap it: ``-m cProfile -o …``).
RELAY_COMMAND = [sys.executable, "-m", "flowchat_relay"]
TARGET_PER_S = 2000
TARGET_RATIO = 1.2


# ----------------------------------------------------------------- the receivers


def receiver_app(arrivals: list[tuple[str, float]]) -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        arrivals.append(
            (f"{request.match_info['n']}/{request.headers.get('webhook-id')}", time.time())
        )
        return web.Response(status=204)

    async def fail(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=500, text="no")

    async def count(_: web.Request) -> web.Response:
        return web.json_response({"count": len(arrivals)})

    async def take(_: web.Request) -> web.Response:
        out = list(arrivals)
        arrivals.clear()
        return web.Response(body=orjson.dumps(out), content_type="application/json")

    app = web.Application()
    app.router.add_post("/ok/{n}", ok)
    app.router.add_post("/fail", fail)
    app.router.add_get("/count", count)
    app.router.add_post("/take", take)
    return app


async def receive(port: int, hole_port: int) -> None:
    """The receivers' process: aiohttp on ``port``, the black hole on ``hole_port``."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accepted, never read, never answered

    hole = await asyncio.start_server(swallow, "127.0.0.1", hole_port)
    runner = web.AppRunner(receiver_app([]), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with hole:
        await asyncio.Event().wait()


@contextlib.asynccontextmanager
async def receivers() -> AsyncIterator[tuple[str, str]]:
    """The receivers' process; (its base URL, the black hole's URL)."""
    port, hole_port = free_port(), free_port()
    popen = subprocess.Popen(  # noqa: S603, ASYNC220 - our own interpreter and module
        [sys.executable, "-m", "bench.relay", "receive", str(port), str(hole_port)],
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(base + "/count") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.1)
        yield base, f"http://127.0.0.1:{hole_port}/hook"
    finally:
        popen.terminate()
        popen.wait(timeout=10)


# ----------------------------------------------------------------- the relay


async def start_relay(stack: Stack) -> Proc:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = stack.tmp / "relay.log"
    env = {**stack.env, **RELAY_ENV, "FLOWCHAT_RELAY_HTTP_PORT": str(port)}
    with open(log, "ab") as out:  # noqa: ASYNC230 - once, at start-up
        popen = subprocess.Popen(  # noqa: S603, ASYNC220 - our own interpreter and module
            RELAY_COMMAND,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    proc = Proc("relay", url, popen, log)
    stack.procs.append(proc)
    await wait_ready(proc)
    return proc


async def register(http: aiohttp.ClientSession, stack: Stack, relay: Proc, url: str) -> str:
    headers = {
        "Authorization": f"Bearer {stack.env['FLOWCHAT_SERVICE_TOKEN']}",
        "X-Tenant-ID": TENANT,
    }
    body = {"url": url, "event_types": ["message.status"], "format": "flowchat"}
    async with http.post(relay.url + "/v1/endpoints", json=body, headers=headers) as r:
        data = await r.json()
        if r.status != 201:
            raise RuntimeError(f"endpoint not registered: {r.status} {data}")
        return str(data["id"])


def status_body(i: int, tag: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "schema_version": 1,
        "kind": "message_status_changed",
        "event_id": f"{tag}-{i}-{uuid.uuid4().hex[:8]}",
        "message_id": f"msg_{tag}_{i}",
        "tenant_id": TENANT,
        "account_id": ACCOUNT,
        "status": "delivered",
        "previous_status": "sent",
        "provider": "meta",
        "provider_message_id": f"wamid.{uuid.uuid4().hex}",
        "recipient": f"1555{i % 10**7:07d}",
        "category": "utility",
        "campaign_id": None,
        "correlation_id": uuid.uuid4().hex,
        "error_code": None,
        "error_title": None,
        "timestamp": now,
        "recorded_at": now,
    }


async def preload(
    database_url: str, endpoint_ids: list[str], events: int, tag: str, box: SecretBox
) -> int:
    """``events`` stored events, each pending for every endpoint, written straight into
    the relay's store as its intake would have (bodies encrypted under ``box``, the
    relay's keyring: every attempt decrypts the body it posts)."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})
    try:
        ids = [f"evt_{tag}_{i}" for i in range(events)]
        bodies = [
            orjson.dumps(
                {
                    "id": ids[i],
                    "type": "message.status",
                    "tenant_id": TENANT,
                    "account_id": ACCOUNT,
                    "timestamp": datetime.now(UTC).isoformat(),
                    "sequence": 1,
                    "schema_version": 1,
                    "data": {"message_id": f"msg_{i}", "status": "delivered"},
                }
            )
            for i in range(events)
        ]
        await conn.execute(
            """
            INSERT INTO events (id, type, tenant_id, account_id, body_enc)
            SELECT u.id, 'message.status', $3, $4, u.body
            FROM unnest($1::text[], $2::bytea[]) AS u(id, body)
            """,
            ids,
            [box.encrypt_bytes(b) for b in bodies],
            TENANT,
            ACCOUNT,
        )
        await conn.execute(
            "INSERT INTO deliveries (event_id, endpoint_id) "
            "SELECT e, p FROM unnest($1::text[]) AS e, unnest($2::text[]) AS p",
            ids,
            endpoint_ids,
        )
    finally:
        await conn.close()
    return events * len(endpoint_ids)


async def take(http: aiohttp.ClientSession, base: str) -> list[tuple[str, float]]:
    async with http.post(base + "/take") as r:
        return [(str(a), float(b)) for a, b in orjson.loads(await r.read())]


async def wait_count(
    http: aiohttp.ClientSession, base: str, total: int, timeout_s: float
) -> list[tuple[str, float]]:
    """Every arrival once ``total`` have come (or the timeout passed)."""
    got: list[tuple[str, float]] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < total and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        got += await take(http, base)
    return got


# ----------------------------------------------------------------- scenarios


async def dispatch_rate(
    stack: Stack, http: aiohttp.ClientSession, base: str, endpoints: list[str], events: int
) -> dict[str, Any]:
    """Stored deliveries → receivers, one relay process."""
    relay = stack.get("relay")
    await stack.stop(relay)
    box = SecretBox.from_keys(stack.env["FLOWCHAT_RELAY_ENCRYPTION_KEYS"])
    total = await preload(stack.env["DATABASE_URL"], endpoints, events, uuid.uuid4().hex[:6], box)
    await take(http, base)
    relay = await start_relay(stack)
    cpu0 = cpu_seconds(relay)
    with RssSampler([relay]) as rss:
        arrivals = await wait_count(http, base, total, timeout_s=300)
    times = [t for _, t in arrivals]
    rate = stats.steady_rate(times)
    return {
        "deliveries": total,
        "received": len(arrivals),
        "unique": len({w for w, _ in arrivals}),
        "per_s": round(rate),
        "seconds": round(max(times) - min(times), 2),
        "relay_cpu_s": round(cpu_seconds(relay) - cpu0, 1),
        "relay_rss_peak_mb": rss.peak["relay"],
    }


async def end_to_end_rate(
    stack: Stack, http: aiohttp.ClientSession, base: str, endpoints: int, events: int
) -> dict[str, Any]:
    """Events published to the broker → stored → delivered to every endpoint."""
    pub = Amqp(stack.env["AMQP_URL"], service="bench")
    await pub.connect()
    tag = uuid.uuid4().hex[:6]
    await take(http, base)
    try:
        bodies = [status_body(i, tag) for i in range(events)]
        for start in range(0, events, 500):
            await asyncio.gather(
                *(
                    pub.publish(
                        topology.EXCHANGE_EVENTS,
                        topology.events_routing_key(TENANT, ACCOUNT, "delivered"),
                        orjson.dumps(b),
                        message_id=b["event_id"],
                        mandatory=False,
                    )
                    for b in bodies[start : start + 500]
                )
            )
    finally:
        await pub.close(grace_s=0)
    arrivals = await wait_count(http, base, events * endpoints, timeout_s=300)
    return {
        "events": events,
        "deliveries": events * endpoints,
        "received": len(arrivals),
        "per_s": round(stats.steady_rate([t for _, t in arrivals])),
    }


async def latency_phase(
    stack: Stack,
    http: aiohttp.ClientSession,
    base: str,
    rate: float,
    seconds: float,
    healthy: int,
) -> dict[str, Any]:
    """Status events at ``rate``/s for ``seconds``; each healthy delivery's latency."""
    pub = Amqp(stack.env["AMQP_URL"], service="bench")
    await pub.connect()
    tag = uuid.uuid4().hex[:6]
    sent: dict[str, float] = {}
    await take(http, base)
    try:
        count = int(rate * seconds)
        started = time.monotonic()
        for i in range(count):
            body = status_body(i, tag)
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent["evt_" + body["event_id"]] = time.time()  # arrivals: "<endpoint n>/evt_…"
            await pub.publish(
                topology.EXCHANGE_EVENTS,
                topology.events_routing_key(TENANT, ACCOUNT, "delivered"),
                orjson.dumps(body),
                message_id=body["event_id"],
                mandatory=False,
            )
    finally:
        await pub.close(grace_s=0)
    arrivals = await wait_count(http, base, len(sent) * healthy, timeout_s=60)
    ids = [(w.split("/", 1)[1], t) for w, t in arrivals]
    latencies = [(t - sent[w]) * 1000 for w, t in ids if w in sent]
    return {
        "events": len(sent),
        "expected": len(sent) * healthy,
        "deliveries": len(latencies),
        "latency_ms": (
            {k: round(v, 1) for k, v in stats.summary(latencies).items()} if latencies else None
        ),
    }


async def throughput(quick: bool) -> dict[str, Any]:
    endpoints_n = 4
    events = 500 if quick else 5000
    rounds = 1 if quick else 3
    # deliveries offered: rate x endpoints_n a second, well below what the relay
    # delivers end to end (a backlog would measure queueing, not isolation)
    rate = 25
    seconds = 5 if quick else 15
    out: dict[str, Any] = {"endpoints": endpoints_n, "rounds": rounds}
    async with isolated("relay", log_level="WARNING") as stack, receivers() as (base, hole):
        relay = await start_relay(stack)
        async with aiohttp.ClientSession() as http:
            healthy = [await register(http, stack, relay, f"{base}/ok/{n}") for n in range(4)]
            runs = []
            for r in range(rounds):
                run = await dispatch_rate(stack, http, base, healthy, events)
                runs.append(run)
                say(f"relay dispatch round {r + 1}/{rounds}: {run['per_s']:,} deliveries/s")
            e2e = await end_to_end_rate(stack, http, base, endpoints_n, events // 2)
            say(f"relay end to end: {e2e['per_s']:,} deliveries/s")
            alone = await latency_phase(stack, http, base, rate, seconds, endpoints_n)
            say(f"relay healthy alone: {alone['latency_ms']}")
            relay = stack.get("relay")
            await register(http, stack, relay, hole)
            await register(http, stack, relay, f"{base}/fail")
            beside = await latency_phase(stack, http, base, rate, seconds, endpoints_n)
            say(f"relay beside a black hole and a 500: {beside['latency_ms']}")
    per_s = stats.median([r["per_s"] for r in runs])
    p95_ratio = (
        stats.ratio(beside["latency_ms"]["p95"], alone["latency_ms"]["p95"])
        if alone["latency_ms"] and beside["latency_ms"]
        else None
    )
    out.update(
        {
            "events_per_run": events,
            "deliveries_per_s": round(per_s),
            "rounds_per_s": [r["per_s"] for r in runs],
            "target_per_s": TARGET_PER_S,
            "end_to_end": e2e,
            "offered_events_per_s": rate,
            "healthy_alone": alone,
            "healthy_beside_bad": beside,
            "p95_ratio": p95_ratio,
            "target_ratio": TARGET_RATIO,
            "relay_rss_peak_mb": max(r["relay_rss_peak_mb"] for r in runs),
            "runs": runs,
            "load_avg": load(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "pass": per_s >= TARGET_PER_S
            and p95_ratio is not None
            and p95_ratio <= TARGET_RATIO
            and all(r["unique"] == r["deliveries"] for r in runs),
        }
    )
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["receive"]:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(receive(int(sys.argv[2]), int(sys.argv[3])))
    else:
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        print(orjson.dumps(asyncio.run(throughput("--quick" in sys.argv))).decode())
