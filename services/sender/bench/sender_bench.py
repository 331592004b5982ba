# ruff: noqa: S105, S108, ASYNC220, ASYNC221, PLR0915  (a local measuring script)
"""Quick throughput measurement of one sender process against the real sandbox.

    uv run python services/sender/bench/sender_bench.py [--messages 20000] [--prefetch 256]
        [--mode both|sender|bare] [--profile out.svg]

What it does, all on the local servers (a fresh RabbitMQ vhost, one Redis db):

1. starts the sandbox (``python -m flowchat_sandbox``) on a free port, with status
   webhooks delayed past the run (they are not what is measured), registers one
   number with ``throughput_mps`` lifted to 10,000 and opens ``--recipients``
   customers' 24 h windows (each customer writes once);
2. serves a stub tenant service (credentials) and webhook sink in this process;
3. **bare**: an aio-pika consume → aiohttp POST (the same Cloud API body) → ack
   loop over ``--messages`` commands, same prefetch — the yardstick;
4. **sender**: ``python -m flowchat_sender`` over the same number of commands,
   timed from its first consumed message until every ``SendResult`` is confirmed
   on ``flowchat.status`` (start-up excluded); ``--profile`` wraps it in py-spy.

Prints msg/s for each and the ratio. Not a test: ``make bench`` owns the gate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid

import aio_pika
import aiohttp
import orjson
import redis.asyncio as aioredis
from aiohttp import web

from flowchat_contracts import OutboundCommand, TextContent, topology
from flowchat_platform.amqp import declare_topology
from flowchat_platform.testing import free_port, temporary_vhost
from flowchat_sender.cloud_api import build_message

SHOWN_METRICS = (
    "flowchat_sender_sends_total",
    "flowchat_sender_retries_total",
    "flowchat_sender_limiter_waits_total",
    "flowchat_sender_dlq_total",
)
TOKEN = "bench-service-token-0123456789"
PNID = "1065550999"
ACCESS = "bench-access-token"


def cpu_s(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one when ``pid`` is None)."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_http(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(url) as r:
                    if r.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(url)
            await asyncio.sleep(0.1)


def stub_app(throughput: int) -> web.Application:
    account = {
        "account_id": "acc-bench",
        "tenant_id": "t-bench",
        "provider": "meta",
        "phone_number_id": PNID,
        "waba_id": "waba-bench",
        "access_token": ACCESS,
        "app_secret": "s" * 24,
        "throughput_mps": throughput,
        "tier": "unlimited",
    }

    async def get_account(request: web.Request) -> web.Response:
        if request.match_info["account_id"] != "acc-bench":
            return web.json_response({"error": {"code": "not_found"}}, status=404)
        return web.json_response(account, headers={"Cache-Control": "private, max-age=600"})

    async def sink(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/internal/v1/accounts/{account_id}", get_account)
    app.router.add_post("/webhook", sink)
    return app


def commands(n: int, recipients: int, run: str, block: int) -> list[OutboundCommand]:
    """``n`` text commands to ``recipients`` customers of block ``block`` (fresh per run, so
    the sandbox's pair-rate state of earlier runs never refuses one)."""
    return [
        OutboundCommand(
            tenant_id="t-bench",
            account_id="acc-bench",
            idempotency_key=f"{run}-{i}",
            message_id=f"{run}-m{i}",
            to=f"+1555{block * recipients + i % recipients:07d}",
            content=TextContent(body=f"order {i} confirmed"),
            category="utility",
        )
        for i in range(n)
    ]


async def fill(amqp_url: str, queue: str, cmds: list[OutboundCommand]) -> None:
    conn = await aio_pika.connect(amqp_url)
    try:
        ch = await conn.channel(publisher_confirms=True)
        if queue != topology.QUEUE_OUTBOUND:
            await ch.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
        for i in range(0, len(cmds), 500):
            await asyncio.gather(
                *(
                    ch.default_exchange.publish(
                        aio_pika.Message(
                            c.model_dump_json(exclude_none=True).encode(),
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            content_type="application/json",
                        ),
                        queue,
                    )
                    for c in cmds[i : i + 500]
                )
            )
    finally:
        await conn.close()


async def depth(channel: aio_pika.abc.AbstractChannel, queue: str) -> int:
    q = await channel.declare_queue(queue, passive=True)
    return int(q.declaration_result.message_count or 0)


async def bare_loop(
    amqp_url: str, queue: str, sandbox: str, n: int, prefetch: int
) -> tuple[float, float]:
    """Consume → POST the Cloud API body → ack; seconds from first message to the last ack."""
    url = f"{sandbox}/v23.0/{PNID}/messages"
    headers = {"Authorization": f"Bearer {ACCESS}", "Content-Type": "application/json"}
    done = asyncio.Event()
    count = 0
    errors = 0
    started = cpu0 = 0.0
    conn = await aio_pika.connect(amqp_url)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    try:
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=prefetch)
        q = await ch.declare_queue(queue, passive=True)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal count, errors, started, cpu0
            if not started:
                started = time.perf_counter()
                cpu0 = cpu_s()
            cmd = OutboundCommand.model_validate_json(message.body)
            async with session.post(
                url, data=orjson.dumps(build_message(cmd)), headers=headers
            ) as r:
                await r.read()
                if r.status != 200:
                    errors += 1
            await message.ack()
            count += 1
            if count >= n:
                done.set()

        await q.consume(on_message)
        await asyncio.wait_for(done.wait(), timeout=600)
        elapsed = time.perf_counter() - started
        cpu = cpu_s() - cpu0
    finally:
        await session.close()
        await conn.close()
    if errors:
        print(f"  bare: {errors} non-200 answers", file=sys.stderr)
    return elapsed, cpu


