"""Every kind of message bound to the relay's queues is handled and acked (real
RabbitMQ and PostgreSQL): the guard issue 21 asks of every consumer (the conversation
service's is ``services/conversation/tests/test_conversation_event_kinds.py``, the
state-manager's ``services/state-manager/tests/test_state_event_kinds.py``).

The relay consumes two queues, both bound with ``#`` (every routing key):

- ``relay.events`` ← ``flowchat.events``: the state-manager's ``message_status_changed``
  (key ``…<status>``, one per status it records), the gateway's ``business_event`` (key
  ``…<field>``, one per field it publishes) and the hand-offs (``handoff_requested`` from
  the conversation service, ``handoff_resolved`` from the inbox);
- ``relay.inbound`` ← ``flowchat.inbound``: the gateway's inbound messages, one of every
  :data:`~flowchat_contracts.InboundType` in both schema versions (v1 with a phone
  number, v2 from a customer known only by a BSUID).

The kinds are derived from the contracts and the publishers' own vocabularies, so a new
inbound type, status, business field, event kind or binding without a sample here fails
:func:`test_every_bound_kind_has_a_sample`. One message of each goes through the running
relay with an endpoint subscribed to every event type: each is acked exactly once (no
requeue, no handler retry, no redelivery, nothing left in the queue once the relay is
gone), nothing lands in ``flowchat.poison``; every status change and every inbound
message becomes its webhook event (stored, one delivery, delivered to the endpoint) and
the other kinds none.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import typing
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from pydantic import BaseModel
from relay_testkit import Receiver, StartRelay, wait_for

from flowchat_contracts import (
    EVENT_TYPES,
    AnyInboundMessage,
    CallPermissionReply,
    CustomerIdentity,
    FlowResponse,
    HandoffRequested,
    HandoffResolved,
    InboundMessage,
    InboundMessageV2,
    InboundType,
    Location,
    MarketingPreference,
    Media,
    ProviderError,
    Reply,
    inbound_message_in,
    topology,
)
from flowchat_gateway.events import BUSINESS_FIELDS, BusinessEvent
from flowchat_platform import metrics as platform_metrics
from flowchat_state_manager.events import MessageStatusChanged
from flowchat_state_manager.state import Status

pytestmark = pytest.mark.integration

# the tenant stub of the kit knows this account (the Meta shape needs it)
TENANT, ACCOUNT = "tnt_a", "acc_1"
REPO = Path(__file__).resolve().parents[3]

#: The queues the relay consumes.
CONSUMED = (topology.QUEUE_RELAY_EVENTS, topology.QUEUE_RELAY_INBOUND)
#: What each binding of those queues lets through, as this test covers it.
COVERED_BINDINGS = {
    (topology.QUEUE_RELAY_INBOUND, topology.EXCHANGE_INBOUND, "#"): "inbound",
    (topology.QUEUE_RELAY_EVENTS, topology.EXCHANGE_EVENTS, "#"): "events",
}
#: The other publishers' events on ``flowchat.events`` (key ``…<kind>``).
HANDOFF_KINDS = {
    topology.HANDOFF_REQUESTED: HandoffRequested,
    topology.HANDOFF_RESOLVED: HandoffResolved,
}

# --------------------------------------------------------------------- the kinds


def inbound_versions() -> set[int]:
    """The ``schema_version`` of every model the inbound decoder accepts."""
    union = typing.get_args(AnyInboundMessage)[0]
    models = [typing.get_args(member)[0] for member in typing.get_args(union)]
    return {m.model_fields["schema_version"].default for m in models}


def bindings_of(queues: tuple[str, ...]) -> set[tuple[str, str, str]]:
    return {
        (b.queue, b.exchange, b.routing_key) for b in topology.ALL_BINDINGS if b.queue in queues
    }


def topic_matches(pattern: str, key: str) -> bool:
    """RabbitMQ's topic match: ``*`` one word, ``#`` zero or more."""
    regex = (
        re.escape(pattern)
        .replace(r"\#", "#")
        .replace(r"\*", "*")
        .replace("*", r"[^.]+")
        .replace(r"\.#", r"(\..*)?")
        .replace("#", ".*")
    )
    return re.fullmatch(regex, key) is not None


