"""Every kind of message bound to the conversation service's queues is handled and acked
(real RabbitMQ, PostgreSQL and Redis): the guard issue 21 asks of every consumer (the
sender's is ``services/sender/tests/test_sender_event_kinds.py``, the state-manager's
``services/state-manager/tests/test_state_event_kinds.py``).

The service consumes two queues, both bound with ``#`` (every routing key):

- ``conversation.inbound`` ← ``flowchat.inbound``: the gateway's inbound messages, key
  ``<tenant>.<account>.<type>``, one of every :data:`~flowchat_contracts.InboundType`
  in both schema versions (v1 with a phone number, v2 from a customer known only by a
  BSUID);
- ``conversation.events`` ← ``flowchat.events``: the state-manager's
  ``message_status_changed`` (key ``…<status>``, one per status it records), the
  gateway's ``business_event`` (key ``…<field>``, one per field it publishes) and the
  hand-off events (``…handoff_requested``: the service's own, ignored;
  ``…handoff_resolved``: the inbox's, releases the hand-off).

The kinds are derived from the contracts and the publishers' own vocabularies, so a new
inbound type, status, business field or binding without a sample here fails
:func:`test_every_bound_kind_has_a_sample`. One message of each, published as its
publisher does, goes through the running service: each is acked exactly once (no
requeue, no handler retry, no redelivery), nothing lands in ``flowchat.poison``, and
nothing is left in the queue once the service is gone (an unacked message would be).
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
import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from flowchat_contracts import (
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
from flowchat_conversation import metrics as conversation_metrics
from flowchat_conversation.app import create_app
from flowchat_conversation.commerce.service import IGNORED_TYPES
from flowchat_conversation.settings import Settings
from flowchat_gateway.events import BUSINESS_FIELDS, BusinessEvent
from flowchat_platform import metrics as platform_metrics
from flowchat_platform.testing import eventually, serve
from flowchat_state_manager.events import MessageStatusChanged
from flowchat_state_manager.state import Status

pytestmark = pytest.mark.integration

TOKEN = "event-kinds-token-0123456789abcd"
TENANT, ACCOUNT = "tk", "ak"
REPO = Path(__file__).resolve().parents[3]

#: The queues the conversation service consumes, and the bindings each has.
CONSUMED = (topology.QUEUE_CONVERSATION_INBOUND, topology.QUEUE_CONVERSATION_EVENTS)
#: What each binding of those queues lets through, as this test covers it.
COVERED_BINDINGS = {
    (topology.QUEUE_CONVERSATION_INBOUND, topology.EXCHANGE_INBOUND, "#"): "inbound",
    (topology.QUEUE_CONVERSATION_EVENTS, topology.EXCHANGE_EVENTS, "#"): "events",
}

# --------------------------------------------------------------------- the kinds


def inbound_versions() -> set[int]:
    """The ``schema_version`` of every model the inbound decoder (``AnyInboundMessage``)
    accepts."""
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
            # a customer's new BSUID: the conversation relinks the previous ids
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
        "phone_number_id": "pn-k",
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
    """The state-manager's event for a change to ``status`` (a campaign's message)."""
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


#: Meta's ``value`` of each account-level field (what the gateway puts in ``data``).
BUSINESS_DATA: dict[str, dict[str, Any]] = {
    "message_template_status_update": {
        "event": "PAUSED",
        "message_template_id": 1001,
        "message_template_name": "promo",
        "message_template_language": "en_US",
        "reason": "NONE",
    },
    "message_template_quality_update": {
        "previous_quality_score": "GREEN",
        "new_quality_score": "YELLOW",
        "message_template_id": 1001,
        "message_template_name": "promo",
        "message_template_language": "en_US",
    },
    "template_category_update": {
        "message_template_id": 1001,
        "message_template_name": "promo",
        "message_template_language": "en_US",
        "previous_category": "UTILITY",
        "new_category": "MARKETING",
    },
    "phone_number_quality_update": {
        "display_phone_number": "15550000000",
        "event": "FLAGGED",
        "current_limit": "TIER_1K",
    },
    "phone_number_name_update": {
        "display_phone_number": "15550000000",
        "decision": "APPROVED",
        "requested_verified_name": "Acme",
    },
    "account_update": {"phone_number": "15550000000", "event": "VERIFIED_ACCOUNT"},
    "user_marketing_preferences": {
        "messaging_product": "whatsapp",
        "user_preferences": [
            {
                "user_id": bsuid(0),
                "category": "marketing_messages",
                "value": "stop",
                "timestamp": 1767225600,
            }
        ],
    },
    "user_id_update": {"user_id": {"previous": bsuid(1), "current": bsuid(2)}},
}


def business_sample(field: str) -> BusinessEvent:
    data = BUSINESS_DATA[field]
    preferences = (
        [
            MarketingPreference(
                customer=CustomerIdentity(user_id=bsuid(0), username="ada0"), value="stop"
            )
        ]
        if field == "user_marketing_preferences"
        else []
    )
    event = data.get("event")
    return BusinessEvent(
        tenant_id=TENANT,
        account_id=ACCOUNT,
        field=field,  # checked against BUSINESS_FIELDS
        event=event if isinstance(event, str) else None,
        waba_id="waba-k",
        occurred_at=datetime.now(UTC),
        data=data,
        marketing_preferences=preferences,
    )


#: The hand-off events on ``flowchat.events`` (the bot's request, the inbox's resolve).
HANDOFF_KINDS = {topology.HANDOFF_REQUESTED, topology.HANDOFF_RESOLVED}


def handoff_sample(kind: str) -> HandoffRequested | HandoffResolved:
    customer = CustomerIdentity(user_id=bsuid(next(_n)))
    if kind == topology.HANDOFF_REQUESTED:
        return HandoffRequested(
            tenant_id=TENANT, account_id=ACCOUNT, customer=customer, reason="agent"
        )
    if kind == topology.HANDOFF_RESOLVED:
        # nobody's hand-off is open: nothing to release, acked all the same
        return HandoffResolved(
            tenant_id=TENANT, account_id=ACCOUNT, customer=customer, resolved_by="agent-1"
        )
    raise AssertionError(f"no sample for hand-off event {kind}: add one")


def inbound_messages() -> list[tuple[str, bytes]]:
    """``(routing key, body)`` of one inbound message of every type in every version."""
    out = []
    for version in sorted(inbound_versions()):
        for kind in typing.get_args(InboundType):
            message = inbound_sample(kind, version)
            key = topology.inbound_routing_key(TENANT, ACCOUNT, kind)
            out.append((key, message.model_dump_json().encode()))
    return out


def event_messages() -> list[tuple[str, bytes]]:
    """``(routing key, body)`` of every status change and every business event."""
    out = []
    for status in Status:
        event = status_sample(status.value)
        key = topology.events_routing_key(TENANT, ACCOUNT, status.value)
        out.append((key, event.model_dump_json(exclude_none=True).encode()))
    for field in sorted(BUSINESS_FIELDS):
        business = business_sample(field)
        key = topology.events_routing_key(TENANT, ACCOUNT, field)
        out.append((key, business.model_dump_json().encode()))
    for kind in sorted(HANDOFF_KINDS):
        handoff = handoff_sample(kind)
        key = topology.events_routing_key(TENANT, ACCOUNT, kind)
        out.append((key, handoff.model_dump_json().encode()))
    return out


# --------------------------------------------------------------------- what is covered


def test_the_service_consumes_exactly_the_covered_queues() -> None:
    """The consumers of the service name exactly the queues this test covers."""
    source = REPO / "services/conversation/src/flowchat_conversation"
    named = set()
    for consumer in source.rglob("consumer.py"):
        named |= set(re.findall(r"topology\.(QUEUE_[A-Z_]+)", consumer.read_text()))
    assert {getattr(topology, n) for n in named} == set(CONSUMED)


def test_every_bound_kind_has_a_sample() -> None:
    # a new binding of these queues fails here until its kinds are published below
    assert bindings_of(CONSUMED) == set(COVERED_BINDINGS)
    # "#" on flowchat.inbound: every inbound type, in every schema version
    assert inbound_versions() == {1, 2}
    inbound = inbound_messages()
    kinds = {(m.type, m.schema_version) for m in (_inbound(b) for _, b in inbound)}
    assert kinds == {(t, v) for t in typing.get_args(InboundType) for v in inbound_versions()}
    # "#" on flowchat.events: every status the state-manager records, every field the
    # gateway publishes (Meta's user_preferences goes out as user_marketing_preferences)
    assert set(BUSINESS_DATA) == set(BUSINESS_FIELDS)
    events = event_messages()
    keys = {k.rsplit(".", 1)[-1] for k, _ in events}
    assert keys == {s.value for s in Status} | set(BUSINESS_FIELDS) | HANDOFF_KINDS
    for (queue, exchange, pattern), what in COVERED_BINDINGS.items():
        published = inbound if what == "inbound" else events
        assert all(topic_matches(pattern, key) for key, _ in published), (queue, exchange)


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
    }
    bindings = (*topology.ALL_BINDINGS, *topology.INBOX_BINDINGS)
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


def counted(counter: Any, *labels: str) -> float:
    return float(counter.labels(*labels)._value.get())


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


async def run_through_the_service(
    channel: Any,
    settings: Settings,
    queue: str,
    exchange_name: str,
    messages: list[tuple[str, bytes]],
) -> Counter[str]:
    """Publish ``messages`` to the running service and wait until each is consumed;
    the fates of this queue's messages meanwhile."""
    before, retries_before = fates(queue), handler_retries(queue)
    async with serve(create_app(settings)) as base, httpx.AsyncClient(base_url=base) as http:

        async def ready() -> bool:
            return (await http.get("/readyz")).status_code == 200

        await eventually(ready, timeout_s=30)
        exchange = await channel.get_exchange(exchange_name)
        for key, body in messages:
            await exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=key,
            )

        async def consumed() -> bool:
            return (fates(queue) - before).total() >= len(messages)

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
    messages = event_messages()
    events = conversation_metrics.CAMPAIGN_EVENTS
    watched = {
        ("status", "campaign"): len(Status),
        ("template_status", "handled"): 1,
        ("marketing_preferences", "handled"): 1,
        ("business", "ignored"): len(BUSINESS_FIELDS) - 2,
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
        )
    assert got == Counter({"ack": len(messages)})
    assert {labels: counted(events, *labels) - before[labels] for labels in watched} == watched
