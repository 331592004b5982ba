"""Fixtures of the gateway's tests; the helpers live in ``gateway_testkit.py``.

Creating a RabbitMQ vhost costs about a second (``rabbitmqctl``), so the tests of one
module share one vhost of their own and one stub tenant service (served from a
thread); each test runs a fresh gateway (lifespan included) against them, resets the
stub, and begins with every queue purged (:meth:`Broker.open`) and a Redis database of
its own (``redis_url``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from gateway_testkit import Gateway, TenantStub, running_gateway, threaded_server

from flowchat_platform.testing import temporary_vhost


@pytest.fixture(scope="module")
def module_amqp_url() -> Iterator[str]:
    with temporary_vhost() as url:
        yield url


@pytest.fixture(scope="module")
def tenant_stub() -> Iterator[TenantStub]:
    stub = TenantStub()
    with threaded_server(stub.app()) as url:
        stub.url = url
        yield stub


@pytest.fixture
async def gateway(
    module_amqp_url: str, redis_url: str, tenant_stub: TenantStub
) -> AsyncIterator[Gateway]:
    async with running_gateway(module_amqp_url, redis_url, tenant_stub) as gw:
        yield gw
