"""Every kind of message bound to the conversation service's queues is handled and acked
(real RabbitMQ, PostgreSQL and Redis): the guard issue 21 asks of every consumer (the
sender's is ``services/sender/tests/test_sender_event_kinds.py``, the state-manager's
``services/state-manager/tests/test_state_event_kinds.py``).

The service consumes two queues:

- ``conversation.inbound`` ← ``flowchat.inbound``: the gateway's inbound messages, key
  ``<tenant>.<account>.<type>``, one of every :data:`~flowchat_contracts.InboundType`
  in both schema versions (v1 with a phone number, v2 from a customer known only by a
  BSUID);
- ``conversation.events`` ← ``flowchat.events``, bound to the keys it acts on
  (``topology.CONVERSATION_EVENT_KEYS``): the state-manager's ``message_status_changed``
  of the statuses that move a campaign's funnel or pause it or opt a customer out
  (``…sent|delivered|read|played|failed``), the gateway's ``business_event`` of the two
  fields it follows (template status, marketing preferences) and the hand-off events
  (``…handoff_requested``: the service's own, ignored, or the inbox's take-over;
  ``…handoff_resolved``: the inbox's, releases the hand-off). Every other key on
  ``flowchat.events`` (``queued``, ``accepted``, ``parked``, other business fields,
  facts, rejected commands) is not routed to it, and the ``#`` binding of earlier
  versions is removed when the service declares the topology.

The kinds are derived from the contracts and the publishers' own vocabularies (the
samples are ``tests/kindskit.py``'s), so a new inbound type, status, business field or
binding without a sample fails :func:`test_every_bound_kind_has_a_sample`. One message
of each, published as its publisher does, goes through the running service: each is
acked exactly once (no requeue, no handler retry, no redelivery), nothing lands in
``flowchat.poison``, and nothing is left in the queue once the service is gone (an
unacked message would be).
"""

from __future__ import annotations

import asyncio
import re
import typing
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from flowchat_contracts import (
    InboundMessage,
    InboundMessageV2,
    InboundType,
    inbound_message_in,
    topology,
)
from flowchat_contracts.command_events import COMMAND_REJECTED
from flowchat_conversation import metrics as conversation_metrics
from flowchat_conversation.app import create_app
from flowchat_conversation.commerce.service import IGNORED_TYPES
from flowchat_conversation.outreach.repository import _STATUS_MAP as FUNNEL_STATUSES
from flowchat_conversation.settings import Settings
from flowchat_gateway.events import BUSINESS_FIELDS
from flowchat_platform.testing import eventually, serve
from flowchat_state_manager.state import Status
from kindskit import (
    BUSINESS_DATA,
    HANDOFF_KINDS,
    RELAY_FACT_KINDS,
    RELAY_OWN_KINDS,
    bindings_of,
    depth,
    event_word,
    every_event,
    every_inbound,
    fates,
    handler_retries,
    inbound_versions,
    open_channel,
    topic_matches,
)

pytestmark = pytest.mark.integration

TOKEN = "event-kinds-token-0123456789abcd"
TENANT, ACCOUNT = "tk", "ak"
REPO = Path(__file__).resolve().parents[3]

#: The queues the conversation service consumes, and the bindings each has.
CONSUMED = (*topology.CONVERSATION_INBOUND_QUEUES, topology.QUEUE_CONVERSATION_EVENTS)
#: What each binding of those queues lets through, as this test covers it.
COVERED_BINDINGS = {
    # every inbound message: flowchat.inbound "#" → the partitions' headers exchange
    # (EXCHANGE_BINDINGS) → its partition by header, or without one the alternate
    # exchange → conversation.inbound
    (topology.QUEUE_CONVERSATION_INBOUND, topology.EXCHANGE_CONVERSATION_UNPARTITIONED, ""): (
        "inbound"
    ),
    **{
        (q, topology.EXCHANGE_CONVERSATION_PARTITIONS, ""): "inbound"
        for q in topology.CONVERSATION_PARTITION_QUEUES
    },
    # a campaign message's statuses (routing keys v2: the fourth word), any failure
    **{
        (topology.QUEUE_CONVERSATION_EVENTS, topology.EXCHANGE_EVENTS, f"*.*.{k}.campaign"): (
            "events"
        )
        for k in sorted({*FUNNEL_STATUSES, "failed"})
    },
    **{
        (topology.QUEUE_CONVERSATION_EVENTS, topology.EXCHANGE_EVENTS, f"*.*.{k}"): "events"
        for k in (
            "failed",
            "message_template_status_update",
            "user_marketing_preferences",
            *HANDOFF_KINDS,
        )
    },
}
#: The patterns ``conversation.events`` is bound with.
EVENT_PATTERNS = [p for (q, _, p) in COVERED_BINDINGS if q == topology.QUEUE_CONVERSATION_EVENTS]

