"""Fixtures of the security part of the fault suite (tests/faults/security).

Like the rest of the suite it runs only when ``tests/faults`` (or a path inside it) is
named on the command line. One stack serves the whole package (``security``): the
attacks are requests, not faults, so they need no fresh broker per test, and the last
test scans every log this stack wrote for every secret the package created.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FAULTS = HERE.parent
sys.path.insert(0, str(HERE))

from faults_kit import FaultStack, RabbitNode, RedisNode  # noqa: E402
from security_kit import SecurityEnv, build_env  # noqa: E402

from flowchat_platform.testing import create_database, drop_database  # noqa: E402

#: A Redis database of the suite's own server that the per-test fixtures (1, 2, ...) do
#: not reach first.
REDIS_DB = 15


def _named(config: pytest.Config) -> bool:
    for arg in config.args:
        path = Path(arg.split("::", 1)[0]).resolve()
        if path in (FAULTS, HERE) or FAULTS in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name.startswith("test_security_") and not _named(config):
        return True
    return None


@pytest.fixture(scope="package")
def security(
    rabbit_node: RabbitNode, redis_node: RedisNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecurityEnv]:
    vhost = rabbit_node.add_vhost()
    dsn = asyncio.run(create_database())
    import redis

    client = redis.Redis.from_url(redis_node.url(REDIS_DB))
    try:
        client.flushdb()
    finally:
        client.close()
    stack = FaultStack.create(
        tmp_path_factory.mktemp("security"),
        amqp_url=rabbit_node.url(vhost),
        database_url=dsn,
        redis_url=redis_node.url(REDIS_DB),
    )
    try:
        stack.start()
        env = build_env(stack, rabbit_node, vhost)
        env.log_dirs += [rabbit_node.base, redis_node.base]
        yield env
    finally:
        codes = stack.stop()
        asyncio.run(drop_database(dsn))
        with contextlib.suppress(Exception):
            rabbit_node.ctl("delete_vhost", vhost)
    bad = {n: c for n, c in codes.items() if c != 0}
    assert not bad, f"services did not stop cleanly on SIGTERM: {bad}"
