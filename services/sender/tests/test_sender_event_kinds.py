"""Every event kind bound to the sender's queues is handled and acked (real RabbitMQ).

``sender.events`` takes the gateway's template webhooks, one binding per field
(:data:`flowchat_contracts.topology.SENDER_EVENT_FIELDS`). Issue 21: each of them
crashed the handler (a log call passing ``event=``, see ``tests/test_log_calls.py``),
was redelivered about 11 times, refetched the WABA's catalog on every try, and ended
in ``flowchat.poison``. Here one event of every bound kind, as the gateway publishes
it, goes through the running sender: each is acked once (nothing left in the queue,
nothing in the poison queue) and syncs the catalog once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sender_testkit import Number, World, own_redis_url, world

from flowchat_contracts import topology
from flowchat_platform.testing import eventually, serve
from flowchat_sender import metrics
from flowchat_sender.app import create_app

pytestmark = pytest.mark.integration

TOKEN = "event-kinds-test-token-0123456"

#: Meta's ``value`` of each template webhook field (what the gateway puts in ``data``).
SAMPLES: dict[str, dict[str, Any]] = {
    "message_template_status_update": {
        "event": "APPROVED",
        "message_template_id": 1001,
        "message_template_name": "order_update",
        "message_template_language": "en_US",
        "reason": "NONE",
    },
    "message_template_quality_update": {
        "previous_quality_score": "GREEN",
        "new_quality_score": "YELLOW",
        "message_template_id": 1001,
        "message_template_name": "order_update",
        "message_template_language": "en_US",
    },
    "template_category_update": {
        "message_template_id": 1001,
        "message_template_name": "order_update",
        "message_template_language": "en_US",
        "previous_category": "UTILITY",
        "new_category": "MARKETING",
    },
}


def bound_fields(queue: str) -> set[str]:
    """The routing keys' last words bound to ``queue`` (``*.*.<field>``)."""
    return {
        b.routing_key.rsplit(".", 1)[-1]
        for b in topology.ALL_BINDINGS
        if b.queue == queue and b.exchange == topology.EXCHANGE_EVENTS
    }


def count(counter: Any) -> float:
    return float(counter._value.get())


@pytest.fixture
async def w(amqp_url: str, redis_url: str) -> AsyncIterator[World]:
    number = Number.fresh("te", "acc-e", pnid_prefix="10689")
    async with world(
        amqp_url, own_redis_url(redis_url), number, token=TOKEN, forget=[f"*{number.tenant_id}*"]
    ) as kit:
        yield kit


def test_every_bound_kind_has_a_sample() -> None:
    assert bound_fields(topology.QUEUE_SENDER_EVENTS) == set(SAMPLES)
    assert set(topology.SENDER_EVENT_FIELDS) == set(SAMPLES)


async def test_every_template_event_kind_is_acked_once(w: World) -> None:
    await w.template("order_update", components=[{"type": "BODY", "text": "Hi {{1}}."}])
    synced = metrics.TEMPLATE_EVENTS.labels("synced")
    graph = metrics.TEMPLATE_CATALOG.labels("graph")
    synced_before, graph_before = count(synced), count(graph)
    async with serve(create_app(w.settings())):
        for field_name, data in SAMPLES.items():
            await w.business_event(field_name, data)

        async def handled() -> bool:
            return count(synced) - synced_before >= len(SAMPLES)

        await eventually(handled, timeout_s=20)
        await asyncio.sleep(1.0)  # a crash would be redelivered meanwhile
    # the sender is gone: an unacked event is back in its queue now
    assert await w.depth(topology.QUEUE_SENDER_EVENTS) == 0
    assert await w.depth(topology.QUEUE_POISON) == 0
    assert count(synced) - synced_before == len(SAMPLES)
    assert count(graph) - graph_before <= len(SAMPLES)