# --------------------------------------------------------------------- the kinds


def inbound_messages() -> list[tuple[str, bytes]]:
    """``(routing key, body)`` of one inbound message of every type in every version."""
    published = every_inbound(tenant=TENANT, account=ACCOUNT, phone_number_id="pn-k")
    return [(p.key, p.body) for p in published]


def event_messages(*, bound_only: bool = False) -> list[tuple[str, bytes]]:
    """``(routing key, body)`` of every status change, every business event, every
    hand-off event, fact and rejected command; with ``bound_only`` only those routed to
    ``conversation.events``."""
    return [
        (p.key, p.body)
        for p in every_event(tenant=TENANT, account=ACCOUNT)
        if not bound_only or any(topic_matches(pattern, p.key) for pattern in EVENT_PATTERNS)
    ]


# --------------------------------------------------------------------- what is covered


def test_the_service_consumes_exactly_the_covered_queues() -> None:
    """The consumers of the service name exactly the queues this test covers."""
    source = REPO / "services/conversation/src/flowchat_conversation"
    named = set()
    for consumer in source.rglob("consumer.py"):
        found = re.findall(
            r"topology\.(QUEUE_[A-Z_]+|CONVERSATION_PARTITION_QUEUES)", consumer.read_text()
        )
        named |= set(found)
    queues: set[str] = set()
    for name in named:
        value = getattr(topology, name)
        queues |= set(value) if isinstance(value, tuple) else {value}
    assert queues == set(CONSUMED)


def test_every_bound_kind_has_a_sample() -> None:
    # a new binding of these queues fails here until its kinds are published below
    assert bindings_of(CONSUMED) == set(COVERED_BINDINGS)
    assert (
        topology.ExchangeBindingSpec(
            topology.EXCHANGE_CONVERSATION_PARTITIONS, topology.EXCHANGE_INBOUND, "#"
        )
        in topology.EXCHANGE_BINDINGS
    )
    # "#" on flowchat.inbound: every inbound type, in every schema version
    assert inbound_versions() == {1, 2}
    inbound = inbound_messages()
    kinds = {(m.type, m.schema_version) for m in (_inbound(b) for _, b in inbound)}
    assert kinds == {(t, v) for t in typing.get_args(InboundType) for v in inbound_versions()}
    # flowchat.events: a sample of every status the state-manager records, every field
    # the gateway publishes (Meta's user_preferences goes out as user_marketing_preferences)
    assert set(BUSINESS_DATA) == set(BUSINESS_FIELDS)
    events = event_messages()
    keys = {event_word(k) for k, _ in events}
    assert keys == (
        {s.value for s in Status}
        | set(BUSINESS_FIELDS)
        | set(HANDOFF_KINDS)
        | set(RELAY_FACT_KINDS)
        | {COMMAND_REJECTED}
        | set(RELAY_OWN_KINDS)
    )
    assert all(topic_matches("#", key) for key, _ in inbound)
    # conversation.events: only the keys the service acts on, each with a sample
    assert "#" not in EVENT_PATTERNS
    assert set(EVENT_PATTERNS) == set(topology.CONVERSATION_EVENT_PATTERNS)
    for pattern in EVENT_PATTERNS:
        assert any(topic_matches(pattern, key) for key, _ in events), pattern
    bound = {event_word(k) for k, _ in event_messages(bound_only=True)}
    # nothing it uses is lost: every status the campaign funnel counts (sent, delivered,
    # read, played as read) and failed (funnel, opt-outs on 131050, automatic pauses);
    # the two business fields it acts on; both hand-off kinds
    assert bound == (
        {*FUNNEL_STATUSES, "failed"}
        | {"message_template_status_update", "user_marketing_preferences"}
        | set(HANDOFF_KINDS)
    )
    assert {"queued", "accepted", "parked", COMMAND_REJECTED}.isdisjoint(bound)
    # a bot reply's statuses are not routed to it, but for a failure (opt-outs)
    replies = [k for k, _ in event_messages(bound_only=True) if k.count(".") == 2]
    assert {event_word(k) for k in replies} & {s.value for s in Status} == {"failed"}
    # the "#" binding of earlier versions is removed when the topology is declared
    retired = {(b.queue, b.exchange, b.routing_key) for b in topology.RETIRED_BINDINGS}
    assert (topology.QUEUE_CONVERSATION_EVENTS, topology.EXCHANGE_EVENTS, "#") in retired


