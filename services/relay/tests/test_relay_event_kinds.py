"""Every kind of message bound to the relay's queues is handled and acked (real
RabbitMQ and PostgreSQL): the guard issue 21 asks of every consumer (the conversation
service's is ``services/conversation/tests/test_conversation_event_kinds.py``, the
state-manager's ``services/state-manager/tests/test_state_event_kinds.py``).

The relay consumes two queues:

- ``relay.events`` ← ``flowchat.events``, bound to the keys it turns into events
  (``topology.RELAY_EVENT_KEYS``): the state-manager's ``message_status_changed`` (key
  ``…<status>``, one per status it records), the hand-offs (``handoff_requested`` from
  the conversation service, ``handoff_resolved`` from the inbox), the conversation
  service's ``order_changed`` / ``campaign_changed`` and the gateway's template-status and
  quality ``business_event``; the other business fields and rejected commands are not
  bound (the relay makes no event of them);
- ``relay.inbound`` ← ``flowchat.inbound``: the gateway's inbound messages, one of every
  :data:`~flowchat_contracts.InboundType` in both schema versions (v1 with a phone
  number, v2 from a customer known only by a BSUID).

The kinds are derived from the contracts and the publishers' own vocabularies (the
samples are ``tests/kindskit.py``'s), so a new inbound type, status, business field,
event kind or binding without a sample fails :func:`test_every_bound_kind_has_a_sample`.
One message of each goes through the running relay with an endpoint subscribed to every
event type: each is acked exactly once (no requeue, no handler retry, no redelivery,
nothing left in the queue once the relay is gone), nothing lands in ``flowchat.poison``;
every status change, inbound message, hand-off, order and campaign fact and the
template-status and quality business events become their webhook event (stored, one
delivery, delivered to the endpoint) and the other kinds none.
"""

from __future__ import annotations

import asyncio
import re
import typing
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from relay_testkit import PHONE_NUMBER_ID, Receiver, StartRelay, wait_for

