"""What every benchmark shares: isolated resources, services as real processes,
seeding through the public APIs, and measuring (queue depths, /metrics, RSS, load).

Isolation is the tests' own: a fresh RabbitMQ vhost
(``flowchat_platform.testing.temporary_vhost``), a fresh PostgreSQL database and a
Redis database leased for the run alone (``flowchat_platform.testing.temporary_redis_db``,
empty when leased, emptied on the way out; the lease kept alive while the run lasts), so
a run never touches another engineer's queues, rows or keys, nor another run's: the fixed
index every benchmark once shared (11) was flushed by each run's start and end, under any
other run going on meanwhile (its sessions, partition members, idempotency records).
Services start exactly as in production (``python -m flowchat_<name>``, settings from
the environment, built by ``flowchat_platform.testing.service_env`` as for the tests'
``tests/stackkit.py``), but one by one and with replicas.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import orjson
import psutil
import redis.asyncio as aioredis

from flowchat_contracts import topology
from flowchat_platform.testing import (
    REDIS_LEASE_KEY,
    REDIS_LEASE_TTL_S,
    free_port,
    service_env,
    temporary_database,
    temporary_redis_db,
    temporary_vhost,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
#: How often a run renews its Redis lease (``REDIS_LEASE_TTL_S``: 900 s).
REDIS_LEASE_RENEW_S = 60.0
# Renew the lease only while it is still ours.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_spec = importlib.util.spec_from_file_location("flowchat_bench_stack", ROOT / "scripts/stack.py")
assert _spec is not None
assert _spec.loader is not None
_stack = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _stack
_spec.loader.exec_module(_stack)
#: name → (module, env prefix), from scripts/stack.py (one list of services).
SERVICES: dict[str, tuple[str, str]] = {n: (m, p) for n, m, _, p in _stack.SERVICES}


def say(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


def load() -> list[float]:
    """The machine's 1, 5 and 15 minute load averages (shared machine: recorded beside
    every figure)."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "load_avg_at_start": load(),
    }


# --------------------------------------------------------------------- processes


@dataclass
class Proc:
    name: str
    url: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@dataclass
class Stack:
    """Services of one benchmark, started on free ports against isolated resources."""

    env: dict[str, str]
    tmp: Path
    procs: list[Proc] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    #: The checkout the services run from, and its interpreter: this one by default;
    #: another revision's worktree and venv for ``bench.turn_ab`` (the driver stays this
    #: checkout's code).
    root: Path = ROOT
    python: str = sys.executable

    def url(self, name: str) -> str:
        return self.urls[name]

    async def start(
        self,
        name: str,
        *,
        replica: int = 0,
        env: dict[str, str] | None = None,
        ready_timeout_s: float = 60,
    ) -> Proc:
        module, prefix = SERVICES[name]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        if replica == 0:
            self.urls[name] = url
            var = "STATE" if name == "state-manager" else name.upper()
            self.env[f"FLOWCHAT_{var}_URL"] = url
            if name == "sandbox":
                for key in ("FLOWCHAT_SENDER_GRAPH_URL", "FLOWCHAT_SENDER_TWILIO_URL"):
                    self.env[key] = url
                self.env["FLOWCHAT_TENANT_GRAPH_URL"] = url
            if name == "gateway":
                self.env["FLOWCHAT_GATEWAY_PUBLIC_URL"] = url
        log = self.tmp / f"{name}-{replica}.log"
        full = {**self.env, f"{prefix}HTTP_PORT": str(port), **(env or {})}
        with open(log, "wb") as out:  # noqa: ASYNC230 - once, at start-up
            popen = subprocess.Popen(  # noqa: S603, ASYNC220 - our own interpreter and module
                [self.python, "-m", module, "serve"],
                cwd=self.root,
                env=full,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        proc = Proc(f"{name}-{replica}" if replica else name, url, popen, log)
        self.procs.append(proc)
        await wait_ready(proc, ready_timeout_s)
        return proc

    def get(self, name: str) -> Proc:
        return next(p for p in self.procs if p.name == name)

    async def stop(self, proc: Proc) -> None:
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
            for _ in range(300):
                if proc.popen.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                proc.popen.kill()
                proc.popen.wait()
        self.procs.remove(proc)

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop(p) for p in list(reversed(self.procs))))