def test_topic_match_is_rabbitmq_s() -> None:
    assert topic_matches("#", "t.a.text")
    assert topic_matches("*.*", "t.a")
    assert not topic_matches("*.*", "t.a.bulk")
    assert topic_matches("*.*.bulk", "t.a.bulk")
    assert not topic_matches("*.*.message_template_status_update", "t.a.read")


def test_every_bound_queue_has_a_consumer_outside_the_gateway() -> None:
    """Each queue with a binding is consumed by a service that tests its kinds; the
    gateway only publishes (no consumer of its own)."""
    this = str(Path(__file__).resolve().relative_to(REPO))
    kind_tests = {
        topology.QUEUE_CONVERSATION_INBOUND: this,
        **dict.fromkeys(topology.CONVERSATION_PARTITION_QUEUES, this),
        topology.QUEUE_CONVERSATION_EVENTS: this,
        topology.QUEUE_SENDER_EVENTS: "services/sender/tests/test_sender_event_kinds.py",
        topology.QUEUE_STATE_STATUS: "services/state-manager/tests/test_state_event_kinds.py",
        # one kind each (outbound_command): the sender's own tests send every content type
        topology.QUEUE_OUTBOUND: "services/sender/tests",
        topology.QUEUE_OUTBOUND_BULK: "services/sender/tests",
        topology.QUEUE_RELAY_EVENTS: "services/relay/tests/test_relay_event_kinds.py",
        topology.QUEUE_RELAY_INBOUND: "services/relay/tests/test_relay_event_kinds.py",
        # declared by the inbox itself (INBOX_BINDINGS)
        topology.QUEUE_INBOX_HISTORY: "services/inbox/tests/test_inbox_event_kinds.py",
        # one kind each (erasure_requested): every storing service's eraser, end to end
        **{q.name: "tests/test_e2e_privacy.py" for q in topology.PRIVACY_QUEUES.values()},
    }
    bindings = (
        *topology.ALL_BINDINGS,
        *topology.CONVERSATION_PARTITION_BINDINGS,
        *topology.INBOX_BINDINGS,
        *topology.RELAY_BINDINGS,
    )
    assert {b.queue for b in bindings} == set(kind_tests)
    for path in kind_tests.values():
        assert (REPO / path).exists(), path
    gateway = REPO / "services/gateway/src"
    consumers = [p for p in gateway.rglob("*.py") if ".consume(" in p.read_text()]
    assert consumers == []


def _inbound(body: bytes) -> InboundMessage | InboundMessageV2:
    return inbound_message_in(body)


# --------------------------------------------------------------------- the running service


def tenant_stub() -> FastAPI:
    app = FastAPI()

    @app.post("/internal/v1/api-keys/verify")
    async def verify() -> JSONResponse:
        return JSONResponse({"error": {"code": "not_found", "message": "", "details": []}}, 404)

    return app


def counted(counter: Any, *labels: str) -> float:
    return float(counter.labels(*labels)._value.get())


@pytest.fixture
async def channel(amqp_url: str) -> AsyncIterator[Any]:
    async with open_channel(amqp_url) as opened:
        yield opened