_n = itertools.count(1)


def bsuid(n: int) -> str:
    return f"US.{13491208655302740000 + n}"


def inbound_sample(kind: str, version: int) -> InboundMessage | InboundMessageV2:
    """One inbound message of ``kind`` with the fields the gateway fills for it, from a
    fresh customer: version 1 shows the phone number, version 2 only a BSUID."""
    n = next(_n)
    phone = f"1555{n:07d}"
    now = datetime.now(UTC)
    fields: dict[str, Any] = {"text": None}
    match kind:
        case "text":
            fields["text"] = "hello"
        case "image" | "video" | "audio" | "document" | "sticker":
            fields["media"] = Media(id=f"media-{n}", mime_type="image/jpeg", caption="look")
        case "location":
            fields["location"] = Location(latitude=52.52, longitude=13.4, name="Shop")
        case "contacts":
            fields["contacts"] = [{"name": {"formatted_name": "Bo"}, "phones": []}]
        case "reaction":
            fields |= {"reaction_message_id": f"wamid.out{n}", "reaction_emoji": "👍"}
        case "button":
            fields["reply"] = Reply(id="reorder", title="Order again")
        case "interactive":
            fields["reply"] = Reply(id="menu", title="Menu")
        case "order":
            fields["order"] = {"catalog_id": "c1", "product_items": []}
        case "referral":
            fields |= {"text": "from the ad", "referral": {"source_type": "ad", "source_id": "9"}}
        case "system":
            fields["system"] = {"type": "user_changed_user_id", "body": "changed"}
            fields["previous_customer"] = CustomerIdentity(user_id=bsuid(10_000 + n))
        case "unsupported":
            fields["errors"] = [ProviderError(code=131051, title="Message type unknown")]
        case "flow_response":
            fields["flow"] = FlowResponse(
                name="flow",
                body="Sent",
                response={"flow_token": "tok", "size": "L"},
                response_json='{"flow_token": "tok", "size": "L"}',
            )
        case "edit":
            fields |= {"original_message_id": f"wamid.in{n}", "edited_type": "text", "text": "hi"}
        case "revoke":
            fields["original_message_id"] = f"wamid.in{n}"
        case "call_permission_reply":
            fields["call_permission"] = CallPermissionReply(
                response="accept",
                is_permanent=False,
                expiration_timestamp=now + timedelta(days=7),
                response_source="user_action",
            )
        case _:
            raise AssertionError(f"no sample for inbound type {kind}: add one")
    common: dict[str, Any] = {
        "tenant_id": TENANT,
        "account_id": ACCOUNT,
        "provider": "meta",
        "provider_message_id": f"wamid.kind{n}",
        "phone_number_id": "106540352242922",
        "customer_name": "Ada",
        "type": kind,
        "timestamp": now,
        **fields,
    }
    if version == 1:
        customer = CustomerIdentity(wa_id=phone, user_id=bsuid(n))
        return InboundMessage(**common, customer_wa_id=phone, customer=customer)
    customer = CustomerIdentity(user_id=bsuid(n), username=f"ada{n}")
    return InboundMessageV2(**common, customer=customer)


def status_sample(status: str) -> MessageStatusChanged:
    """The state-manager's event for a change to ``status``."""
    n = next(_n)
    failed = status == Status.FAILED
    return MessageStatusChanged(
        message_id=f"msg-k{n}",
        tenant_id=TENANT,
        account_id=ACCOUNT,
        status=status,
        previous_status="sent",
        provider="meta",
        provider_message_id=f"wamid.k{n}",
        recipient=bsuid(n),
        category="marketing",
        campaign_id="cmp-unknown",
        error_code=131050 if failed else None,
        error_title="marketing opt-out" if failed else None,
        timestamp=datetime.now(UTC),
    )


