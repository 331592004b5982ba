"""Every kind of message bound to ``inbox.history`` is handled and acked (real RabbitMQ
and PostgreSQL): the guard issue 21 asks of every consumer (the conversation service's is
``services/conversation/tests/test_conversation_event_kinds.py``).

The inbox declares its queue and bindings itself (``topology.INBOX_QUEUES`` and
``INBOX_BINDINGS``):

- ``#`` on ``flowchat.inbound``: one of every :data:`~flowchat_contracts.InboundType` in
  both schema versions;
- ``#`` on ``flowchat.outbound``: one command of every content type in every category
  (marketing goes on the bulk lane, the rest on the transactional one);
- ``*.*.<status>`` on ``flowchat.events`` for the statuses it keeps, and
  ``*.*.handoff_requested``.

The kinds are derived from the contracts and the publishers' vocabularies: every kind a
publisher puts on those exchanges either matches a binding and has a sample here, or
matches none (asserted), so a new kind or binding without a sample fails
:func:`test_every_bound_kind_has_a_sample`. One of each goes through the running inbox:
each acked exactly once, nothing in ``flowchat.poison``, no handler retry, nothing left in
the queue, and each recorded in the history.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import typing
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from inbox_testkit import Kit
from prometheus_client import REGISTRY

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
    Media,
    OutboundCommand,
    OutboundContent,
    ProviderError,
    Reply,
    inbound_message_in,
    topology,
)
from flowchat_contracts.models import MessageCategory
from flowchat_gateway.events import BUSINESS_FIELDS
from flowchat_platform.testing import eventually
from flowchat_state_manager.state import Status

QUEUE = topology.QUEUE_INBOX_HISTORY
ACCOUNT = "acc1"

# --------------------------------------------------------------------- the kinds


def inbound_versions() -> set[int]:
    union = typing.get_args(AnyInboundMessage)[0]
    models = [typing.get_args(member)[0] for member in typing.get_args(union)]
    return {m.model_fields["schema_version"].default for m in models}


def content_types() -> dict[str, type]:
    """Every outbound content ``type`` and its model (``OutboundContent``'s members)."""
    union = typing.get_args(OutboundContent)[0]
    out: dict[str, type] = {}
    for model in typing.get_args(union):
        for value in typing.get_args(model.model_fields["type"].annotation):
            out[value] = model
    return out


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


def bound(exchange: str, key: str) -> bool:
    return any(
        b.exchange == exchange and topic_matches(b.routing_key, key)
        for b in topology.INBOX_BINDINGS
        if b.queue == QUEUE
    )


#: The last word of every key a publisher puts on ``flowchat.events``: the
#: state-manager's statuses, the gateway's business fields, the hand-offs.
EVENT_KINDS = (
    {s.value for s in Status}
    | set(BUSINESS_FIELDS)
    | {topology.HANDOFF_REQUESTED, topology.HANDOFF_RESOLVED}
)

_n = itertools.count(1)


def bsuid(n: int) -> str:
    return f"US.{13491208655302750000 + n}"


def inbound_sample(tenant: str, kind: str, version: int) -> InboundMessage | InboundMessageV2:
    n = next(_n)
    phone = f"1556{n:07d}"
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
                response={"flow_token": "tok"},
                response_json='{"flow_token": "tok"}',
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
        "tenant_id": tenant,
        "account_id": ACCOUNT,
        "provider": "meta",
        "provider_message_id": f"wamid.kind{n}",
        "phone_number_id": "pn1",
        "customer_name": "Ada",
        "type": kind,
        "timestamp": now,
        **fields,
    }
    if version == 1:
        customer = CustomerIdentity(wa_id=phone, user_id=bsuid(n))
        return InboundMessage(**common, customer_wa_id=phone, customer=customer)
    return InboundMessageV2(**common, customer=CustomerIdentity(user_id=bsuid(n)))


def content_sample(kind: str) -> dict[str, Any]:
    match kind:
        case "text":
            return {"type": kind, "body": "hi there"}
        case "image" | "video" | "audio" | "document" | "sticker":
            return {"type": kind, "media_id": "m1"}
        case "template":
            return {"type": kind, "name": "order_update", "language": "en"}
        case "interactive_buttons":
            return {"type": kind, "body": "Pick", "buttons": [{"id": "a", "title": "A"}]}
        case "interactive_list":
            rows = [{"id": "r", "title": "R"}]
            return {"type": kind, "body": "Pick", "button": "Menu", "sections": [{"rows": rows}]}
        case "reaction":
            return {"type": kind, "message_id": "wamid.x", "emoji": "👍"}
        case "location":
            return {"type": kind, "latitude": 1.0, "longitude": 2.0}
        case "contacts":
            return {"type": kind, "contacts": [{"name": {"formatted_name": "Bo"}}]}
    raise AssertionError(f"no sample for outbound content {kind}: add one")


def outbound_samples(tenant: str) -> list[OutboundCommand]:
    out = []
    for category in typing.get_args(MessageCategory):
        for kind in sorted(content_types()):
            n = next(_n)
            out.append(
                OutboundCommand.model_validate(
                    {
                        "tenant_id": tenant,
                        "account_id": ACCOUNT,
                        "idempotency_key": f"k{n}",
                        "message_id": f"out{n}",
                        "to": f"1557{n:07d}",
                        "category": category,
                        "content": content_sample(kind),
                    }
                )
            )
    return out