async def run_through_the_service(
    channel: Any,
    settings: Settings,
    queue: str,
    exchange_name: str,
    messages: list[tuple[str, bytes]],
    routed: int | None = None,
) -> Counter[str]:
    """Publish ``messages`` to the running service and wait until each is consumed (the
    ``routed`` first ones, when only those are bound to ``queue``); the fates of this
    queue's messages meanwhile."""
    before, retries_before = fates(queue), handler_retries(queue)
    async with serve(create_app(settings)) as base, httpx.AsyncClient(base_url=base) as http:

        async def ready() -> bool:
            try:
                return (await http.get("/readyz")).status_code == 200
            except httpx.TransportError:  # a busy machine: the app starting up answers late
                return False

        await eventually(ready, timeout_s=30)
        exchange = await channel.get_exchange(exchange_name)
        for key, body in messages:
            await exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=key,
            )

        async def consumed() -> bool:
            return (fates(queue) - before).total() >= (len(messages) if routed is None else routed)

        await eventually(consumed, timeout_s=60)
        await asyncio.sleep(1.0)  # a requeued message would be redelivered meanwhile
    # the service is gone: an unacked message is back in its queue now
    assert await depth(channel, queue) == 0
    assert await depth(channel, topology.QUEUE_POISON) == 0
    assert handler_retries(queue) == retries_before
    return fates(queue) - before


def settings_for(amqp_url: str, redis_url: str, database_url: str, tenant_url: str) -> Settings:
    return Settings(
        AMQP_URL=amqp_url,
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        FLOWCHAT_TENANT_URL=tenant_url,
        FLOWCHAT_SERVICE_TOKEN=TOKEN,
    )


async def test_every_inbound_type_of_both_versions_is_acked_once(
    channel: Any, amqp_url: str, redis_url: str, database_url: str
) -> None:
    messages = inbound_messages()
    kinds = [_inbound(body).type for _, body in messages]
    ignored = sum(1 for k in kinds if k in IGNORED_TYPES)
    outcome = conversation_metrics.INBOUND
    ignored_before = counted(outcome, "ignored")
    handled_before = counted(outcome, "handled")
    async with serve(tenant_stub()) as tenant_url:
        settings = settings_for(amqp_url, redis_url, database_url, tenant_url)
        got = await run_through_the_service(
            channel,
            settings,
            topology.QUEUE_CONVERSATION_INBOUND,
            topology.EXCHANGE_INBOUND,
            messages,
        )
    # each acked exactly once: no poison, no dead letter, no requeue, no redelivery
    assert got == Counter({"ack": len(messages)})
    # the bot answered what it reads and let alone what it does not use
    assert counted(outcome, "ignored") - ignored_before == ignored
    assert counted(outcome, "handled") - handled_before == len(messages) - ignored


async def test_every_status_and_business_event_is_acked_once(
    channel: Any, amqp_url: str, redis_url: str, database_url: str
) -> None:
    # every event is published; only the bound ones reach the service (bound first, so
    # the wait is for exactly those)
    every = event_messages()
    routed = [any(topic_matches(p, key) for p in EVENT_PATTERNS) for key, _ in every]
    bound = [m for m, r in zip(every, routed, strict=True) if r]
    messages = bound + [m for m, r in zip(every, routed, strict=True) if not r]
    # an earlier version's "#" binding is there: the service removes it when it starts
    exchange = await channel.declare_exchange(
        topology.EXCHANGE_EVENTS, aio_pika.ExchangeType.TOPIC, durable=True
    )
    spec = next(q for q in topology.ALL_QUEUES if q.name == topology.QUEUE_CONVERSATION_EVENTS)
    old = await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments)
    await old.bind(exchange, "#")
    events = conversation_metrics.CAMPAIGN_EVENTS
    statuses = {*FUNNEL_STATUSES, "failed"}
    watched = {
        ("status", "campaign"): len(statuses),
        ("template_status", "handled"): 1,
        ("marketing_preferences", "handled"): 1,
        ("business", "ignored"): 0,
        ("handoff_resolved", "none"): 1,
    }
    before = {labels: counted(events, *labels) for labels in watched}
    async with serve(tenant_stub()) as tenant_url:
        settings = settings_for(amqp_url, redis_url, database_url, tenant_url)
        got = await run_through_the_service(
            channel,
            settings,
            topology.QUEUE_CONVERSATION_EVENTS,
            topology.EXCHANGE_EVENTS,
            messages,
            routed=len(bound),
        )
    # the bound ones each acked once, none of the others delivered at all
    assert len(bound) < len(messages)
    assert got == Counter({"ack": len(bound)})
    assert {labels: counted(events, *labels) - before[labels] for labels in watched} == watched
