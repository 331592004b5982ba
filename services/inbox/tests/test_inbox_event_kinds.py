"""Every kind of message bound to ``inbox.history`` is handled and acked (real RabbitMQ
and PostgreSQL): the guard issue 21 asks of every consumer (the conversation service's is
``services/conversation/tests/test_conversation_event_kinds.py``).

The inbox declares its queue and bindings itself (``topology.INBOX_QUEUES`` and
``INBOX_BINDINGS``):

- ``#`` on ``flowchat.inbound``: one of every :data:`~flowchat_contracts.InboundType` in
  both schema versions;
- ``#`` on ``flowchat.outbound``: one command of every content type in every category
  (marketing goes on the bulk lane, the rest on the transactional one);
- ``*.*.<status>.#`` on ``flowchat.events`` for the statuses it keeps (a bot reply's
  ``<tenant>.<account>.<status>`` and a campaign message's ``….<status>.campaign``:
  routing keys v2), and ``*.*.handoff_requested``.

The kinds are derived from the contracts and the publishers' vocabularies (the inbound
samples and the kinds of ``flowchat.events`` are ``tests/kindskit.py``'s): every kind a
publisher puts on those exchanges either matches a binding and has a sample here, or
matches none (asserted), so a new kind or binding without a sample fails
:func:`test_every_bound_kind_has_a_sample`. One of each goes through the running inbox:
each acked exactly once, nothing in ``flowchat.poison``, no handler retry, nothing left in
the queue, and each recorded in the history.
"""

from __future__ import annotations

import asyncio
import itertools
import typing
from collections import Counter
from typing import Any

import orjson
import pytest
from inbox_testkit import Kit
from prometheus_client import REGISTRY

from flowchat_contracts import (
    HandoffResolved,
    InboundType,
    OutboundCommand,
    OutboundContent,
    inbound_message_in,
    topology,
)
from flowchat_contracts.models import MessageCategory
from flowchat_platform.testing import eventually
from flowchat_state_manager.state import Status
from kindskit import EVENT_KINDS, every_inbound, handoff_sample, inbound_versions, topic_matches

QUEUE = topology.QUEUE_INBOX_HISTORY
ACCOUNT = "acc1"

# --------------------------------------------------------------------- the kinds


def content_types() -> dict[str, type]:
    """Every outbound content ``type`` and its model (``OutboundContent``'s members)."""
    union = typing.get_args(OutboundContent)[0]
    out: dict[str, type] = {}
    for model in typing.get_args(union):
        for value in typing.get_args(model.model_fields["type"].annotation):
            out[value] = model
    return out


def bound(exchange: str, key: str) -> bool:
    return any(
        b.exchange == exchange and topic_matches(b.routing_key, key)
        for b in topology.INBOX_BINDINGS
        if b.queue == QUEUE
    )


_n = itertools.count(1)


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
        case "cta_url":
            return {"type": kind, "body": "Pay", "display_text": "Pay now", "url": "https://p.x/1"}
        case "product":
            return {"type": kind, "catalog_id": "c1", "product_retailer_id": "sku-1"}
        case "product_list":
            section = {"title": "Tools", "product_retailer_ids": ["sku-1", "sku-2"]}
            return {
                "type": kind,
                "catalog_id": "c1",
                "header": "Ours",
                "body": "Pick",
                "sections": [section],
            }
        case "catalog_message":
            return {"type": kind, "body": "Browse", "thumbnail_product_retailer_id": "sku-1"}
        case "flow":
            return {
                "type": kind,
                "flow_id": "f1",
                "flow_token": "ord-1",
                "flow_cta": "Add address",
                "body": "Where to?",
            }
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
    for key, body, _ in every_inbound(tenant=tenant, account=ACCOUNT, phone_number_id="pn1"):
        out.append((topology.EXCHANGE_INBOUND, key, body))
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
            handoff = handoff_sample(kind, tenant=tenant, account=ACCOUNT)
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
    # the history, and the erasure requests (``flowchat.privacy``: tests/test_e2e_privacy.py)
    assert {q.name for q in topology.INBOX_QUEUES} == {QUEUE, topology.PRIVACY_QUEUES["inbox"].name}
    published, events, counts = samples("tnt")
    # every binding lets at least one sample through, every sample is bound
    for exchange, pattern in bindings:
        assert any(e == exchange and topic_matches(pattern, k) for e, k, _ in published), pattern
    assert all(bound(e, k) for e, k, _ in published)
    # flowchat.events: the statuses the inbox keeps and the hand-off it opens; the rest
    # (queued, business fields, handoff_resolved) matches no binding
    assert set(events) == set(topology.INBOX_STATUS_KEYS) | {topology.HANDOFF_REQUESTED}
    for status in topology.INBOX_STATUS_KEYS:  # a campaign message's too
        campaign = topology.status_event_key("tnt", ACCOUNT, status, campaign=True)
        assert bound(topology.EXCHANGE_EVENTS, campaign), campaign
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