from flowchat_contracts import InboundType, inbound_message_in, topology
from flowchat_contracts.command_events import COMMAND_REJECTED
from flowchat_contracts.tenant_events import ALL_EVENT_TYPES
from flowchat_gateway.events import BUSINESS_FIELDS, BusinessEvent
from flowchat_relay.events import BUSINESS_EVENT_FIELDS
from flowchat_state_manager.state import Status
from kindskit import (
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

# the tenant stub of the kit knows this account (the Meta shape needs it)
TENANT, ACCOUNT = "tnt_a", "acc_1"
REPO = Path(__file__).resolve().parents[3]

#: The queues the relay consumes.
CONSUMED = (topology.QUEUE_RELAY_EVENTS, topology.QUEUE_RELAY_INBOUND)
#: What each binding of those queues lets through, as this test covers it.
COVERED_BINDINGS = {
    (topology.QUEUE_RELAY_INBOUND, topology.EXCHANGE_INBOUND, "#"): "inbound",
    **{
        (topology.QUEUE_RELAY_EVENTS, topology.EXCHANGE_EVENTS, f"*.*.{s.value}.#"): "events"
        for s in Status
    },
    **{
        (topology.QUEUE_RELAY_EVENTS, topology.EXCHANGE_EVENTS, f"*.*.{k}"): "events"
        for k in (
            *HANDOFF_KINDS,
            *RELAY_FACT_KINDS,
            *sorted(BUSINESS_EVENT_FIELDS),
        )
    },
}

# --------------------------------------------------------------------- the kinds

#: A published message: routing key, body, and the webhook event id it must become
#: (None: no webhook event).
Sample = tuple[str, bytes, str | None]


def inbound_messages() -> list[Sample]:
    """One inbound message of every type in every version: each a ``message.received``."""
    published = every_inbound(tenant=TENANT, account=ACCOUNT, phone_number_id=PHONE_NUMBER_ID)
    return [(p.key, p.body, f"evt_{p.model.event_id}") for p in published]


def event_messages(*, bound_only: bool = True) -> list[Sample]:
    """Every status change, hand-off, order / campaign fact, business event and rejected
    command on ``flowchat.events``; with ``bound_only`` (the default) only those routed to
    the relay. Business events other than template status and quality, and rejected
    commands and the relay's own endpoint_disabled, make no webhook event."""
    out: list[Sample] = []
    patterns = [p for (q, _, p) in COVERED_BINDINGS if q == topology.QUEUE_RELAY_EVENTS]
    for key, body, model in every_event(tenant=TENANT, account=ACCOUNT):
        if bound_only and not any(topic_matches(p, key) for p in patterns):
            continue
        webhook = getattr(model, "event_id", None)
        if isinstance(model, BusinessEvent) and model.field not in BUSINESS_EVENT_FIELDS:
            webhook = None
        if event_word(key) in {COMMAND_REJECTED, *RELAY_OWN_KINDS}:
            webhook = None  # no webhook event (endpoint_disabled: the relay's own fact)
        out.append((key, body, f"evt_{webhook}" if webhook else None))
    return out


# --------------------------------------------------------------------- what is covered


def test_the_relay_consumes_exactly_the_covered_queues() -> None:
    source = REPO / "services/relay/src/flowchat_relay"
    named = set()
    for module in source.rglob("*.py"):
        text = module.read_text()
        if ".consume(" in text:
            named |= set(re.findall(r"topology\.(QUEUE_[A-Z_]+)", text))
    assert {getattr(topology, n) for n in named} == set(CONSUMED)


def test_every_bound_kind_has_a_sample() -> None:
    # a new binding of these queues fails here until its kinds are published below
    assert bindings_of(CONSUMED) == set(COVERED_BINDINGS)
    # "#" on flowchat.inbound: every inbound type, in every schema version
    assert inbound_versions() == {1, 2}
    inbound = inbound_messages()
    kinds = {(m.type, m.schema_version) for m in (inbound_message_in(b) for _, b, _ in inbound)}
    assert kinds == {(t, v) for t in typing.get_args(InboundType) for v in inbound_versions()}
    # flowchat.events: every status, the hand-offs, the order / campaign facts and the two
    # business fields the relay turns into events are bound; the rest is not
    every = event_messages(bound_only=False)
    keys = {event_word(k) for k, _, _ in every}
    assert keys == (
        {s.value for s in Status}
        | set(BUSINESS_FIELDS)
        | set(HANDOFF_KINDS)
        | set(RELAY_FACT_KINDS)
        | {COMMAND_REJECTED}
        | set(RELAY_OWN_KINDS)
    )
    assert {m.model_fields["kind"].default for m in HANDOFF_KINDS.values()} == set(HANDOFF_KINDS)
    bound = {event_word(k) for k, _, _ in event_messages()}
    assert bound == (
        {s.value for s in Status}
        | set(HANDOFF_KINDS)
        | set(RELAY_FACT_KINDS)
        | set(BUSINESS_EVENT_FIELDS)
    )
    patterns = [p for (q, _, p) in COVERED_BINDINGS if q == topology.QUEUE_RELAY_EVENTS]
    for key, _, event_id in every:
        routed = any(topic_matches(p, key) for p in patterns)
        assert routed == (event_word(key) in topology.RELAY_EVENT_KEYS), key
        assert routed or event_id is None  # nothing the relay turns into an event is lost
    assert all(topic_matches("#", key) for key, _, _ in inbound)


# --------------------------------------------------------------------- the running relay


@pytest.fixture
async def channel(amqp_url: str) -> AsyncIterator[Any]:
    async with open_channel(amqp_url) as opened:
        yield opened


async def run_through_the_relay(
    channel: Any, start_relay: StartRelay, queue: str, exchange: str, messages: list[Sample]
) -> None:
    """Publish ``messages`` to the running relay with an endpoint subscribed to every
    event type; each is acked once, and exactly the expected webhook events are stored,
    each with one delivery, and delivered."""
    expected = {event_id for _, _, event_id in messages if event_id is not None}
    before, retries_before = fates(queue), handler_retries(queue)
    receiver = Receiver()
    async with receiver.running(), start_relay() as h:
        endpoint = await h.create_endpoint(receiver.url, list(ALL_EVENT_TYPES))
        for key, body, _ in messages:
            await h.publisher.publish(exchange, key, body, mandatory=False)

        def consumed() -> bool:
            return (fates(queue) - before).total() >= len(messages)

        await wait_for(consumed, timeout_s=60)
        await wait_for(lambda: set(receiver.ids()) >= expected, timeout_s=60)
        await asyncio.sleep(1.0)  # a requeued message would be redelivered meanwhile
        stored = {r["id"] for r in await h.db.fetch("SELECT id FROM events")}
        deliveries = await h.db.fetch(
            "SELECT event_id, status FROM deliveries WHERE endpoint_id = $1", endpoint["id"]
        )
    # the relay is gone: an unacked message is back in its queue now
    assert await depth(channel, queue) == 0
    assert await depth(channel, topology.QUEUE_POISON) == 0
    assert handler_retries(queue) == retries_before
    # each acked exactly once: no poison, no dead letter, no requeue, no redelivery
    assert fates(queue) - before == Counter({"ack": len(messages)})
    # the webhook events: one per tenant fact, none for the rest
    assert stored == expected
    assert Counter(d["event_id"] for d in deliveries) == Counter(expected)
    assert {d["status"] for d in deliveries} == {"delivered"}
    assert sorted(receiver.ids()) == sorted(expected)


async def test_every_inbound_type_of_both_versions_is_acked_once(
    channel: Any, start_relay: StartRelay
) -> None:
    messages = inbound_messages()
    assert all(event_id for _, _, event_id in messages)
    await run_through_the_relay(
        channel, start_relay, topology.QUEUE_RELAY_INBOUND, topology.EXCHANGE_INBOUND, messages
    )


async def test_every_status_business_and_handoff_event_is_acked_once(
    channel: Any, start_relay: StartRelay
) -> None:
    messages = event_messages()
    # each status twice: a campaign message's (key ….campaign) and a bot reply's
    statuses = 2 * len(Status)
    expected = statuses + len(HANDOFF_KINDS) + len(RELAY_FACT_KINDS) + len(BUSINESS_EVENT_FIELDS)
    assert sum(1 for *_, event_id in messages if event_id) == expected
    await run_through_the_relay(
        channel, start_relay, topology.QUEUE_RELAY_EVENTS, topology.EXCHANGE_EVENTS, messages
    )
