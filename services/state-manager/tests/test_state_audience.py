# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False
"""Status events only where some reader wants them (routing keys v2).

The service with its default audience, on a vhost with no inbox: a bot reply's
statuses are recorded but not published; a campaign message's go out with the
``.campaign`` word (the conversation service's binding); any ``failed`` goes out; a
tenant whose relay endpoints take ``message.status`` gets every status; and once a
queue that reads every status exists (``inbox.history``), every status goes out."""

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from flowchat_contracts import topology
from flowchat_platform.subscriptions import SubscriptionWriter
from flowchat_state_manager.models import StatusReaders

#: The integration tests share one service (``audience_harness``, marked ``integration``
#: by the conftest); the first two are unit tests.
on_the_module_loop = pytest.mark.asyncio(loop_scope="module")


def test_who_wants_a_status_change():
    nobody = StatusReaders(every=False)
    assert not nobody.wants("t", "accepted", campaign=False)
    assert not nobody.wants("t", "delivered", campaign=False)
    assert not nobody.wants("t", "accepted", campaign=True)  # the funnel starts at sent
    assert nobody.wants("t", "delivered", campaign=True)
    assert nobody.wants("t", "played", campaign=True)
    assert nobody.wants("t", "failed", campaign=False)  # 131050 opt-outs
    relay = StatusReaders(every=False, tenants=frozenset({"t"}))
    assert relay.wants("t", "accepted", campaign=False)
    assert relay.wants("t", "parked", campaign=False)
    assert not relay.wants("u", "read", campaign=False)
    assert StatusReaders().wants("u", "queued", campaign=False)


def test_the_conversation_service_is_bound_to_what_it_is_sent():
    conversation = {
        b.routing_key
        for b in topology.ALL_BINDINGS
        if b.queue == topology.QUEUE_CONVERSATION_EVENTS
    }
    assert "*.*.delivered.campaign" in conversation
    assert "*.*.failed" in conversation
    assert "*.*.delivered" not in conversation
    assert topology.status_event_key("t", "a", "read", campaign=True) == "t.a.read.campaign"
    assert topology.status_event_key("t.x", "a", "read", campaign=False) == "t_x.a.read"


async def _events_of(harness, mid: str, *, after: str) -> list[dict[str, Any]]:
    """Every event of ``mid`` published before those of ``after`` (the outbox is relayed
    in order: once ``after``'s are in, an event of ``mid`` would be too)."""
    await harness.events_for(after, 1)
    return [e for e in harness.received if e["message_id"] == mid]


@on_the_module_loop
async def test_a_bot_reply_is_recorded_but_not_published(audience_harness):
    h = audience_harness
    mid, wamid = h.new_ids()
    await h.publish(h.send_result(mid, wamid))
    for status in ("sent", "delivered", "read"):
        await h.publish(h.status_update(wamid, status))
    assert await h.history(mid) == ["accepted", "sent", "delivered", "read"]
    marker, marker_wamid = h.new_ids()
    await h.publish(h.send_result(marker, marker_wamid, campaign_id="cmp_marker"))
    await h.publish(h.status_update(marker_wamid, "sent"))
    assert await _events_of(h, mid, after=marker) == []


@on_the_module_loop
async def test_a_campaign_message_is_published_for_the_conversation_service(audience_harness):
    h = audience_harness
    mid, wamid = h.new_ids()
    await h.publish(h.send_result(mid, wamid, campaign_id="cmp_1"))
    for status in ("sent", "delivered"):
        await h.publish(h.status_update(wamid, status))
    events = await h.events_for(mid, 2)
    assert [e["status"] for e in events] == ["sent", "delivered"]  # not accepted
    assert [e["_routing_key"] for e in events] == [
        "tnt_a.acc_1.sent.campaign",
        "tnt_a.acc_1.delivered.campaign",
    ]


@on_the_module_loop
async def test_any_failure_is_published(audience_harness):
    h = audience_harness
    mid, wamid = h.new_ids()
    await h.publish(h.send_result(mid, wamid))
    await h.publish(h.status_update(wamid, "failed"))
    (event,) = await h.events_for(mid, 1)
    assert event["_routing_key"] == "tnt_a.acc_1.failed"


@on_the_module_loop
async def test_a_tenant_whose_endpoints_take_statuses_gets_every_one(audience_harness):
    h = audience_harness
    redis = aioredis.from_url(h.redis_url)
    try:
        await SubscriptionWriter(redis).replace("tnt_r", ["message.status"])
    finally:
        await redis.aclose()
    mid, wamid = h.new_ids()
    await h.publish(h.send_result(mid, wamid, tenant="tnt_r"))
    await h.publish(h.status_update(wamid, "delivered", tenant="tnt_r"))
    events = await h.events_for(mid, 2)
    assert [e["_routing_key"] for e in events] == ["tnt_r.acc_1.accepted", "tnt_r.acc_1.delivered"]


@on_the_module_loop
async def test_every_status_is_published_once_the_inbox_queue_exists(audience_harness):
    h = audience_harness
    (spec,) = [q for q in topology.INBOX_QUEUES if q.name == topology.QUEUE_INBOX_HISTORY]
    await h.channel.declare_queue(spec.name, durable=True, arguments=spec.arguments)
    await asyncio.sleep(1.2)  # a queue found missing is looked for again after 1 s
    mid, wamid = h.new_ids()
    await h.publish(h.send_result(mid, wamid))
    await h.publish(h.status_update(wamid, "read"))
    events = await h.events_for(mid, 2)
    assert [e["status"] for e in events] == ["accepted", "read"]
