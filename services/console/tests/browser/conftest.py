"""The console's browser-test harness.

- ``console_stack``: the whole platform as processes (``stackkit.ProcessStack``: every
  service of ``scripts/stack.py``, the console included) against a RabbitMQ vhost, a
  Redis database and a PostgreSQL database of its own; one per test module.
- ``browser``: the Debian ``chromium`` (``/usr/bin/chromium``, installed by ``make test``
  through ``scripts/stack.py browser`` like the servers) driven by Playwright's Python
  package with ``executable_path``: no test ever downloads a browser.
- ``Pages.check(page, name)``: runs axe-core (from ``services/console/node_modules``,
  ``npm ci`` in ``make setup``) in the page and fails on serious or critical
  violations, and saves a screenshot under the run's artefacts
  (``.run/artifacts/console/<test>/<name>.png``; ``FLOWCHAT_ARTIFACTS_DIR`` moves it).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator

import pytest
from console_kit import ARTIFACTS, AXE, CHROMIUM, Pages
from playwright.async_api import Browser, async_playwright

from flowchat_platform.testing import (
    create_database,
    drop_database,
    temporary_redis_db,
    temporary_vhost,
)
from stackkit import ProcessStack


@pytest.fixture(scope="module")
def console_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessStack]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (scripts/stack.py browser)")
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: `make setup` installs it (npm ci)")
    tmp = tmp_path_factory.mktemp("console-stack")
    database_url = asyncio.run(create_database())
    try:
        with temporary_vhost() as amqp_url, temporary_redis_db() as redis_url:
            stack = ProcessStack.create(
                tmp, amqp_url=amqp_url, database_url=database_url, redis_url=redis_url
            )
            stack.start(timeout_s=300)  # a busy machine starts nine processes slowly
            try:
                yield stack
            finally:
                codes = stack.stop()
                bad = {n: c for n, c in codes.items() if c != 0}
                assert not bad, f"services did not stop cleanly on SIGTERM: {bad}"
    finally:
        asyncio.run(drop_database(database_url))


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
def pages(request: pytest.FixtureRequest) -> Pages:
    folder = ARTIFACTS / request.node.name
    if folder.exists():
        shutil.rmtree(folder)
    return Pages(folder=folder, axe_source=AXE.read_text())
