"""An endpoint the relay disables (410 Gone at once, or failing everything for too long)
makes exactly one ``endpoint_disabled`` fact on ``flowchat.events`` per disabling, after
the disabling is committed; the URL's host only, never the URL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from relay_testkit import Harness, Receiver, StartRelay, wait_for

from flowchat_contracts import topology
from flowchat_contracts.tenant_events import ENDPOINT_DISABLED_KIND, EndpointDisabled


@asynccontextmanager
async def watching(amqp_url: str) -> AsyncIterator[AbstractQueue]:
    """A queue of the test's own bound to every tenant's ``endpoint_disabled``."""
    conn = await aio_pika.connect(amqp_url)
    try:
        channel = await conn.channel()
        exchange = await channel.declare_exchange(
            topology.EXCHANGE_EVENTS, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, f"*.*.{ENDPOINT_DISABLED_KIND}")
        yield queue
    finally:
        await conn.close()


async def drain(queue: AbstractQueue, settle_s: float = 0.7) -> list[AbstractIncomingMessage]:
    """Every message in ``queue`` once nothing more arrived for ``settle_s``."""
    out: list[AbstractIncomingMessage] = []
    while True:
        message = await queue.get(fail=False, no_ack=True)
        if message is None:
            await asyncio.sleep(settle_s)
            message = await queue.get(fail=False, no_ack=True)
            if message is None:
                return out
        out.append(message)


def decoded(message: AbstractIncomingMessage, tenant_id: str) -> EndpointDisabled:
    event = EndpointDisabled.model_validate_json(message.body)
    assert message.routing_key == f"{tenant_id}.-.{ENDPOINT_DISABLED_KIND}"
    assert message.message_id == event.event_id
    assert b"/hook" not in message.body  # the host only, never the URL
    return event


async def _disabled(harness: Harness, endpoint_id: str) -> dict[str, object] | None:
    shown = await harness.endpoint(endpoint_id)
    return shown if not shown["enabled"] else None


async def test_410_gone_makes_one_endpoint_disabled_event_per_disabling(
    start_relay: StartRelay, amqp_url: str
):
    receiver = Receiver(status=410)
    async with watching(amqp_url) as queue, receiver.running(), start_relay() as h:
        endpoint = await h.create_endpoint(receiver.url, ["message.status"])
        await h.publish_status()
        await wait_for(lambda: _disabled(h, endpoint["id"]))
        await h.publish_status()  # not stored: the endpoint subscribes to nothing now
        messages = await drain(queue)
        assert len(messages) == 1, [m.body for m in messages]
        first = decoded(messages[0], "tnt_a")
        assert first.endpoint_id == endpoint["id"]
        assert first.reason == "gone"
        assert first.url_host == "127.0.0.1"
        assert first.last_status_code == 410

        # enabled again by the tenant, still gone: a second disabling, a second event
        r = await h.http.patch(
            f"/v1/endpoints/{endpoint['id']}", json={"enabled": True}, headers=h.auth()
        )
        assert r.status_code == 200, r.text
        await wait_for(lambda: _disabled(h, endpoint["id"]))
        again = await drain(queue)
        assert len(again) == 1, [m.body for m in again]
        second = decoded(again[0], "tnt_a")
        assert second.reason == "gone"
        assert second.event_id != first.event_id
        assert second.disabled_at > first.disabled_at


async def test_failing_for_too_long_makes_one_endpoint_disabled_event(
    start_relay: StartRelay, amqp_url: str
):
    receiver = Receiver(status=500)
    async with (
        watching(amqp_url) as queue,
        receiver.running(),
        start_relay(disable_after_s=1.0) as h,
    ):
        endpoint = await h.create_endpoint(receiver.url, ["message.status"])
        for _ in range(3):
            await h.publish_status()
        await wait_for(lambda: _disabled(h, endpoint["id"]), timeout_s=10)
        messages = await drain(queue)
    assert len(messages) == 1, [m.body for m in messages]
    event = decoded(messages[0], "tnt_a")
    assert event.reason == "failing"
    assert event.endpoint_id == endpoint["id"]
    assert event.last_status_code == 500
    assert event.url_host == "127.0.0.1"