async def sender_run(
    amqp_url: str,
    redis_url: str,
    sandbox: str,
    stub: str,
    n: int,
    prefetch: int,
    profile: str | None,
    extra_env: dict[str, str],
) -> tuple[float, float]:
    env = {
        **os.environ,
        "AMQP_URL": amqp_url,
        "REDIS_URL": redis_url,
        "FLOWCHAT_TENANT_URL": stub,
        "FLOWCHAT_GATEWAY_URL": stub,
        "FLOWCHAT_SERVICE_TOKEN": TOKEN,
        "FLOWCHAT_SENDER_HTTP_PORT": str(http_port := free_port()),
        "FLOWCHAT_SENDER_GRAPH_URL": sandbox,
        "FLOWCHAT_SENDER_PREFETCH": str(prefetch),
        "FLOWCHAT_SENDER_DEFAULT_THROUGHPUT_MPS": "10000",
        **extra_env,
    }
    argv = [sys.executable, "-m", "flowchat_sender"]
    if profile and profile.endswith(".prof"):
        argv = [sys.executable, "-m", "cProfile", "-o", profile, "-m", "flowchat_sender"]
    elif profile:
        fmt = "raw" if profile.endswith(".txt") else "flamegraph"
        spy = ["py-spy", "record", "--nonblocking", "-f", fmt, "-o", profile, "-r", "200"]
        argv = [*spy, "--", *argv]
    log = open(f"/tmp/sender-bench-{os.getpid()}.log", "wb")  # noqa: SIM115, ASYNC230
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    conn = await aio_pika.connect(amqp_url)
    try:
        ch = await conn.channel()
        deadline = time.monotonic() + 600
        started = cpu0 = 0.0
        while time.monotonic() < deadline:
            left = await depth(ch, topology.QUEUE_OUTBOUND)
            if not started and left < n:
                started = time.perf_counter()
                cpu0 = 0.0 if profile else cpu_s(proc.pid)
            if started:
                finished = await depth(ch, topology.QUEUE_STATE_STATUS)
                parked = await depth(ch, topology.QUEUE_OUTBOUND_DLQ)
                if finished + parked >= n:
                    if parked:
                        print(f"  sender: {parked} parked in the DLQ", file=sys.stderr)
                    cpu = 0.0 if profile else cpu_s(proc.pid) - cpu0
                    return time.perf_counter() - started, cpu
            if proc.poll() is not None:
                raise RuntimeError(f"sender exited {proc.returncode}; see {log.name}")
            await asyncio.sleep(0.02)
        raise TimeoutError("sender did not finish")
    finally:
        await conn.close()
        with contextlib.suppress(aiohttp.ClientError):
            async with (
                aiohttp.ClientSession() as s,
                s.get(f"http://127.0.0.1:{http_port}/metrics") as r,
            ):
                for line in (await r.text()).splitlines():
                    if line.startswith(SHOWN_METRICS) and not line.endswith(" 0.0"):
                        print("  " + line, file=sys.stderr)
        spy = profile and not profile.endswith(".prof")
        proc.send_signal(signal.SIGINT if spy else signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(60)
        log.close()


async def main(args: argparse.Namespace) -> None:
    sandbox_port = free_port()
    sandbox_env = {
        **os.environ,
        "FLOWCHAT_SANDBOX_HTTP_PORT": str(sandbox_port),
        "FLOWCHAT_SANDBOX_STATUS_DELAY_S": "3600",
        "FLOWCHAT_SANDBOX_DEFAULT_THROUGHPUT_MPS": "10000",
        "LOG_LEVEL": "WARNING",
    }
    sandbox_log = open("/tmp/sandbox-bench.log", "wb")  # noqa: SIM115, ASYNC230
    sandbox_proc = subprocess.Popen(
        [sys.executable, "-m", "flowchat_sandbox"],
        env=sandbox_env,
        stdout=sandbox_log,
        stderr=subprocess.STDOUT,
    )
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    runner = web.AppRunner(stub_app(10_000), access_log=None)
    await runner.setup()
    stub_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", stub_port).start()
    stub = f"http://127.0.0.1:{stub_port}"
    redis_url = f"redis://127.0.0.1:6379/{args.redis_db}"
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    try:
        await wait_http(f"{sandbox}/sandbox/numbers")
        async with aiohttp.ClientSession() as s:
            async with s.post(
                f"{sandbox}/sandbox/numbers",
                json={
                    "phone_number_id": PNID,
                    "waba_id": "waba-bench",
                    "display_phone_number": "+1 555 000 9999",
                    "access_token": ACCESS,
                    "app_secret": "s" * 24,
                    "webhook_url": f"{stub}/webhook",
                    "throughput_mps": 10_000,
                },
            ) as r:
                assert r.status == 201, await r.text()
            sem = asyncio.Semaphore(32)

            async def open_window(i: int) -> None:
                async with (
                    sem,
                    s.post(
                        f"{sandbox}/sandbox/customers/1555{i:07d}/messages",
                        json={"phone_number_id": PNID, "text": "hi"},
                    ) as r,
                ):
                    assert r.status == 200, await r.text()

            runs = args.rounds * (2 if args.mode == "both" else 1)
            await asyncio.gather(*(open_window(i) for i in range(args.recipients * runs)))
        print(f"sandbox {sandbox}: {args.recipients * runs} windows open", flush=True)
        block = 0
        # CPU of the other processes on the path (the broker is shared: other users count).
        watched = {"sandbox": sandbox_proc.pid}
        beam = subprocess.run(
            ["pgrep", "-o", "-u", "rabbitmq", "beam.smp"],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if beam:
            watched["broker"] = int(beam[0])

        rates: dict[str, list[float]] = {"bare": [], "sender": []}
        cpus: dict[str, list[float]] = {"bare": [], "sender": []}
        modes = ("bare", "sender") if args.mode == "both" else (args.mode,)
        for _ in range(args.rounds):
            for mode in modes:
                redis = aioredis.Redis.from_url(redis_url)
                await redis.flushdb()
                await redis.aclose()
                with temporary_vhost() as amqp_url:
                    conn = await aio_pika.connect(amqp_url)
                    await declare_topology(await conn.channel())
                    await conn.close()
                    run = uuid.uuid4().hex[:8]
                    cmds = commands(args.messages, args.recipients, run, block)
                    block += 1
                    await fill(
                        amqp_url, "bench.bare" if mode == "bare" else topology.QUEUE_OUTBOUND, cmds
                    )
                    others0 = {name: cpu_s(pid) for name, pid in watched.items()}
                    if mode == "bare":
                        elapsed, cpu = await bare_loop(
                            amqp_url, "bench.bare", sandbox, args.messages, args.prefetch
                        )
                    else:
                        elapsed, cpu = await sender_run(
                            amqp_url,
                            redis_url,
                            sandbox,
                            stub,
                            args.messages,
                            args.prefetch,
                            args.profile,
                            extra_env,
                        )
                    others = {
                        name: 1e6 * (cpu_s(pid) - others0[name]) / args.messages
                        for name, pid in watched.items()
                    }
                rate = args.messages / elapsed
                rates[mode].append(rate)
                cpus[mode].append(1e6 * cpu / args.messages)
                print(
                    f"{mode:>6}: {args.messages} in {elapsed:.2f}s = {rate:.0f} msg/s, "
                    f"{1e6 * cpu / args.messages:.0f} µs CPU/msg"
                    + "".join(f"; {k} {v:.0f} µs/msg" for k, v in others.items()),
                    flush=True,
                )
        for mode in modes:
            print(
                f"{mode:>6} median: {statistics.median(rates[mode]):.0f} msg/s, "
                f"{statistics.median(cpus[mode]):.0f} µs CPU/msg"
            )
        if args.mode == "both":
            ratio = statistics.median(
                s / b for s, b in zip(rates["sender"], rates["bare"], strict=True)
            )
            print(f" ratio: sender / bare (median of rounds) = {ratio:.2f}")
    finally:
        redis = aioredis.Redis.from_url(redis_url)
        await redis.flushdb()  # the bench's own database: no week-long idempotency keys left
        await redis.aclose()
        await runner.cleanup()
        sandbox_proc.terminate()
        sandbox_proc.wait(30)
        sandbox_log.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--recipients", type=int, default=1_000)
    parser.add_argument("--prefetch", type=int, default=256)
    parser.add_argument("--mode", choices=("both", "sender", "bare"), default="both")
    parser.add_argument("--rounds", type=int, default=1, help="alternate bare/sender runs")
    parser.add_argument("--redis-db", type=int, default=11)
    parser.add_argument(
        "--profile",
        help="profile the sender: .svg py-spy flame graph, .txt py-spy collapsed stacks, "
        ".prof cProfile stats",
    )
    parser.add_argument(
        "--env", action="append", default=[], help="extra sender env KEY=VALUE (repeatable)"
    )
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
