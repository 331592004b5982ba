import asyncio
import time
from typing import Any

import aio_pika
import pytest
import structlog
from pydantic import TypeAdapter

from flowchat_contracts import InboundMessage, topology
from flowchat_platform.amqp import HEADER_ORIGIN_QUEUE, HEADER_REASON, Amqp, declare_own_queues
from flowchat_platform.errors import DeadLetter, Discard, PublishError, RetryLater
from flowchat_platform.testing import drain_queue, eventually

pytestmark = pytest.mark.integration


def inbound(n: int = 1) -> InboundMessage:
    return InboundMessage(
        tenant_id="t1",
        account_id="a1",
        provider="meta",
        provider_message_id=f"wamid.{n}",
        phone_number_id="100",
        customer_wa_id="15551234567",
        type="text",
        text=f"hi {n}",
        timestamp="2026-01-01T00:00:00Z",
    )


@pytest.fixture
async def amqp(amqp_url):
    client = Amqp(amqp_url, service="test", publish_timeout_s=5)
    await client.connect()
    yield client
    await client.close(grace_s=2)


async def test_publish_is_confirmed_and_routed_by_topology(amqp, amqp_url):
    msg = inbound()
    await amqp.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", msg, message_id=msg.event_id)
    got = await drain_queue(amqp_url, topology.QUEUE_CONVERSATION_INBOUND)
    assert [InboundMessage.model_validate_json(m.body) for m in got] == [msg]
    assert got[0].delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert (got[0].message_id, got[0].content_type, got[0].app_id) == (
        msg.event_id,
        "application/json",
        "test",
    )
    assert got[0].type == msg.kind


async def test_publish_carries_headers_and_correlation(amqp, amqp_url):
    msg = inbound()
    await amqp.publish(
        topology.EXCHANGE_INBOUND,
        "t1.a1.text",
        msg,
        correlation_id="corr-1",
        headers={"x-flowchat-attempt": 3, "x-flowchat-reason": "why"},
        message_type="custom",
    )
    (got,) = await drain_queue(amqp_url, topology.QUEUE_CONVERSATION_INBOUND)
    assert got.correlation_id == "corr-1"
    own = {k: v for k, v in got.headers.items() if k != "x-delivery-count"}  # the broker's
    assert own == {"x-flowchat-attempt": 3, "x-flowchat-reason": "why"}
    assert got.type == "custom"


async def test_publish_to_an_unknown_exchange_raises(amqp):
    with pytest.raises(PublishError):
        await amqp.publish("no-such-exchange", "x", b"{}")


async def test_unroutable_publish_raises(amqp):
    with pytest.raises(PublishError):
        await amqp.publish("", "no-such-queue", b"{}")


async def test_a_nacked_publish_raises_and_the_publish_channel_is_replaced(amqp, amqp_url):
    """A nack raises (the caller retries) and the next publishes go on a new channel
    (a quorum queue's publisher state lives in the channel: one made while a leader was
    being replaced stays nacked), at most once per ``nack_reopen_interval_s``; the
    channel the topology was declared on stays open."""
    conn = await aio_pika.connect(amqp_url)
    try:
        ch = await conn.channel()
        await ch.declare_queue(
            "test.full", arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
        )
    finally:
        await conn.close()
    first = amqp._pub_channel
    with pytest.raises(PublishError, match="Nack"):
        await amqp.publish("", "test.full", b"{}")
    await eventually(lambda: amqp._pub_channel is not first, timeout_s=5)
    second = amqp._pub_channel
    assert not first.is_closed  # the topology's channel: aio-pika redeclares through it
    # nacked again at once: within the interval, the channel stays
    with pytest.raises(PublishError):
        await amqp.publish("", "test.full", b"{}")
    await asyncio.sleep(0.3)
    assert amqp._pub_channel is second
    msg = inbound()
    await amqp.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", msg, message_id=msg.event_id)
    got = await drain_queue(amqp_url, topology.QUEUE_CONVERSATION_INBOUND)
    assert [InboundMessage.model_validate_json(m.body) for m in got] == [msg]
    # after the interval, a nack replaces it again and the replaced one is closed later
    await asyncio.sleep(amqp.nack_reopen_interval_s)
    with pytest.raises(PublishError):
        await amqp.publish("", "test.full", b"{}")
    await eventually(lambda: amqp._pub_channel is not second, timeout_s=5)
    await eventually(lambda: second.is_closed, timeout_s=amqp.publish_timeout_s + 5)


