"""Fixtures of the fault suite (``make test-faults``): servers of its own to break.

The suite runs only when ``tests/faults`` (or one of its files) is named on the
command line, so ``make test`` does not start it. Session-wide: one RabbitMQ node and
one redis-server of the suite's own (never the shared ones). Per test: a vhost on that
node, a fresh PostgreSQL database, a flushed Redis database, and a ``make_stack``
factory that starts the platform as processes against them. Each test fills a
:class:`Figures`; the run ends with a table of them.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from faults_kit import (  # noqa: E402
    RUN,
    Collector,
    FaultStack,
    Figures,
    PersonalData,
    RabbitNode,
    RedisNode,
    observe_request,
)

from flowchat_platform.testing import create_database, drop_database  # noqa: E402

_COLLECTOR = Collector()


def _named(config: pytest.Config) -> bool:
    for arg in config.args:
        path = Path(arg.split("::", 1)[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    mine = HERE in collection_path.parents and collection_path.name.startswith("test_faults_")
    if mine and not _named(config):
        return True
    return None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The security package last: its last test scans the logs and metrics of the whole
    run for the personal data every scenario sent (``faults_kit.RUN``)."""
    security = HERE / "security"
    items.sort(key=lambda item: security in Path(str(item.path)).parents)


@pytest.fixture(scope="session", autouse=True)
def personal_data() -> Iterator[PersonalData]:
    """Every request the suite makes through httpx is read for customers' phone
    numbers, BSUIDs, names and texts (``faults_kit.RUN``)."""
    original_async, original_sync = httpx.AsyncClient.send, httpx.Client.send

    async def send_async(self: httpx.AsyncClient, request: httpx.Request, **kw: Any) -> Any:
        observe_request(request)
        return await original_async(self, request, **kw)

    def send_sync(self: httpx.Client, request: httpx.Request, **kw: Any) -> Any:
        observe_request(request)
        return original_sync(self, request, **kw)

    httpx.AsyncClient.send = send_async  # type: ignore[method-assign]
    httpx.Client.send = send_sync  # type: ignore[method-assign]
    try:
        yield RUN
    finally:
        httpx.AsyncClient.send = original_async  # type: ignore[method-assign]
        httpx.Client.send = original_sync  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def rabbit_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    node = RabbitNode(tmp_path_factory.mktemp("rabbit"))
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def redis_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisNode]:
    node = RedisNode(tmp_path_factory.mktemp("redis"))
    node.start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def vhost(rabbit_node: RabbitNode) -> Iterator[str]:
    name = rabbit_node.add_vhost()
    yield name
    # the node may be down after a failed test
    with contextlib.suppress(Exception):
        rabbit_node.ctl("delete_vhost", name)


@pytest.fixture
async def fault_db() -> AsyncIterator[str]:
    dsn = await create_database()
    try:
        yield dsn
    finally:
        await drop_database(dsn)


_REDIS_DBS = iter(range(1, 16))


@pytest.fixture
def fault_redis_url(redis_node: RedisNode) -> str:
    db = next(_REDIS_DBS, 0)
    url: str = redis_node.url(db)
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    return url


@pytest.fixture
def make_stack(
    tmp_path: Path, rabbit_node: RabbitNode, vhost: str, fault_db: str, fault_redis_url: str
) -> Iterator[Callable[..., FaultStack]]:
    """``make_stack(service_env={...}, amqp_urls={...})`` → a started :class:`FaultStack`."""
    stacks: list[FaultStack] = []

    def make(
        *,
        service_env: dict[str, dict[str, str]] | None = None,
        amqp_urls: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> FaultStack:
        per = {k: dict(v) for k, v in (service_env or {}).items()}
        for name, url in (amqp_urls or {}).items():
            per.setdefault(name, {})["AMQP_URL"] = url
        stack = FaultStack.create(
            tmp_path,
            amqp_url=rabbit_node.url(vhost),
            database_url=fault_db,
            redis_url=fault_redis_url,
            service_env=per,
            extra_env=extra_env,
        )
        stacks.append(stack)
        try:
            stack.start()
        except BaseException:
            stack.stop()
            raise
        return stack

    yield make
    bad: dict[str, Any] = {}
    for stack in stacks:
        codes = stack.stop()
        bad.update({n: c for n, c in codes.items() if c != 0})
    assert not bad, f"services did not stop cleanly on SIGTERM: {bad}"


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    fig = _COLLECTOR.new(request.node.name.removeprefix("test_"))
    yield fig
    report = getattr(request.node, "rep_call", None)
    if report is not None:
        fig.outcome = "xfail" if hasattr(report, "wasxfail") else report.outcome
    print(fig.line())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _COLLECTOR.figures:
        return
    terminalreporter.section("fault suite figures")
    for line in _COLLECTOR.table():
        terminalreporter.write_line(line)
    lost = sum(f.lost for f in _COLLECTOR.figures)
    dup = sum(f.duplicated for f in _COLLECTOR.figures)
    terminalreporter.write_line(f"total lost={lost} duplicated={dup}")
