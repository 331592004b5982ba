"""Samples of every kind of message the publishers put on the exchanges, for the "every
event kind" guards issue 21 asks of every consumer (the conversation service's, the
relay's and the inbox's ``test_*_event_kinds.py``).

The kinds are derived from the code, never listed by hand: the inbound types
(:data:`~flowchat_contracts.InboundType`) in every schema version the inbound decoder
accepts (:func:`inbound_versions`), the statuses the state-manager records
(:class:`~flowchat_state_manager.state.Status`), the account-level fields the gateway
publishes (:data:`~flowchat_gateway.events.BUSINESS_FIELDS`) and the hand-offs
(:data:`HANDOFF_KINDS`). A new kind without a sample fails here
(``AssertionError: no sample for …: add one``).

- :func:`every_inbound`: one inbound message of every type in every version, each
  from a fresh customer (v1 with a phone number, v2 known only by a BSUID);
- :func:`every_event`: two ``message_status_changed`` per status (a campaign message's,
  key ``<tenant>.<account>.<status>.campaign``, and a bot reply's: routing keys v2), one
  ``business_event`` per field, one event per hand-off kind, one ``order_changed`` and
  one ``campaign_changed``, a ``command_rejected``, an ``endpoint_disabled`` (key
  ``<tenant>.-.endpoint_disabled``);

each as :class:`Published` (routing key, body as its publisher encodes it, model); and
what a test watches of the consumer meanwhile: :func:`fates` and :func:`handler_retries`
of a queue (this process's counters), :func:`depth` of a queue, :func:`open_channel`;
and of a producer: :func:`watch` (what reaches ``flowchat.events`` under a kind) and
:func:`subscribe` (a tenant's endpoints subscribing to event types, as the relay writes
them).

Imported by its bare name (``from kindskit import ...``): pytest puts ``tests/`` on
``sys.path`` (``pythonpath`` in pyproject.toml), as for ``stackkit``.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import typing
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, NamedTuple, TypeVar

import aio_pika
from pydantic import BaseModel

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
    topology,
)
from flowchat_contracts.command_events import COMMAND_REJECTED, CommandRejected
from flowchat_contracts.tenant_events import (
    CAMPAIGN_CHANGED_KIND,
    ENDPOINT_DISABLED_KIND,
    NO_ACCOUNT,
    ORDER_CHANGED_KIND,
    CampaignChanged,
    CampaignData,
    EndpointDisabled,
    OrderChanged,
    OrderData,
)
from flowchat_gateway.events import BUSINESS_FIELDS, BusinessEvent
from flowchat_platform import metrics as platform_metrics
from flowchat_platform.redis import create_redis
from flowchat_platform.subscriptions import SubscriptionWriter
from flowchat_platform.testing import eventually
from flowchat_state_manager.events import MessageStatusChanged
from flowchat_state_manager.state import Status

# --------------------------------------------------------------------- the kinds


def inbound_versions() -> set[int]:
    """The ``schema_version`` of every model the inbound decoder (``AnyInboundMessage``)
    accepts."""
    union = typing.get_args(AnyInboundMessage)[0]
    models = [typing.get_args(member)[0] for member in typing.get_args(union)]
    return {m.model_fields["schema_version"].default for m in models}


#: The hand-off events on ``flowchat.events`` (the bot's request, the inbox's resolve),
#: by kind (the last word of their routing key).
HANDOFF_KINDS: dict[str, type[HandoffRequested] | type[HandoffResolved]] = {
    topology.HANDOFF_REQUESTED: HandoffRequested,
    topology.HANDOFF_RESOLVED: HandoffResolved,
}

#: The conversation service's facts published for the relay alone (only while some
#: endpoint subscribes), by kind (the last word of their routing key).
RELAY_FACT_KINDS: dict[str, type[OrderChanged] | type[CampaignChanged]] = {
    ORDER_CHANGED_KIND: OrderChanged,
    CAMPAIGN_CHANGED_KIND: CampaignChanged,
}

#: The relay's own facts (tenant-level: the key's account word is ``-``), by kind.
RELAY_OWN_KINDS: dict[str, type[EndpointDisabled]] = {ENDPOINT_DISABLED_KIND: EndpointDisabled}


def event_word(key: str) -> str:
    """The word of a ``flowchat.events`` key that names its kind (the third: a campaign
    message's status key has a fourth, ``campaign``)."""
    return key.split(".")[2]


#: The kind word of every key a publisher puts on ``flowchat.events``: the
#: state-manager's statuses, the gateway's business fields, the hand-offs, the order and
#: campaign facts, the sender's rejected commands, the relay's disabled endpoints.
EVENT_KINDS: frozenset[str] = frozenset(
    {s.value for s in Status}
    | set(BUSINESS_FIELDS)
    | set(HANDOFF_KINDS)
    | set(RELAY_FACT_KINDS)
    | {COMMAND_REJECTED}
    | set(RELAY_OWN_KINDS)
)


def bindings_of(queues: tuple[str, ...]) -> set[tuple[str, str, str]]:
    """``(queue, exchange, routing key)`` of every binding of ``queues``."""
    return {
        (b.queue, b.exchange, b.routing_key)
        for b in (
            *topology.ALL_BINDINGS,
            *topology.CONVERSATION_PARTITION_BINDINGS,
            *topology.RELAY_BINDINGS,
        )
        if b.queue in queues
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


# --------------------------------------------------------------------- the samples

_n = itertools.count(1)


def bsuid(n: int) -> str:
    return f"US.{13491208655302740000 + n}"


def inbound_sample(
    kind: str, version: int, *, tenant: str, account: str, phone_number_id: str
) -> InboundMessage | InboundMessageV2:
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
        "tenant_id": tenant,
        "account_id": account,
        "provider": "meta",
        "provider_message_id": f"wamid.kind{n}",
        "phone_number_id": phone_number_id,
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


def status_sample(
    status: str, *, tenant: str, account: str, campaign: bool = True
) -> MessageStatusChanged:
    """The state-manager's event for a change to ``status`` (a campaign's message, or
    with ``campaign=False`` a bot reply's)."""
    n = next(_n)
    failed = status == Status.FAILED
    return MessageStatusChanged(
        message_id=f"msg-k{n}",
        tenant_id=tenant,
        account_id=account,
        status=status,
        previous_status="sent",
        provider="meta",
        provider_message_id=f"wamid.k{n}",
        recipient=bsuid(n),
        category="marketing",
        campaign_id="cmp-unknown" if campaign else None,
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


def business_sample(field: str, *, tenant: str, account: str) -> BusinessEvent:
    """The gateway's account-level event of ``field``, ``data`` as Meta sends it."""
    if field not in BUSINESS_DATA:
        raise AssertionError(f"no sample for business field {field}: add one")
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
        tenant_id=tenant,
        account_id=account,
        field=field,  # checked against BUSINESS_FIELDS
        event=event if isinstance(event, str) else None,
        waba_id="waba-k",
        occurred_at=datetime.now(UTC),
        data=data,
        marketing_preferences=preferences,
    )


def handoff_sample(kind: str, *, tenant: str, account: str) -> HandoffRequested | HandoffResolved:
    """The hand-off event ``kind`` for a fresh customer (whose hand-off nobody opened:
    a resolve has nothing to release)."""
    customer = CustomerIdentity(user_id=bsuid(next(_n)))
    if kind == topology.HANDOFF_REQUESTED:
        return HandoffRequested(
            tenant_id=tenant, account_id=account, customer=customer, reason="agent"
        )
    if kind == topology.HANDOFF_RESOLVED:
        return HandoffResolved(
            tenant_id=tenant, account_id=account, customer=customer, resolved_by="agent-1"
        )
    raise AssertionError(f"no sample for hand-off event {kind}: add one")


def relay_fact_sample(kind: str, *, tenant: str, account: str) -> BaseModel:
    """The conversation service's ``order_changed`` / ``campaign_changed``."""
    if kind == ORDER_CHANGED_KIND:
        return OrderChanged(
            tenant_id=tenant,
            account_id=account,
            change="created",
            order=OrderData(
                order_id=f"ORD-{next(_n)}",
                customer=CustomerIdentity(wa_id="15550001111"),
                status="confirmed",
                currency="EUR",
                total="12.50",
                payment_reference="PAY-1",
            ),
        )
    if kind == CAMPAIGN_CHANGED_KIND:
        return CampaignChanged(
            tenant_id=tenant,
            account_id=account,
            change="paused",
            campaign=CampaignData(
                campaign_id=f"cmp_{next(_n)}",
                name="promo",
                status="paused",
                previous_status="running",
                reason="operator",
            ),
        )
    raise AssertionError(f"no sample for relay fact {kind}: add one")


# --------------------------------------------------------------------- every kind


Model = TypeVar("Model", bound=BaseModel)


class Published(NamedTuple, Generic[Model]):
    """A message as its publisher puts it on the exchange."""

    key: str
    body: bytes
    model: Model


def every_inbound(
    *, tenant: str, account: str, phone_number_id: str
) -> list[Published[InboundMessage | InboundMessageV2]]:
    """One inbound message of every type in every version (on ``flowchat.inbound``)."""
    out: list[Published[InboundMessage | InboundMessageV2]] = []
    for version in sorted(inbound_versions()):
        for kind in typing.get_args(InboundType):
            message = inbound_sample(
                kind, version, tenant=tenant, account=account, phone_number_id=phone_number_id
            )
            key = topology.inbound_routing_key(tenant, account, kind)
            out.append(Published(key, message.model_dump_json().encode(), message))
    return out


def every_event(*, tenant: str, account: str) -> list[Published[BaseModel]]:
    """Every status change, every business event, every hand-off event and a rejected
    command (on ``flowchat.events``)."""
    out: list[Published[BaseModel]] = []
    for status in Status:
        for campaign in (True, False):
            event = status_sample(status.value, tenant=tenant, account=account, campaign=campaign)
            key = topology.status_event_key(tenant, account, status.value, campaign=campaign)
            out.append(Published(key, event.model_dump_json(exclude_none=True).encode(), event))
    for field in sorted(BUSINESS_FIELDS):
        business = business_sample(field, tenant=tenant, account=account)
        key = topology.events_routing_key(tenant, account, field)
        out.append(Published(key, business.model_dump_json().encode(), business))
    for kind in sorted(HANDOFF_KINDS):
        handoff = handoff_sample(kind, tenant=tenant, account=account)
        key = topology.events_routing_key(tenant, account, kind)
        out.append(Published(key, handoff.model_dump_json().encode(), handoff))
    for kind in sorted(RELAY_FACT_KINDS):
        fact = relay_fact_sample(kind, tenant=tenant, account=account)
        key = topology.events_routing_key(tenant, account, kind)
        out.append(Published(key, fact.model_dump_json().encode(), fact))
    rejected = CommandRejected(
        tenant_id=tenant,
        account_id=account,
        idempotency_key=f"key-k{next(_n)}",
        reason="invalid: content: Field required",
        queue=topology.QUEUE_OUTBOUND,
    )
    key = topology.events_routing_key(tenant, account, COMMAND_REJECTED)
    out.append(Published(key, rejected.model_dump_json().encode(), rejected))
    for kind in sorted(RELAY_OWN_KINDS):
        if kind != ENDPOINT_DISABLED_KIND:
            raise AssertionError(f"no sample for relay event {kind}: add one")
        disabled = EndpointDisabled(
            event_id=f"dis-k{next(_n)}",
            tenant_id=tenant,
            endpoint_id="ep_k",
            url_host="hooks.example.com",
            reason="gone",
            disabled_at=datetime.now(UTC),
            last_status_code=410,
        )
        key = topology.events_routing_key(tenant, NO_ACCOUNT, kind)
        out.append(Published(key, disabled.model_dump_json().encode(), disabled))
    return out


# --------------------------------------------------------------------- the consumer


def fates(queue: str) -> Counter[str]:
    """Messages of ``queue`` consumed so far, by fate (this process's counter)."""
    out: Counter[str] = Counter()
    for metric in platform_metrics.AMQP_CONSUMED.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("queue") == queue:
                out[sample.labels["fate"]] += int(sample.value)
    return out


def handler_retries(queue: str) -> float:
    """Handler retries of ``queue``'s messages so far (this process's counter)."""
    total = 0.0
    for metric in platform_metrics.AMQP_HANDLER_RETRIES.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("queue") == queue:
                total += sample.value
    return total


async def depth(channel: Any, queue: str) -> int:
    """Messages ready in ``queue`` (an unacked one is back there once its consumer is
    gone)."""
    declared = await channel.declare_queue(queue, passive=True)
    return int(declared.declaration_result.message_count)


@asynccontextmanager
async def open_channel(amqp_url: str) -> AsyncIterator[Any]:
    """A channel with publisher confirms on its own connection, closed after."""
    conn = await aio_pika.connect(amqp_url)
    try:
        yield await conn.channel(publisher_confirms=True)
    finally:
        await conn.close()


class Watch:
    """What reaches ``flowchat.events`` under ``*.*.<kind>``."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.got: list[Any] = []

    async def take(self) -> list[Any]:
        while (m := await self.queue.get(no_ack=True, fail=False)) is not None:
            self.got.append(m)
        return self.got

    async def count(self, n: int) -> list[Any]:
        """At least ``n`` messages, then nothing more for 0.3 s."""

        async def enough() -> bool:
            return len(await self.take()) >= n

        await eventually(enough, timeout_s=10)
        await asyncio.sleep(0.3)  # and nothing more
        return await self.take()


async def watch(channel: Any, kind: str) -> Watch:
    """A private queue bound to ``*.*.<kind>`` on ``flowchat.events``."""
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(topology.EXCHANGE_EVENTS, f"*.*.{kind}")
    return Watch(queue)


async def subscribe(redis_url: str, tenant: str, types: list[str]) -> None:
    """The tenant's endpoints subscribe to ``types`` (the relay's sets in Redis)."""
    redis = create_redis(redis_url)
    try:
        await SubscriptionWriter(redis).replace(tenant, types)
    finally:
        await redis.aclose()
    await asyncio.sleep(0.2)  # past the producers' cache