async def test_a_publish_not_confirmed_in_time_replaces_the_publish_channel(amqp, amqp_url):
    """A confirm that does not come within the deadline raises (the caller retries) and
    the next publishes go on a new channel, as after a nack: a channel whose enqueues
    went to a quorum queue's dead leader may never get them confirmed."""
    first = amqp._pub_channel
    msg = inbound()
    with pytest.raises(PublishError, match="not confirmed"):
        await amqp.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", msg, timeout_s=1e-9)
    await eventually(lambda: amqp._pub_channel is not first, timeout_s=5)
    assert not first.is_closed  # the topology's channel stays open
    await amqp.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", msg, message_id=msg.event_id)
    got = await drain_queue(amqp_url, topology.QUEUE_CONVERSATION_INBOUND)
    # the timed-out publish may have reached the queue too (the caller's retry dedupes)
    assert [InboundMessage.model_validate_json(m.body) for m in got][-1:] == [msg]


async def test_publish_without_a_broker_fails_fast():
    client = Amqp("amqp://guest:guest@127.0.0.1:1/", service="test")
    with pytest.raises(PublishError, match="not connected"):
        await client.publish(topology.EXCHANGE_INBOUND, "x", b"{}")


async def test_consume_fates_and_poison(amqp, amqp_url):
    handled: list[str] = []

    async def handler(item: InboundMessage, _message) -> None:
        if item.text == "hi 2":
            raise Discard("duplicate")
        if item.text == "hi 3":
            raise DeadLetter("cannot handle this")
        handled.append(item.provider_message_id)

    await amqp.consume(
        topology.QUEUE_CONVERSATION_INBOUND,
        handler,
        decoder=TypeAdapter(InboundMessage),
        prefetch=4,
    )
    for n in (1, 2, 3):
        await amqp.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", inbound(n))
    await amqp.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", b"{not json")
    await amqp.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", inbound(4))
    await eventually(lambda: handled == ["wamid.1", "wamid.4"])

    async def poisoned():
        return await drain_queue(amqp_url, topology.QUEUE_POISON)

    parked = await eventually(poisoned)
    parked += await drain_queue(amqp_url, topology.QUEUE_POISON)
    reasons = sorted(m.headers[HEADER_REASON] for m in parked)
    assert len(reasons) == 2
    assert reasons[0] == "cannot handle this"
    assert reasons[1].startswith("invalid:")
    assert not await drain_queue(amqp_url, topology.QUEUE_CONVERSATION_INBOUND)


async def test_a_dead_letter_names_the_headers_of_its_parked_copy(amqp, amqp_url):
    """``DeadLetter(headers=)`` adds to the message's own headers; a subclass's
    ``parked_headers`` decides them (here: drops one, records the consumed queue)."""

    class Park(DeadLetter):
        def parked_headers(self, own, *, queue, routing_key):
            headers = super().parked_headers(own, queue=queue, routing_key=routing_key)
            del headers["x-drop"]
            headers[HEADER_ORIGIN_QUEUE] = queue
            return headers

    async def handler(item: InboundMessage, _message) -> None:
        if item.text == "hi 1":
            raise DeadLetter("plain", headers={"x-code": 7})
        raise Park("own")

    await amqp.consume(
        topology.QUEUE_CONVERSATION_INBOUND,
        handler,
        decoder=TypeAdapter(InboundMessage),
        prefetch=4,
    )
    own = {"x-drop": "d", "x-keep": "k"}
    for n in (1, 2):
        await amqp.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", inbound(n), headers=own)
    parked: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def both() -> bool:
        parked.extend(await drain_queue(amqp_url, topology.QUEUE_POISON))
        return len(parked) == 2

    await eventually(both)
    by_reason = {m.headers[HEADER_REASON]: m.headers for m in parked}
    plain, derived = by_reason["plain"], by_reason["own"]
    assert plain["x-code"] == 7
    assert (plain["x-keep"], plain["x-drop"]) == ("k", "d")
    assert plain[HEADER_ORIGIN_QUEUE] == "t1.a1.text"  # the routing key, as before
    assert derived["x-keep"] == "k"
    assert "x-drop" not in derived
    assert derived[HEADER_ORIGIN_QUEUE] == topology.QUEUE_CONVERSATION_INBOUND


async def test_handler_bug_requeues_until_the_delivery_limit_parks_it(amqp, amqp_url):
    calls = 0

    async def handler(_item, _message) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("bug")

    await amqp.consume(
        topology.QUEUE_CONVERSATION_INBOUND,
        handler,
        decoder=TypeAdapter(InboundMessage),
        prefetch=1,
    )
    await amqp.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", inbound())

    async def parked():
        return await drain_queue(amqp_url, topology.QUEUE_POISON)

    got = await eventually(parked, timeout_s=20)
    assert len(got) == 1
    assert calls == topology.WORK_DELIVERY_LIMIT + 1


async def test_shutdown_drains_in_flight_messages(amqp):
    started = asyncio.Event()
    finished: list[str] = []

    async def slow(item: InboundMessage, _message) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(item.provider_message_id)

    await amqp.consume(
        topology.QUEUE_CONVERSATION_INBOUND, slow, decoder=TypeAdapter(InboundMessage), prefetch=1
    )
    await amqp.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", inbound())
    await asyncio.wait_for(started.wait(), 5)
    await amqp.stop_consuming(grace_s=5)
    assert finished == ["wamid.1"]


async def test_a_closing_channel_does_not_cut_a_handler_off_midway(amqp, amqp_url):
    """aiormq cancels a channel's consumer tasks when the channel closes (broker killed,
    connection cut). A handler half-way through (e.g. a provider called, its outcome not
    yet stored) must run to its end; the broker then redelivers the unacked message."""
    started = asyncio.Event()
    release = asyncio.Event()
    runs: list[str] = []

    async def handler(item: InboundMessage, _message) -> None:
        runs.append("started")
        started.set()
        await release.wait()
        runs.append("finished")

    await amqp.consume(
        topology.QUEUE_CONVERSATION_INBOUND,
        handler,
        decoder=TypeAdapter(InboundMessage),
        prefetch=1,
    )
    await amqp.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", inbound())
    await asyncio.wait_for(started.wait(), 5)
    channel = amqp._consumers[0]._channel
    assert channel is not None
    await channel.close()  # what a broker restart does to the channel
    release.set()
    await eventually(lambda: runs == ["started", "finished"], timeout_s=10)
    # unacked on the closed channel: back in its queue for the next consumer
    got = await eventually(lambda: drain_queue(amqp_url, topology.QUEUE_CONVERSATION_INBOUND))
    assert len(got) == 1


async def test_a_handler_finishing_during_a_release_writes_nothing_after_the_close(amqp, amqp_url):
    """A partition handed over (``release``: the channel closed) while a handler still
    runs. RabbitMQ forgets a channel before it answers its ``close-ok``: an ack written
    after the ``channel.close`` reaches it on a channel it does not know, and it closes
    the whole connection (``504 CHANNEL_ERROR - expected 'channel.open'``), every other
    partition of the replica with it. The ack must not be written: the connection stays
    up and the message goes back to the queue for the next consumer."""
    await declare_own_queues(
        amqp_url, topology.CONVERSATION_PARTITION_SPECS, topology.CONVERSATION_PARTITION_BINDINGS
    )
    queue = topology.CONVERSATION_PARTITION_QUEUES[0]
    entered, finish = asyncio.Event(), asyncio.Event()

    async def handler(_item: InboundMessage, _message) -> None:
        entered.set()
        await finish.wait()

    consumer = await amqp.consume(
        queue, handler, decoder=TypeAdapter(InboundMessage), prefetch=1, return_on_stop=True
    )
    connection = amqp._sub_conn.transport.connection  # the aiormq connection
    underlay = await consumer._channel.get_underlay_channel()
    await amqp.publish("", queue, inbound())
    await asyncio.wait_for(entered.wait(), 10)
    release = asyncio.create_task(amqp.release(consumer, grace_s=5))
    # until the channel.close is on the wire and its reply awaited: the channel's RPC
    # lock held, its frame queued, then taken by the writer
    queued = False
    for _ in range(1000):
        await asyncio.sleep(0)
        locked = underlay._Channel__lock.locked()
        queued = queued or (locked and not connection.write_queue.empty())
        if queued and connection.write_queue.empty():
            break
    finish.set()  # the handler ends: its ack is next ...
    time.sleep(0.3)  # noqa: ASYNC251 - the loop held: the broker answers the close meanwhile, unread
    await release
    await asyncio.sleep(1.0)  # the broker's answer to a stray ack, if any
    assert not connection.is_closed, connection.closing.exception()
    # back in the queue: the next consumer gets it (no basic.get on a single-active-
    # consumer queue)
    async with await aio_pika.connect(amqp_url) as conn:
        channel = await conn.channel()
        partition = await channel.get_queue(queue, ensure=False)
        async with partition.iterator() as messages:
            message = await asyncio.wait_for(anext(messages), 10)
            assert InboundMessage.model_validate_json(message.body).provider_message_id == "wamid.1"
            await message.ack()


async def _consume_inbound(amqp, handler, *, retry_max_s: float, **consume: Any) -> None:
    """``handler`` on the conversation's inbound queue, one message at a time, with the
    in-place retries ``retry_max_s`` apart at most."""
    amqp.transient_retry_max_s = retry_max_s
    await amqp.consume(
        topology.QUEUE_CONVERSATION_INBOUND,
        handler,
        decoder=TypeAdapter(InboundMessage),
        prefetch=1,
        **consume,
    )


async def _neither_parked_nor_left(amqp_url: str) -> None:
    assert not await drain_queue(amqp_url, topology.QUEUE_POISON)
    assert not await drain_queue(amqp_url, topology.QUEUE_CONVERSATION_INBOUND)


async def test_dependency_outage_is_retried_in_place_not_parked(amqp, amqp_url):
    """A Redis outage longer than the delivery limit's worth of redeliveries: the
    message is held and handled again until the dependency answers, never parked."""
    import redis.exceptions

    calls = 0

    async def handler(_item, _message) -> None:
        nonlocal calls
        calls += 1
        if calls <= topology.WORK_DELIVERY_LIMIT + 3:
            raise redis.exceptions.ConnectionError("Connection refused")

    await _consume_inbound(amqp, handler, retry_max_s=0.05)
    await amqp.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", inbound())
    await eventually(lambda: calls == topology.WORK_DELIVERY_LIMIT + 4, timeout_s=20)
    await amqp.stop_consuming(grace_s=5)
    await _neither_parked_nor_left(amqp_url)


async def test_a_retry_whose_publish_fails_is_published_again_in_place_not_parked(amqp, amqp_url):
    """A handler asks for a retry while the retry queue's leader is being elected: the
    retry's publish fails more times than the delivery limit allows redeliveries. It is
    published again in place until the broker takes it; the message is acked once,
    never rejected in a hot loop into the poison queue."""
    handled = 0
    published: list[str] = []
    failures = topology.WORK_DELIVERY_LIMIT + 3

    async def handler(_item, _message) -> None:
        nonlocal handled
        handled += 1
        raise RetryLater("provider circuit open", delay_s=1.0)

    async def on_retry(_exc: RetryLater, message) -> None:
        published.append(message.message_id or "")
        if len(published) <= failures:
            raise PublishError("publish failed: Basic.Nack", exchange="", routing_key="retry")

    await _consume_inbound(amqp, handler, retry_max_s=0.05, on_retry=on_retry)
    await amqp.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", inbound(), message_id="m-1")
    await eventually(lambda: len(published) == failures + 1, timeout_s=20)
    await asyncio.sleep(0.3)  # a redelivery, if any, would be handled now
    await amqp.stop_consuming(grace_s=5)
    assert handled == 1  # handled once: the retry's publish was tried again, not the message
    assert set(published) == {"m-1"}
    await _neither_parked_nor_left(amqp_url)


async def test_dependency_outage_at_shutdown_requeues_without_waiting(amqp, amqp_url):
    failing = asyncio.Event()

    async def handler(_item, _message) -> None:
        failing.set()
        raise ConnectionRefusedError("redis down")

    await _consume_inbound(amqp, handler, retry_max_s=30)
    await amqp.publish(topology.EXCHANGE_INBOUND, "t1.a1.text", inbound())
    await asyncio.wait_for(failing.wait(), 5)
    await asyncio.sleep(0.5)  # backing off by now
    started = asyncio.get_running_loop().time()
    await amqp.stop_consuming(grace_s=10)
    assert asyncio.get_running_loop().time() - started < 5
    got = await eventually(lambda: drain_queue(amqp_url, topology.QUEUE_CONVERSATION_INBOUND))
    assert len(got) == 1  # back in its queue, not lost and not parked


async def test_a_handlers_log_lines_carry_its_messages_correlation_id(amqp):
    seen: list[dict[str, Any]] = []

    async def handler(_item: InboundMessage, _message) -> None:
        seen.append(structlog.contextvars.get_contextvars())
        await asyncio.sleep(0.05)  # both handlings overlap: each keeps its own binding
        seen.append(structlog.contextvars.get_contextvars())

    await amqp.consume(
        topology.QUEUE_CONVERSATION_INBOUND,
        handler,
        decoder=TypeAdapter(InboundMessage),
        prefetch=4,
    )
    for n in (1, 2):
        await amqp.publish(
            topology.EXCHANGE_INBOUND, "t1.a1.text", inbound(n), correlation_id=f"corr-{n}"
        )
    await eventually(lambda: len(seen) == 4)
    assert sorted(s["correlation_id"] for s in seen) == ["corr-1", "corr-1", "corr-2", "corr-2"]
    assert {s["queue"] for s in seen} == {topology.QUEUE_CONVERSATION_INBOUND}
    assert "correlation_id" not in structlog.contextvars.get_contextvars()  # nothing leaked