#: ``(exchange, routing key, body)``
Sample = tuple[str, str, bytes]


def samples(tenant: str) -> tuple[list[Sample], list[str], dict[str, int]]:
    """Everything that can arrive on ``inbox.history``, the ``flowchat.events`` kinds it
    covers, and how many of each history kind (inbound, outbound, status, handoff)."""
    out: list[Sample] = []
    counts: Counter[str] = Counter()
    for version in sorted(inbound_versions()):
        for kind in typing.get_args(InboundType):
            message = inbound_sample(tenant, kind, version)
            key = topology.inbound_routing_key(tenant, ACCOUNT, kind)
            out.append((topology.EXCHANGE_INBOUND, key, message.model_dump_json().encode()))
            counts["inbound"] += 1
    commands = outbound_samples(tenant)
    for command in commands:
        key = topology.outbound_routing_key(tenant, ACCOUNT, command.category)
        body = command.model_dump_json(exclude_none=True).encode()
        out.append((topology.EXCHANGE_OUTBOUND, key, body))
        counts["outbound"] += 1
    events = []
    for kind in sorted(EVENT_KINDS):
        key = topology.events_routing_key(tenant, ACCOUNT, kind)
        if not bound(topology.EXCHANGE_EVENTS, key):
            continue
        events.append(kind)
        if kind == topology.HANDOFF_REQUESTED:
            customer = CustomerIdentity(wa_id="15551230001")
            handoff = HandoffRequested(tenant_id=tenant, account_id=ACCOUNT, customer=customer)
            body = handoff.model_dump_json(exclude_none=True).encode()
            counts["handoff"] += 1
        else:
            assert kind in {s.value for s in Status}, f"no sample for event {kind}: add one"
            body = orjson.dumps(Kit.status(tenant, commands[0].message_id, kind, ACCOUNT))
            counts["status"] += 1
        out.append((topology.EXCHANGE_EVENTS, key, body))
    return out, events, dict(counts)


# --------------------------------------------------------------------- what is covered


def test_every_bound_kind_has_a_sample() -> None:
    bindings = {(b.exchange, b.routing_key) for b in topology.INBOX_BINDINGS if b.queue == QUEUE}
    assert {q.name for q in topology.INBOX_QUEUES} == {QUEUE}
    published, events, counts = samples("tnt")
    # every binding lets at least one sample through, every sample is bound
    for exchange, pattern in bindings:
        assert any(e == exchange and topic_matches(pattern, k) for e, k, _ in published), pattern
    assert all(bound(e, k) for e, k, _ in published)
    # flowchat.events: the statuses the inbox keeps and the hand-off it opens; the rest
    # (queued, business fields, handoff_resolved) matches no binding
    assert set(events) == set(topology.INBOX_STATUS_KEYS) | {topology.HANDOFF_REQUESTED}
    assert HandoffResolved.model_fields["kind"].default not in events
    # flowchat.inbound: every type in every version; flowchat.outbound: both lanes
    assert inbound_versions() == {1, 2}
    inbound = [inbound_message_in(b) for e, _, b in published if e == topology.EXCHANGE_INBOUND]
    kinds = {(m.type, m.schema_version) for m in inbound}
    assert kinds == {(t, v) for t in typing.get_args(InboundType) for v in inbound_versions()}
    lanes = {k.count(".") for e, k, _ in published if e == topology.EXCHANGE_OUTBOUND}
    assert lanes == {1, 2}
    assert counts["outbound"] == len(content_types()) * len(typing.get_args(MessageCategory))


# --------------------------------------------------------------------- the running inbox


def fates() -> Counter[str]:
    out: Counter[str] = Counter()
    for metric in REGISTRY.collect():
        if metric.name != "flowchat_amqp_consumed":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("queue") == QUEUE:
                out[sample.labels["fate"]] += int(sample.value)
    return out


def handler_retries() -> float:
    value = REGISTRY.get_sample_value(
        "flowchat_amqp_handler_retries_total", {"service": "inbox", "queue": QUEUE}
    )
    return value or 0.0


def ingested() -> Counter[str]:
    out: Counter[str] = Counter()
    for metric in REGISTRY.collect():
        if metric.name != "flowchat_inbox_ingested":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                out[sample.labels["kind"]] += int(sample.value)
    return out


async def depth(kit: Kit, queue: str) -> int:
    declared = await kit.channel.declare_queue(queue, passive=True)
    return int(declared.declaration_result.message_count or 0)


@pytest.mark.asyncio(loop_scope="module")
async def test_every_bound_kind_is_acked_once_and_recorded(kit: Kit) -> None:
    tenant = kit.new_tenant()
    published, _, counts = samples(tenant)
    before, retries_before, ingested_before = fates(), handler_retries(), ingested()
    for exchange, key, body in published:
        await kit.publisher.publish(exchange, key, body, mandatory=False)
    await eventually(lambda: (fates() - before).total() >= len(published), timeout_s=60)
    await asyncio.sleep(1.0)  # a requeued message would be redelivered meanwhile
    # each acked exactly once: no poison, no dead letter, no requeue, no redelivery
    assert fates() - before == Counter({"ack": len(published)})
    assert handler_retries() == retries_before
    assert await depth(kit, QUEUE) == 0
    assert await depth(kit, topology.QUEUE_POISON) == 0
    # each became its history op (none ignored)
    assert dict(ingested() - ingested_before) == counts
