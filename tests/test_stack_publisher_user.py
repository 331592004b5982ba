"""The least-privilege publisher ``make up`` creates (``scripts/stack.py``,
docs/broker-access.md): it publishes commands to ``flowchat.outbound`` and can do nothing
else — no other exchange, no queue of FlowChat's to consume, no queue to declare.
Created here on the test's own vhost, under a user name of its own, deleted afterwards."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from urllib.parse import quote, unquote, urlsplit

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused

from flowchat_contracts import topology
from flowchat_platform.amqp import declare_topology
from flowchat_platform.testing import drain_queue
from stackkit import stack_script

pytestmark = pytest.mark.integration


@pytest.fixture
def publisher_url(amqp_url: str) -> Iterator[str]:
    parts = urlsplit(amqp_url)
    vhost = unquote(parts.path[1:])
    user, password = f"flowchat-publisher-test-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    made = stack_script.ensure_publisher_user(vhost, user, password)
    assert made.startswith(f"amqp://{user}:")
    assert made.endswith(f"/{quote(vhost, safe='')}")
    where = f"{parts.hostname}:{parts.port or 5672}/{quote(vhost, safe='')}"
    try:
        yield f"amqp://{user}:{password}@{where}"
    finally:
        stack_script.rabbitmqctl("delete_user", user)


async def refused(url: str, action) -> bool:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        try:
            await action(channel)
        except ChannelAccessRefused:
            return True
        return False
    finally:
        await connection.close()


async def test_the_publisher_user_publishes_commands_and_nothing_else(
    amqp_url: str, publisher_url: str
) -> None:
    admin = await aio_pika.connect(amqp_url)
    try:
        await declare_topology(await admin.channel())
    finally:
        await admin.close()
    command = {
        "tenant_id": "t1",
        "account_id": "a1",
        "idempotency_key": "order-1-receipt",
        "to": "+2348012345678",
        "content": {"type": "text", "body": "Your order has shipped."},
    }

    connection = await aio_pika.connect(publisher_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        outbound = await channel.get_exchange(topology.EXCHANGE_OUTBOUND, ensure=False)
        await outbound.publish(
            aio_pika.Message(json.dumps(command).encode(), content_type="application/json"),
            topology.outbound_routing_key("t1", "a1"),
            mandatory=True,
        )
    finally:
        await connection.close()
    [arrived] = await drain_queue(amqp_url, topology.QUEUE_OUTBOUND)
    assert json.loads(arrived.body) == command

    async def publish_to(exchange: str):
        async def action(channel) -> None:
            target = await channel.get_exchange(exchange, ensure=False)
            await target.publish(aio_pika.Message(b"{}"), "t1.a1.send_result")

        return action

    for exchange in (topology.EXCHANGE_STATUS, topology.EXCHANGE_EVENTS, topology.EXCHANGE_INBOUND):
        assert await refused(publisher_url, await publish_to(exchange)), exchange

    async def consume_outbound(channel) -> None:
        queue = await channel.get_queue(topology.QUEUE_OUTBOUND, ensure=False)
        await queue.get(fail=False)

    async def declare_a_queue(channel) -> None:
        await channel.declare_queue("mine", durable=True)

    async def declare_a_server_named_queue(channel) -> None:
        await channel.declare_queue(exclusive=True)

    async def declare_an_exchange(channel) -> None:
        await channel.declare_exchange("mine", aio_pika.ExchangeType.TOPIC)

    for action in (
        consume_outbound,
        declare_a_queue,
        declare_a_server_named_queue,
        declare_an_exchange,
    ):
        assert await refused(publisher_url, action), action.__name__
