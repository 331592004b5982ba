"""Pytest fixtures for FlowChat's integration tests: real servers, isolated per test.

- ``amqp_url``: a fresh RabbitMQ vhost per test (created with ``rabbitmqctl``, deleted after).
- ``database_url``: a fresh PostgreSQL database per test (dropped after).
- ``redis_url``: a Redis database index leased for the test alone (:func:`temporary_redis_db`):
  empty at the start, emptied at the end, never shared with a concurrent run.
- :func:`serve`: run an ASGI app under uvicorn on a free local port (lifespan included),
  so services can call each other over real HTTP.

Registered for every test by the root ``conftest.py``. Server addresses come from
``AMQP_URL`` / ``DATABASE_URL`` / ``REDIS_URL`` when set (``.run/stack.env``),
else the standard local ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import asyncpg
import pytest
import uvicorn

from flowchat_platform.settings import HTTP_KEEP_ALIVE_S

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
#: The Redis databases tests lease, one per running test. Services address Redis by URL
#: and write fixed key names, so a test gets a database of its own, not a key prefix.
#: Not 0 (the dev stack), 9 (the sender's done-when tests), 11 (the benchmarks), 13 (the
#: one database every test shared before, which older checkouts still flush) or 14 (the
#: ops tests).
REDIS_TEST_DBS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15)
#: Held inside a leased database; it expires if a run dies without releasing it.
REDIS_LEASE_KEY = "flowchat:test:lease"
REDIS_LEASE_TTL_S = 900

# Take a free database (no live lease): empty it of a dead run's keys, keep the lease.
_LEASE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  redis.call('FLUSHDB')
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""
# Empty the database (lease included) only while the lease is still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('FLUSHDB')
  return 1
end
return 0
"""


def _rabbitmqctl(*args: str) -> None:
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([exe, "-q", *args], check=True, capture_output=True, timeout=60)  # noqa: S603


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


@contextlib.contextmanager
def temporary_vhost(base_url: str | None = None) -> Iterator[str]:
    base = base_url or os.environ.get("AMQP_URL", DEFAULT_AMQP)
    user = urlsplit(base).username or "guest"
    vhost = f"flowchat-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield _with_path(base, "/" + quote(vhost, safe=""))
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def amqp_url() -> Iterator[str]:
    with temporary_vhost() as url:
        yield url


async def create_database(base_dsn: str | None = None) -> str:
    """Create an empty database with a unique name; return its DSN."""
    base = base_dsn or os.environ.get("DATABASE_URL", DEFAULT_PG)
    name = f"flowchat_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_with_path(base, "/postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return _with_path(base, "/" + name)


