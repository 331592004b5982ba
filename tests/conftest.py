"""Cross-service fixtures: the whole platform as real processes, isolated per module.

``platform_stack`` starts every service and the sandbox with ``python -m flowchat_<name>``
on free ports (``stackkit.ProcessStack``, the one stack every suite starts), against a
RabbitMQ vhost, a PostgreSQL database and a Redis database of their own, waits for every
``/readyz``, and stops them with SIGTERM afterwards (each must exit cleanly).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from flowchat_platform.testing import create_database, drop_database
from stackkit import ProcessStack, load_script, stack_script


@pytest.fixture(name="load_script")
def load_script_fixture() -> Callable[[str], ModuleType]:
    return load_script


@pytest.fixture(name="stack_script")
def stack_script_fixture() -> ModuleType:
    return stack_script


@pytest.fixture
def platform_stack(tmp_path: Path, amqp_url: str, redis_url: str) -> Iterator[ProcessStack]:
    database_url = asyncio.run(create_database())
    try:
        stack = ProcessStack.create(
            tmp_path, amqp_url=amqp_url, database_url=database_url, redis_url=redis_url
        )
        stack.start()
        try:
            yield stack
        finally:
            codes = stack.stop()
            bad = {n: c for n, c in codes.items() if c != 0}
            assert not bad, f"services did not stop cleanly on SIGTERM: {bad}"
    finally:
        asyncio.run(drop_database(database_url))