def business_sample(field: str) -> BusinessEvent:
    """The gateway's account-level event of ``field`` (the relay reads none of ``data``)."""
    preferences = (
        [MarketingPreference(customer=CustomerIdentity(user_id=bsuid(0)), value="stop")]
        if field == "user_marketing_preferences"
        else []
    )
    return BusinessEvent(
        tenant_id=TENANT,
        account_id=ACCOUNT,
        field=field,  # checked against BUSINESS_FIELDS
        event="FLAGGED",
        waba_id="waba-k",
        occurred_at=datetime.now(UTC),
        data={"event": "FLAGGED"},
        marketing_preferences=preferences,
    )


def handoff_sample(kind: str) -> BaseModel:
    customer = CustomerIdentity(wa_id="15551230001", user_id=bsuid(next(_n)))
    model = HANDOFF_KINDS[kind]
    return model(tenant_id=TENANT, account_id=ACCOUNT, customer=customer)


#: A published message: routing key, body, and the webhook event id it must become
#: (None: no webhook event).
Sample = tuple[str, bytes, str | None]


def inbound_messages() -> list[Sample]:
    """One inbound message of every type in every version: each a ``message.received``."""
    out: list[Sample] = []
    for version in sorted(inbound_versions()):
        for kind in typing.get_args(InboundType):
            message = inbound_sample(kind, version)
            key = topology.inbound_routing_key(TENANT, ACCOUNT, kind)
            out.append((key, message.model_dump_json().encode(), f"evt_{message.event_id}"))
    return out


def event_messages() -> list[Sample]:
    """Every status change (a ``message.status`` each), every business event and both
    hand-offs (no webhook event)."""
    out: list[Sample] = []
    for status in Status:
        event = status_sample(status.value)
        key = topology.events_routing_key(TENANT, ACCOUNT, status.value)
        body = event.model_dump_json(exclude_none=True).encode()
        out.append((key, body, f"evt_{event.event_id}"))
    for field in sorted(BUSINESS_FIELDS):
        business = business_sample(field)
        key = topology.events_routing_key(TENANT, ACCOUNT, field)
        out.append((key, business.model_dump_json().encode(), None))
    for kind in sorted(HANDOFF_KINDS):
        handoff = handoff_sample(kind)
        key = topology.events_routing_key(TENANT, ACCOUNT, kind)
        out.append((key, handoff.model_dump_json().encode(), None))
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
    # "#" on flowchat.events: every status, every business field, both hand-offs
    events = event_messages()
    keys = {k.rsplit(".", 1)[-1] for k, _, _ in events}
    assert keys == {s.value for s in Status} | set(BUSINESS_FIELDS) | set(HANDOFF_KINDS)
    assert {m.model_fields["kind"].default for m in HANDOFF_KINDS.values()} == set(HANDOFF_KINDS)
    for (queue, exchange, pattern), what in COVERED_BINDINGS.items():
        published = inbound if what == "inbound" else events
        assert all(topic_matches(pattern, key) for key, _, _ in published), (queue, exchange)


# --------------------------------------------------------------------- the running relay


def fates(queue: str) -> Counter[str]:
    """Messages of ``queue`` consumed so far, by fate (this process's counter)."""
    out: Counter[str] = Counter()
    for metric in platform_metrics.AMQP_CONSUMED.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("queue") == queue:
                out[sample.labels["fate"]] += int(sample.value)
    return out


def handler_retries(queue: str) -> float:
    total = 0.0
    for metric in platform_metrics.AMQP_HANDLER_RETRIES.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("queue") == queue:
                total += sample.value
    return total


async def depth(channel: Any, queue: str) -> int:
    declared = await channel.declare_queue(queue, passive=True)
    return int(declared.declaration_result.message_count)


@pytest.fixture
async def channel(amqp_url: str) -> AsyncIterator[Any]:
    conn = await aio_pika.connect(amqp_url)
    try:
        yield await conn.channel(publisher_confirms=True)
    finally:
        await conn.close()


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
        endpoint = await h.create_endpoint(receiver.url, list(EVENT_TYPES))
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
    # the webhook events: one per status change / inbound message, none for the rest
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
    assert sum(1 for *_, event_id in messages if event_id) == len(Status)
    await run_through_the_relay(
        channel, start_relay, topology.QUEUE_RELAY_EVENTS, topology.EXCHANGE_EVENTS, messages
    )