async def wait_ready(proc: Proc, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited at start:\n{proc.tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(proc.url + "/readyz") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready in {timeout_s:.0f} s:\n{proc.tail()}")


@contextlib.asynccontextmanager
async def isolated(
    name: str, *, log_level: str = "INFO", root: Path | None = None
) -> AsyncIterator[Stack]:
    """A vhost, a database and a leased Redis database (emptied before and after), and
    a :class:`Stack` whose processes are all stopped on the way out. ``root``: another
    checkout whose services (``root/.venv/bin/python``) to run instead of this one's."""
    # idempotency records live a week: the lease's release empties the database
    with temporary_redis_db() as redis_url:
        keep = asyncio.get_running_loop().create_task(_keep_lease(redis_url))
        try:
            async with _running(name, redis_url, log_level) as stack:
                if root is not None:
                    stack.root, stack.python = root, str(root / ".venv" / "bin" / "python")
                yield stack
        finally:
            keep.cancel()


async def _keep_lease(redis_url: str) -> None:
    """Renew the run's Redis lease (it expires after ``REDIS_LEASE_TTL_S`` otherwise, and
    a test could lease and empty the database under a long benchmark)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        token = await client.get(REDIS_LEASE_KEY)
        while token is not None:
            await asyncio.sleep(REDIS_LEASE_RENEW_S)
            await client.eval(_RENEW, 1, REDIS_LEASE_KEY, token, REDIS_LEASE_TTL_S)
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def _running(name: str, redis_url: str, log_level: str) -> AsyncIterator[Stack]:
    tmp = Path(tempfile.mkdtemp(prefix=f"flowchat-bench-{name}-"))
    with temporary_vhost() as amqp_url:
        async with temporary_database() as database_url:
            # Service URLs join as the services start (Stack.start): one at a time.
            env = service_env(
                amqp_url=amqp_url,
                database_url=database_url,
                redis_url=redis_url,
                secrets=_stack.new_secrets(),
                log_level=log_level,
            )
            stack = Stack(env=env, tmp=tmp)
            try:
                yield stack
            finally:
                await stack.stop_all()
                # Logs stay for a look after a failure or with BENCH_KEEP_LOGS=1.
                if sys.exc_info()[0] is None and not os.environ.get("BENCH_KEEP_LOGS"):
                    shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------- seeding


@dataclass
class Account:
    tenant_id: str
    account_id: str
    phone_number_id: str
    waba_id: str
    access_token: str
    app_secret: str
    display: str


TEMPLATE = "bench_notice"


async def _call(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with http.request(method, url, **kw) as r:
        body = await r.json(content_type=None)
        if r.status >= 300:
            raise RuntimeError(f"{method} {url} → {r.status}: {body}")
        return body


async def seed_accounts(
    stack: Stack,
    count: int,
    *,
    throughput_mps: int,
    webhook_url: str | None = None,
    tenant_id: str | None = None,
    concurrency: int = 16,
) -> list[Account]:
    """``count`` numbers at the sandbox (with one approved template each) registered as
    Meta accounts of one tenant, each pinned to ``throughput_mps`` on both sides."""
    sandbox, tenant = stack.url("sandbox"), stack.url("tenant")
    operator = {"Authorization": f"Bearer {stack.env['FLOWCHAT_OPERATOR_KEY']}"}
    hook = webhook_url or f"{sandbox}/nowhere"
    async with aiohttp.ClientSession() as http:
        if tenant_id is None:
            created = await _call(
                http,
                "POST",
                f"{tenant}/v1/tenants",
                headers=operator,
                json={
                    "name": f"bench-{secrets.token_hex(4)}",
                    "business_name": "Bench Hardware",
                    "timezone": "UTC",
                    "locale": "en",
                    "currency": "USD",
                    "tax_rate": "0",
                },
            )
            tenant_id = created["tenant_id"]
        gate = asyncio.Semaphore(concurrency)
        base = 10**9 + secrets.randbelow(10**8) * 100

        async def one(i: int) -> Account:
            pnid, waba = str(base + i), str(2 * 10**9 + base + i)
            display = f"+1555{(base + i) % 10**7:07d}"
            token, secret = "EAAG" + secrets.token_urlsafe(24), secrets.token_hex(16)
            async with gate:
                await _call(
                    http,
                    "POST",
                    f"{sandbox}/sandbox/numbers",
                    json={
                        "phone_number_id": pnid,
                        "waba_id": waba,
                        "display_phone_number": display,
                        "access_token": token,
                        "app_secret": secret,
                        "webhook_url": hook,
                        "throughput_mps": throughput_mps,
                    },
                )
                await _call(
                    http,
                    "POST",
                    f"{sandbox}/sandbox/templates",
                    json={
                        "waba_id": waba,
                        "name": TEMPLATE,
                        "language": "en_US",
                        "category": "UTILITY",
                        "components": [{"type": "BODY", "text": "Your order is on its way."}],
                    },
                )
                account = await _call(
                    http,
                    "POST",
                    f"{tenant}/v1/tenants/{tenant_id}/accounts",
                    headers=operator,
                    json={
                        "provider": "meta",
                        "phone_number_id": pnid,
                        "waba_id": waba,
                        "display_phone_number": display,
                        "app_secret": secret,
                        "verify_token": secrets.token_urlsafe(16),
                        "access_token": token,
                        "throughput_mps": throughput_mps,
                    },
                )
            assert tenant_id is not None
            return Account(tenant_id, account["account_id"], pnid, waba, token, secret, display)

        return list(await asyncio.gather(*(one(i) for i in range(count))))


# --------------------------------------------------------------------- measuring


async def scrape(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url + "/metrics") as r:
        return await r.text()


async def queue_depth(amqp_url: str, queue: str) -> int:
    """Ready messages in ``queue`` (passive declare: never creates it)."""
    conn = await aio_pika.connect(amqp_url)
    try:
        channel = await conn.channel()
        q = await channel.declare_queue(queue, passive=True)
        return int(q.declaration_result.message_count or 0)
    finally:
        await conn.close()


class Depth:
    """One connection for polling queue depths in a loop."""

    def __init__(self, amqp_url: str) -> None:
        self.url = amqp_url
        self.conn: aio_pika.abc.AbstractConnection | None = None
        self.channel: aio_pika.abc.AbstractChannel | None = None

    async def __aenter__(self) -> Depth:
        self.conn = await aio_pika.connect(self.url)
        self.channel = await self.conn.channel()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def __call__(self, queue: str) -> int:
        assert self.channel is not None
        q = await self.channel.declare_queue(queue, passive=True)
        return int(q.declaration_result.message_count or 0)


class ResultCount:
    """Send results landing in ``state-manager.status``, consumed and counted as they
    come (a ``send_result_batch`` counts each result it holds), with each result's
    ``occurred_at`` (the sender's clock, when it had the provider's answer) in
    :attr:`times`."""

    def __init__(self, amqp_url: str) -> None:
        self.url = amqp_url
        self.conn: aio_pika.abc.AbstractConnection | None = None
        self.count = 0
        self.times: list[float] = []

    async def __aenter__(self) -> ResultCount:
        self.conn = await aio_pika.connect(self.url)
        channel = await self.conn.channel()
        queue = await channel.declare_queue(topology.QUEUE_STATE_STATUS, passive=True)
        await queue.consume(self._on_result, no_ack=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def _on_result(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        # read, not validated (``send_results_in`` would be): a benchmark's counter
        body = orjson.loads(message.body)
        results = body["results"] if body.get("kind") == "send_result_batch" else [body]
        self.count += len(results)
        self.times += [datetime.fromisoformat(r["occurred_at"]).timestamp() for r in results]

    async def __call__(self) -> int:
        return self.count


class RssSampler:
    """Peak and last RSS (MB) of processes, sampled every ``interval_s`` in the background."""

    def __init__(self, procs: Iterable[Proc], interval_s: float = 0.25) -> None:
        self.procs = {p.name: psutil.Process(p.pid) for p in procs}
        self.interval_s = interval_s
        self.peak: dict[str, float] = dict.fromkeys(self.procs, 0.0)
        self.last: dict[str, float] = dict.fromkeys(self.procs, 0.0)
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        for name, proc in self.procs.items():
            with contextlib.suppress(psutil.Error):
                mb = proc.memory_info().rss / 2**20
                self.last[name] = round(mb, 1)
                self.peak[name] = round(max(self.peak[name], mb), 1)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        self.sample()
        if self._task is not None:
            self._task.cancel()


def cpu_seconds(proc: Proc) -> float:
    with contextlib.suppress(psutil.Error):
        t = psutil.Process(proc.pid).cpu_times()
        return float(t.user + t.system)
    return 0.0


# --------------------------------------------------------------------------- arguments


def parse_list(text: str, known: Sequence[str] | None = None) -> list[str]:
    """``"a,b,,c"`` → ``["a", "b", "c"]``; with ``known``, an unknown name is an error."""
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise argparse.ArgumentTypeError("empty list")
    if known is not None:
        unknown = [x for x in items if x not in known]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown: {', '.join(unknown)}")
    return items


def parse_rates(text: str) -> list[int]:
    """``"10,60"`` → ``[10, 60]``: the ``--rates`` of the bench's tools (whole, > 0)."""
    try:
        rates = [int(x) for x in parse_list(text)]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"rates are whole numbers per second: {text!r}") from exc
    if any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("rates must be > 0")
    return rates