async def drop_database(dsn: str) -> None:
    name = urlsplit(dsn).path.lstrip("/")
    admin = await asyncpg.connect(_with_path(dsn, "/postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def temporary_database(base_dsn: str | None = None) -> AsyncIterator[str]:
    dsn = await create_database(base_dsn)
    try:
        yield dsn
    finally:
        await drop_database(dsn)


async def row_versions(conn: Any, schema: str) -> dict[str, set[tuple[str, str, str]]]:
    """Every row of ``schema``'s tables as ``(ctid, xmin, xmax)``, by table. The same
    before and after some code proves it wrote, deleted and locked no row: an UPDATE
    writes a new row version (a new ``xmin``), ``SELECT … FOR UPDATE`` sets ``xmax``."""
    tables = await conn.fetch(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
        schema,
    )
    return {
        t["table_name"]: {
            (r["ctid"], r["xmin"], r["xmax"])
            for r in await conn.fetch(
                f"SELECT ctid::text, xmin::text, xmax::text "  # noqa: S608 - catalog names
                f'FROM "{schema}"."{t["table_name"]}"'
            )
        }
        for t in tables
    }


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    async with temporary_database() as dsn:
        yield dsn


@contextlib.contextmanager
def temporary_redis_db(base_url: str | None = None, *, wait_s: float = 120.0) -> Iterator[str]:
    """The URL of a Redis database leased for the caller alone: empty when yielded,
    emptied on the way out. Concurrent test runs on one machine lease different ones
    (:data:`REDIS_TEST_DBS`), waiting up to ``wait_s`` when all are taken."""
    import redis

    base = base_url or os.environ.get("REDIS_URL", DEFAULT_REDIS)
    token = uuid.uuid4().hex
    start = os.getpid() % len(REDIS_TEST_DBS)  # concurrent runs begin at different dbs
    order = REDIS_TEST_DBS[start:] + REDIS_TEST_DBS[:start]
    deadline = time.monotonic() + wait_s
    url = ""
    while not url:
        for db in order:
            candidate = _with_path(base, f"/{db}")
            with redis.Redis.from_url(candidate) as client:
                if client.eval(_LEASE, 1, REDIS_LEASE_KEY, token, REDIS_LEASE_TTL_S):
                    url = candidate
                    break
        else:
            if time.monotonic() > deadline:
                raise TimeoutError(f"every Redis test database {REDIS_TEST_DBS} stayed leased")
            time.sleep(0.2)
    try:
        yield url
    finally:
        with redis.Redis.from_url(url) as client:
            client.eval(_RELEASE, 1, REDIS_LEASE_KEY, token)


@pytest.fixture
def redis_url() -> Iterator[str]:
    with temporary_redis_db() as url:
        yield url


@contextlib.contextmanager
def private_redis_server(directory: str | os.PathLike[str]) -> Iterator[str]:
    """A ``redis-server`` of the caller's own on a free port (no persistence, data in
    ``directory``), stopped on the way out; its URL (db 0). Skips the test when
    ``redis-server`` is not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own redis-server, fixed arguments
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


#: Ports :func:`free_port` has handed out in this process.
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port free now and never handed out before by this process: ``bind(0)`` can give
    the same port twice in a row, and two services of one test stack once got the same
    one (the second failed to bind; its URL answered with the first's health checks)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


@contextlib.asynccontextmanager
async def serve(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (lifespan included) and yield its base URL."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        # as run_service: outlive the clients' idle expiry (ServiceSettings.http_keep_alive_s)
        timeout_keep_alive=HTTP_KEEP_ALIVE_S,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            if task.done():
                task.result()
                raise RuntimeError("server stopped during start-up")
            await asyncio.sleep(0.01)
        else:
            raise TimeoutError("server did not start in 5 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=30)


async def eventually(predicate: Any, *, timeout_s: float = 10.0, interval_s: float = 0.05) -> Any:
    """Await ``predicate()`` (sync or async) until truthy; return its value or fail."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


async def drain_queue(amqp_url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message ready in ``queue`` now, taken off it (no ack needed)."""
    conn = await aio_pika.connect(amqp_url)
    try:
        q = await (await conn.channel()).declare_queue(queue, passive=True)
        out = []
        while (msg := await q.get(no_ack=True, fail=False)) is not None:
            out.append(msg)
        return out
    finally:
        await conn.close()


def service_env(
    *,
    amqp_url: str,
    database_url: str,
    redis_url: str,
    secrets: Mapping[str, str],
    log_level: str = "INFO",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a service process a test or a benchmark starts: its servers, the
    stack's ``secrets`` (``scripts/stack.py``'s ``new_secrets()``), ``FLOWCHAT_ENV=test``,
    and of the caller's own environment only ``PATH``; ``extra`` last (service URLs, ports).
    """
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "FLOWCHAT_ENV": "test",
        "LOG_LEVEL": log_level,
        "AMQP_URL": amqp_url,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        **secrets,
        **(extra or {}),
    }


#: Fixtures that reach a real server: a test that uses any of them, directly or
#: through another fixture, is an ``integration`` test whatever its own marks say.
SERVER_FIXTURES = frozenset({"amqp_url", "database_url", "redis_url"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses a server fixture ``integration``, so ``make test-unit``
    (``-m "not integration and not e2e"``) never needs RabbitMQ, Redis or PostgreSQL."""
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
