"""Fixtures of the inbox's integration tests (the kit: :mod:`inbox_testkit`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from inbox_testkit import Kit, running, settings_for, tenant_stub_app

from flowchat_platform.testing import serve, temporary_database, temporary_vhost

OWN_SERVER_FIXTURES = frozenset({"kit"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if OWN_SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kit() -> AsyncIterator[Kit]:
    """One inbox per test module on a vhost and database of its own; tests take fresh
    tenants, so they stay independent."""
    with temporary_vhost() as amqp_url:
        async with (
            temporary_database() as database_url,
            serve(tenant_stub_app()) as tenant,
            running(settings_for(amqp_url, database_url, tenant)) as k,
        ):
            yield k
