"""RabbitMQ topology of FlowChat: every exchange, queue, binding and retry tier.

Names live here and nowhere else; services import these constants.

::

    gateway ──▶ [flowchat.inbound]  topic, key <tenant>.<account>.<type>,
                                    header flowchat-partition (tenant + customer hashed)
                    └─ "#" ─▶ [conversation.inbound.partitions] headers, alternate exchange
                              │     [conversation.inbound.unpartitioned] (fanout)
                              ├─ flowchat-partition = n ─▶ (conversation.inbound.<n>)
                              │      quorum, single active consumer, n = 0..31; declared
                              │      by the conversation service alone
                              └─ no header, or no partition queue yet (alternate)
                                     ─▶ (conversation.inbound)  quorum: the queue of
                                        earlier versions, consumed by every replica
    anyone  ──▶ [flowchat.outbound] topic, key <tenant>.<account>[.bulk]
                    ├─ "*.*" ──────▶ (whatsapp.outbound)        quorum, delivery limit
                    │                transactional: utility, authentication, service
                    └─ "*.*.bulk" ─▶ (whatsapp.outbound.bulk)   quorum, delivery limit
                                     marketing; the sender holds it back while
                                     transactional work is waiting
                                 ├─ sender: retry ─▶ (<lane queue>.retry.<tier>)
                                 │      queue TTL, dead-letters back ─▶ (<lane queue>)
                                 └─ exhausted / rejected ─▶ (whatsapp.outbound.dlq)  parking lot
    gateway, sender ─▶ [flowchat.status] topic, key <tenant>.<account>.<kind> (a batch
                                    of several accounts' results: "-" for the word
                                    they do not share)
                    └─ "#" ─▶ (state-manager.status)            quorum
    state-manager ─▶ [flowchat.events] topic, key <tenant>.<account>.<status>
                                   [.campaign] (routing keys v2: a campaign message's
                                   statuses; published only where some reader wants
                                   them, see the state-manager's ``audience``)
    gateway ───────▶ [flowchat.events] topic, key <tenant>.<account>.<field> (business events)
                    ├─ "*.*.<status>.campaign", "*.*.failed", "*.*.<used key>"
                    │                    ─▶ (conversation.events) quorum (campaign metrics,
                    │                                           opt-outs, template pauses,
                    │                                           hand-offs)
                    ├─ "*.*.<template field>" ─▶ (sender.events) quorum, 24 h TTL (template
                    │                                           catalog refresh)
                    └─ "*.*.<status>.#", "*.*.<handoff…>" ─▶ (relay.events) quorum, 24 h TTL,
                                                                capped, no DLX (webhooks:
                                                                message.status, hand-offs)
    [flowchat.inbound] ── "#" ─▶ (relay.inbound)                quorum, 24 h TTL, capped,
                                                                no DLX (webhooks: message.received)
    inbox ─────────▶ [flowchat.events] keys <tenant>.<account>.handoff_resolved (the bot
                                       speaks again; conversation.events takes it)
    [flowchat.inbound]  "#" ──────────────────┐
    [flowchat.outbound] "#" ──────────────────┼─▶ (inbox.history)  quorum: every message
    [flowchat.events]   "*.*.<status>.#",     │   of every thread, status changes and
                        "*.*.handoff_requested"┘   hand-offs; declared by the inbox only
    conversation ──▶ [flowchat.privacy] topic, key <tenant>.erasure_requested
                    ├─▶ (conversation.privacy) (state-manager.privacy) (sender.privacy)
                    │    quorum, no TTL: a service down when a customer is erased catches up
                    └─▶ (inbox.privacy) (relay.privacy)   declared by those services alone
    every service ─▶ [flowchat.privacy] key <tenant>.erasure_reported.<service>
                    └─▶ (conversation.privacy)            the erasure's report
    any consumer ─▶ (flowchat.poison)  undecodable messages, with the reason in headers

Priority: RabbitMQ quorum queues have no message priorities, so marketing traffic
(``category == "marketing"``, campaigns) has a queue of its own and a campaign of any
size never sits in front of an order confirmation. :func:`outbound_routing_key`
picks the lane from the category; a publisher that leaves the category out gets the
transactional lane.

Per-conversation order across replicas: a conversation's messages (tenant + customer)
always land in the same partition queue (:func:`conversation_partition`), and each
partition queue has a single active consumer, so one replica at a time handles them, in
queue order; the conversation service spreads the partitions over its live replicas
(``flowchat_platform.partitions``). See docs/queue-contracts.md, *Order per conversation*.

Retry tiers use a queue-level TTL (``x-message-ttl``), never a per-message TTL:
RabbitMQ only expires messages at the head of a queue, so a per-message TTL would
make a 5 s retry wait behind a 10 min one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ALL_BINDINGS",
    "ALL_EXCHANGES",
    "ALL_QUEUES",
    "BULK_RETRY_TIERS",
    "CAMPAIGN_WORD",
    "CONVERSATION_CAMPAIGN_STATUSES",
    "CONVERSATION_EVENT_KEYS",
    "CONVERSATION_EVENT_PATTERNS",
    "CONVERSATION_INBOUND_QUEUES",
    "CONVERSATION_PARTITIONS",
    "CONVERSATION_PARTITION_BINDINGS",
    "CONVERSATION_PARTITION_QUEUES",
    "CONVERSATION_PARTITION_SPECS",
    "EXCHANGE_BINDINGS",
    "EXCHANGE_CONVERSATION_PARTITIONS",
    "EXCHANGE_CONVERSATION_UNPARTITIONED",
    "EXCHANGE_EVENTS",
    "EXCHANGE_INBOUND",
    "EXCHANGE_OUTBOUND",
    "EXCHANGE_PRIVACY",
    "EXCHANGE_STATUS",
    "HANDOFF_REQUESTED",
    "HANDOFF_RESOLVED",
    "HEADER_CONVERSATION_PARTITION",
    "INBOX_BINDINGS",
    "INBOX_QUEUES",
    "INBOX_RETIRED_BINDINGS",
    "INBOX_STATUS_KEYS",
    "INTERNAL_EXCHANGES",
    "OUTBOUND_BULK_WORD",
    "PRIVACY_QUEUES",
    "QUEUE_CONVERSATION_EVENTS",
    "QUEUE_CONVERSATION_INBOUND",
    "QUEUE_INBOX_HISTORY",
    "QUEUE_OUTBOUND",
    "QUEUE_OUTBOUND_BULK",
    "QUEUE_OUTBOUND_DLQ",
    "QUEUE_POISON",
    "QUEUE_RELAY_EVENTS",
    "QUEUE_RELAY_INBOUND",
    "QUEUE_SENDER_EVENTS",
    "QUEUE_SPECS",
    "QUEUE_STATE_STATUS",
    "RELAY_BINDINGS",
    "RELAY_EVENT_KEYS",
    "RELAY_QUEUES",
    "RELAY_RETIRED_BINDINGS",
    "RELAY_STATUS_KEYS",
    "RETIRED_BINDINGS",
    "RETRY_TIERS",
    "SENDER_EVENT_FIELDS",
    "SEVERAL",
    "WORK_DELIVERY_LIMIT",
    "BindingSpec",
    "ExchangeBindingSpec",
    "ExchangeSpec",
    "QueueSpec",
    "RetryTier",
    "conversation_partition",
    "conversation_partition_queue",
    "erasure_reported_key",
    "erasure_requested_key",
    "events_routing_key",
    "inbound_headers",
    "inbound_routing_key",
    "outbound_queue",
    "outbound_routing_key",
    "privacy_bindings",
    "privacy_queue",
    "retry_tier_for",
    "send_results_routing_key",
    "status_event_key",
    "status_pattern",
    "status_routing_key",
]

EXCHANGE_INBOUND = "flowchat.inbound"
EXCHANGE_OUTBOUND = "flowchat.outbound"
EXCHANGE_STATUS = "flowchat.status"
EXCHANGE_EVENTS = "flowchat.events"
#: Customers' erasure requests and the services' reports (``flowchat_contracts.privacy``).
EXCHANGE_PRIVACY = "flowchat.privacy"

#: Since partitioning, only the messages that carry no partition header (publishers of
#: earlier versions, other publishers) and the backlog of earlier versions: consumed by
#: every conversation replica, with no order across them (see ``CONVERSATION_PARTITIONS``).
QUEUE_CONVERSATION_INBOUND = "conversation.inbound"
#: Conversation partitions: each a quorum queue with a single active consumer; a
#: conversation (tenant + customer) always hashes to the same one. Never fewer than the
#: conversation service's most replicas (KEDA ``maxReplicaCount``): a replica with no
#: partition idles. Changing the number moves most conversations to another partition
#: (their order holds again once the old partitions are drained): a coordinated change of
#: the gateway and the conversation service.
CONVERSATION_PARTITIONS = 32
#: The header (a string, ``"0"`` … ``"31"``) the gateway sets on inbound messages. Not
#: ``x-``: a headers exchange leaves ``x-`` headers out of its match.
HEADER_CONVERSATION_PARTITION = "flowchat-partition"
#: A headers exchange bound to ``flowchat.inbound`` (``#``): partition queues bound by
#: the header; a message without it goes to its alternate exchange, the fanout below.
EXCHANGE_CONVERSATION_PARTITIONS = "conversation.inbound.partitions"
EXCHANGE_CONVERSATION_UNPARTITIONED = "conversation.inbound.unpartitioned"
QUEUE_CONVERSATION_EVENTS = "conversation.events"
QUEUE_OUTBOUND = "whatsapp.outbound"
QUEUE_OUTBOUND_BULK = "whatsapp.outbound.bulk"
QUEUE_OUTBOUND_DLQ = "whatsapp.outbound.dlq"
QUEUE_STATE_STATUS = "state-manager.status"
QUEUE_POISON = "flowchat.poison"
QUEUE_SENDER_EVENTS = "sender.events"
QUEUE_INBOX_HISTORY = "inbox.history"

#: The last routing-key word of the hand-off events on ``flowchat.events``.
HANDOFF_REQUESTED = "handoff_requested"
HANDOFF_RESOLVED = "handoff_resolved"
#: The state-manager's status words the inbox follows (``<tenant>.<account>.<status>``).
INBOX_STATUS_KEYS: tuple[str, ...] = ("accepted", "sent", "delivered", "read", "played", "failed")
#: The last word of a status event's routing key when the message belongs to a campaign
#: (``<tenant>.<account>.<status>.campaign``, routing keys v2: :func:`status_event_key`).
CAMPAIGN_WORD = "campaign"


def status_pattern(status: str) -> str:
    """The binding pattern of every message's ``status`` events, campaign or not."""
    return f"*.*.{status}.#"


#: The statuses of campaign messages the conversation service follows (a campaign's
#: funnel; ``played`` counts as read; ``failed`` also pauses a campaign), bound as
#: ``*.*.<status>.campaign``: the statuses of the bot's own replies never reach it.
CONVERSATION_CAMPAIGN_STATUSES: tuple[str, ...] = ("sent", "delivered", "read", "played", "failed")
#: The last words of the three-word ``flowchat.events`` keys the conversation service acts
#: on (``flowchat_conversation.outreach.events``): ``failed`` of any message (131050
#: opt-outs: a marketing message sent outside a campaign is refused too), the two business
#: fields it follows (template pauses, marketing opt-outs) and the hand-offs (the inbox's
#: take-over and release). Other statuses, other business fields, rejected commands and
#: its own facts are not copied to it.
CONVERSATION_EVENT_KEYS: tuple[str, ...] = (
    "failed",
    "message_template_status_update",
    "user_marketing_preferences",
    HANDOFF_REQUESTED,
    HANDOFF_RESOLVED,
)
#: Every pattern ``conversation.events`` is bound with.
CONVERSATION_EVENT_PATTERNS: tuple[str, ...] = (
    *(f"*.*.{s}.{CAMPAIGN_WORD}" for s in CONVERSATION_CAMPAIGN_STATUSES),
    *(f"*.*.{k}" for k in CONVERSATION_EVENT_KEYS),
)
#: The relay's copies of what it turns into tenants' webhook events.
QUEUE_RELAY_EVENTS = "relay.events"
QUEUE_RELAY_INBOUND = "relay.inbound"

#: Business events (the routing key's last word) the sender's template catalog follows.
SENDER_EVENT_FIELDS: tuple[str, ...] = (
    "message_template_status_update",
    "message_template_quality_update",
    "template_category_update",
)

#: The routing key's third word that sends a command to the bulk (marketing) lane.
OUTBOUND_BULK_WORD = "bulk"

#: Redeliveries of one message (crashes, rejects) before RabbitMQ parks it.
WORK_DELIVERY_LIMIT = 10


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: Literal["topic", "direct", "fanout", "headers"] = "topic"
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BindingSpec:
    queue: str
    exchange: str
    routing_key: str = "#"
    #: Binding arguments (a headers exchange matches on them).
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExchangeBindingSpec:
    """An exchange-to-exchange binding: ``source`` copies what matches to ``destination``."""

    destination: str
    source: str
    routing_key: str = "#"


@dataclass(frozen=True)
class RetryTier:
    """A delay queue: messages wait ``delay_s`` then dead-letter back to ``target`` (the
    outbound queue of their lane)."""

    delay_s: int
    target: str = QUEUE_OUTBOUND

    @property
    def queue(self) -> str:
        return f"{self.target}.retry.{self.label}"

    @property
    def label(self) -> str:
        if self.delay_s % 3600 == 0:
            return f"{self.delay_s // 3600}h"
        if self.delay_s % 60 == 0:
            return f"{self.delay_s // 60}m"
        return f"{self.delay_s}s"

    def spec(self) -> QueueSpec:
        return QueueSpec(
            self.queue,
            {
                "x-queue-type": "quorum",
                "x-message-ttl": self.delay_s * 1000,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": self.target,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )


_RETRY_DELAYS = (1, 5, 30, 120, 600, 3600)
#: Retry delays of the sender, shortest first. A retry waits in the shortest tier at
#: least as long as its delay (attempt n: 5 s, 20 s → 30 s, …); a rate-limit deferral in
#: the longest tier no longer than its wait. The 1 s tier is for those: a fast number's
#: commands deferred because it already has its share of sleepers (a 1,000 mps number
#: fills it in half a second) come back within a second, not five, so the number does
#: not idle when its backlog ends (bench: 667 → 1,000 mps sustained at 1,000 mps).
RETRY_TIERS: tuple[RetryTier, ...] = tuple(RetryTier(s) for s in _RETRY_DELAYS)
#: The same tiers for the bulk lane: a retried marketing command comes back behind the
#: campaign, never into the transactional queue.
BULK_RETRY_TIERS: tuple[RetryTier, ...] = tuple(
    RetryTier(s, QUEUE_OUTBOUND_BULK) for s in _RETRY_DELAYS
)


def retry_tier_for(
    delay_s: float, *, queue: str = QUEUE_OUTBOUND, at_most: bool = False
) -> RetryTier:
    """The shortest tier of ``queue``'s lane that waits at least ``delay_s`` (the
    longest tier past the end). ``at_most``: the longest tier that waits no longer than
    ``delay_s`` (the shortest when even it waits longer), for a message that may come
    back early but not late."""
    tiers = BULK_RETRY_TIERS if queue == QUEUE_OUTBOUND_BULK else RETRY_TIERS
    if at_most:
        return next((t for t in reversed(tiers) if t.delay_s <= delay_s), tiers[0])
    for tier in tiers:
        if tier.delay_s >= delay_s:
            return tier
    return tiers[-1]


_QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}

ALL_EXCHANGES: tuple[ExchangeSpec, ...] = (
    ExchangeSpec(EXCHANGE_INBOUND),
    ExchangeSpec(EXCHANGE_OUTBOUND),
    ExchangeSpec(EXCHANGE_STATUS),
    ExchangeSpec(EXCHANGE_EVENTS),
    ExchangeSpec(EXCHANGE_PRIVACY),
)
#: Exchanges nobody publishes to: fed by exchange-to-exchange bindings
#: (``EXCHANGE_BINDINGS``). The alternate exchange first (the other names it).
INTERNAL_EXCHANGES: tuple[ExchangeSpec, ...] = (
    ExchangeSpec(EXCHANGE_CONVERSATION_UNPARTITIONED, "fanout"),
    ExchangeSpec(
        EXCHANGE_CONVERSATION_PARTITIONS,
        "headers",
        {"alternate-exchange": EXCHANGE_CONVERSATION_UNPARTITIONED},
    ),
)


def conversation_partition_queue(partition: int) -> str:
    return f"{QUEUE_CONVERSATION_INBOUND}.{partition}"


CONVERSATION_PARTITION_QUEUES: tuple[str, ...] = tuple(
    conversation_partition_queue(n) for n in range(CONVERSATION_PARTITIONS)
)
#: Every queue the conversation service reads inbound messages from.
CONVERSATION_INBOUND_QUEUES: tuple[str, ...] = (
    QUEUE_CONVERSATION_INBOUND,
    *CONVERSATION_PARTITION_QUEUES,
)


def conversation_partition(tenant_id: str, customer_key: str) -> int:
    """The partition of a conversation: tenant and customer key (``customer.key``: the
    BSUID, else the phone number) hashed (BLAKE2b, stable across processes and
    languages), modulo :data:`CONVERSATION_PARTITIONS`."""
    digest = hashlib.blake2b(f"{tenant_id}\x00{customer_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % CONVERSATION_PARTITIONS


def inbound_headers(tenant_id: str, customer_key: str | None) -> dict[str, Any]:
    """The headers of an inbound message for ``flowchat.inbound``: its partition (none
    without a customer: the message then goes to ``conversation.inbound``)."""
    if not customer_key:
        return {}
    return {HEADER_CONVERSATION_PARTITION: str(conversation_partition(tenant_id, customer_key))}


def _work_queue(delivery_limit: int, dead_letter_queue: str) -> dict[str, Any]:
    """A quorum queue whose messages that keep failing are parked, not retried forever."""
    return {
        **_QUORUM,
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


#: The relay's copies of inbound messages and events, declared by the relay alone (like
#: the inbox's): where no relay is deployed, no copy of every message is made. While a
#: relay is down they must still never fill anything up: a day old
#: (past a webhook's retry window) or past a million messages, the oldest are dropped —
#: no dead-lettering, which would flood ``flowchat.poison`` with copies nobody wanted,
#: and never ``reject-publish``, which would refuse the gateway's own publishes. The
#: relay parks what it cannot read itself.
_RELAY_COPY: dict[str, Any] = {
    **_QUORUM,
    "x-delivery-limit": WORK_DELIVERY_LIMIT,
    "x-message-ttl": 24 * 3600 * 1000,
    "x-max-length": 1_000_000,
    "x-overflow": "drop-head",
}


def privacy_queue(service: str) -> str:
    """The queue of a service's erasure requests (``<service>.privacy``)."""
    return f"{service}.privacy"


#: Services whose privacy queue every service declares with the platform's topology
#: (so it exists, and keeps requests, before that service first runs); the inbox and
#: the relay declare theirs with their own queues.
_CORE_PRIVACY_SERVICES = ("conversation", "state-manager", "sender")
#: Erasure requests wait for their service however long it is down: no TTL, no limit
#: (a request a day is a lot); one that keeps failing is parked in ``flowchat.poison``.
PRIVACY_QUEUES: dict[str, QueueSpec] = {
    service: QueueSpec(privacy_queue(service), _work_queue(WORK_DELIVERY_LIMIT, QUEUE_POISON))
    for service in (*_CORE_PRIVACY_SERVICES, "inbox", "relay")
}


def privacy_bindings(service: str) -> tuple[BindingSpec, ...]:
    """A service's privacy queue takes every tenant's erasure requests; the conversation
    service's also takes every service's reports."""
    queue = privacy_queue(service)
    bindings = [BindingSpec(queue, EXCHANGE_PRIVACY, "*.erasure_requested")]
    if service == "conversation":
        bindings.append(BindingSpec(queue, EXCHANGE_PRIVACY, "*.erasure_reported.*"))
    return tuple(bindings)


ALL_QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec(QUEUE_CONVERSATION_INBOUND, _work_queue(WORK_DELIVERY_LIMIT, QUEUE_POISON)),
    QueueSpec(QUEUE_OUTBOUND, _work_queue(WORK_DELIVERY_LIMIT, QUEUE_OUTBOUND_DLQ)),
    QueueSpec(QUEUE_OUTBOUND_BULK, _work_queue(WORK_DELIVERY_LIMIT, QUEUE_OUTBOUND_DLQ)),
    QueueSpec(QUEUE_OUTBOUND_DLQ, dict(_QUORUM)),
    QueueSpec(QUEUE_STATE_STATUS, _work_queue(WORK_DELIVERY_LIMIT, QUEUE_POISON)),
    QueueSpec(QUEUE_POISON, dict(_QUORUM)),
    QueueSpec(QUEUE_CONVERSATION_EVENTS, _work_queue(WORK_DELIVERY_LIMIT, QUEUE_POISON)),
    # A template event older than a day is moot: the sender's catalogs expire after 24 h.
    QueueSpec(
        QUEUE_SENDER_EVENTS,
        {**_work_queue(WORK_DELIVERY_LIMIT, QUEUE_POISON), "x-message-ttl": 24 * 3600 * 1000},
    ),
    *(tier.spec() for tier in RETRY_TIERS),
    *(tier.spec() for tier in BULK_RETRY_TIERS),
    *(PRIVACY_QUEUES[s] for s in _CORE_PRIVACY_SERVICES),
)

ALL_BINDINGS: tuple[BindingSpec, ...] = (
    BindingSpec(QUEUE_CONVERSATION_INBOUND, EXCHANGE_CONVERSATION_UNPARTITIONED, ""),
    BindingSpec(QUEUE_OUTBOUND, EXCHANGE_OUTBOUND, "*.*"),
    BindingSpec(QUEUE_OUTBOUND_BULK, EXCHANGE_OUTBOUND, f"*.*.{OUTBOUND_BULK_WORD}"),
    BindingSpec(QUEUE_STATE_STATUS, EXCHANGE_STATUS),
    *(
        BindingSpec(QUEUE_CONVERSATION_EVENTS, EXCHANGE_EVENTS, p)
        for p in CONVERSATION_EVENT_PATTERNS
    ),
    *(BindingSpec(QUEUE_SENDER_EVENTS, EXCHANGE_EVENTS, f"*.*.{f}") for f in SENDER_EVENT_FIELDS),
    *(b for s in _CORE_PRIVACY_SERVICES for b in privacy_bindings(s)),
)

#: Exchange-to-exchange bindings: every inbound message to the partitioning exchange.
EXCHANGE_BINDINGS: tuple[ExchangeBindingSpec, ...] = (
    ExchangeBindingSpec(EXCHANGE_CONVERSATION_PARTITIONS, EXCHANGE_INBOUND),
)

#: The conversation partitions and their bindings, declared by the conversation service
#: alone (32 quorum queues are not free to declare: every other service, and every test
#: vhost, is spared them). Until they exist the partitions exchange routes nothing and
#: its alternate exchange sends every inbound message to ``conversation.inbound``.
CONVERSATION_PARTITION_SPECS: tuple[QueueSpec, ...] = tuple(
    QueueSpec(
        name,
        {**_work_queue(WORK_DELIVERY_LIMIT, QUEUE_POISON), "x-single-active-consumer": True},
    )
    for name in CONVERSATION_PARTITION_QUEUES
)
CONVERSATION_PARTITION_BINDINGS: tuple[BindingSpec, ...] = tuple(
    BindingSpec(
        conversation_partition_queue(n),
        EXCHANGE_CONVERSATION_PARTITIONS,
        "",
        {"x-match": "all", HEADER_CONVERSATION_PARTITION: str(n)},
    )
    for n in range(CONVERSATION_PARTITIONS)
)

#: The inbox's own queue and bindings, declared by the inbox alone (not by every
#: service with the rest): where no inbox is deployed, no copy of every message piles
#: up; once it has run, its queue keeps what arrives while it is down. The history
#: begins when the inbox is first deployed.
INBOX_QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec(QUEUE_INBOX_HISTORY, _work_queue(WORK_DELIVERY_LIMIT, QUEUE_POISON)),
    PRIVACY_QUEUES["inbox"],
)
INBOX_BINDINGS: tuple[BindingSpec, ...] = (
    BindingSpec(QUEUE_INBOX_HISTORY, EXCHANGE_INBOUND),
    BindingSpec(QUEUE_INBOX_HISTORY, EXCHANGE_OUTBOUND),
    *(
        BindingSpec(QUEUE_INBOX_HISTORY, EXCHANGE_EVENTS, status_pattern(s))
        for s in INBOX_STATUS_KEYS
    ),
    BindingSpec(QUEUE_INBOX_HISTORY, EXCHANGE_EVENTS, f"*.*.{HANDOFF_REQUESTED}"),
    *privacy_bindings("inbox"),
)
#: The inbox's bindings of earlier versions (each status by its three-word key, before
#: routing keys v2), removed when it declares its own.
INBOX_RETIRED_BINDINGS: tuple[BindingSpec, ...] = tuple(
    BindingSpec(QUEUE_INBOX_HISTORY, EXCHANGE_EVENTS, f"*.*.{s}") for s in INBOX_STATUS_KEYS
)

#: The relay's own queues and bindings, declared by the relay alone (see ``_RELAY_COPY``).
RELAY_QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec(QUEUE_RELAY_EVENTS, dict(_RELAY_COPY)),
    QueueSpec(QUEUE_RELAY_INBOUND, dict(_RELAY_COPY)),
    PRIVACY_QUEUES["relay"],
)
#: The last words of the ``flowchat.events`` keys the relay turns into webhook events:
#: every message status the state-manager records (``message.status``, ``parked``
#: included), the hand-offs, the conversation service's order and campaign facts
#: (``flowchat_contracts.tenant_events``) and the two business fields it turns into
#: ``template.status_changed`` and ``account.quality_changed``. Other business fields and
#: rejected commands are not copied to the relay.
RELAY_STATUS_KEYS: tuple[str, ...] = ("queued", *INBOX_STATUS_KEYS, "parked")
RELAY_EVENT_KEYS: tuple[str, ...] = (
    *RELAY_STATUS_KEYS,
    HANDOFF_REQUESTED,
    HANDOFF_RESOLVED,
    "order_changed",
    "campaign_changed",
    "message_template_status_update",
    "phone_number_quality_update",
)
RELAY_BINDINGS: tuple[BindingSpec, ...] = (
    *(
        BindingSpec(QUEUE_RELAY_EVENTS, EXCHANGE_EVENTS, status_pattern(k))
        for k in RELAY_STATUS_KEYS
    ),
    *(
        BindingSpec(QUEUE_RELAY_EVENTS, EXCHANGE_EVENTS, f"*.*.{k}")
        for k in RELAY_EVENT_KEYS
        if k not in RELAY_STATUS_KEYS
    ),
    BindingSpec(QUEUE_RELAY_INBOUND, EXCHANGE_INBOUND),
    *privacy_bindings("relay"),
)
#: The relay's bindings of earlier versions, removed when it declares its own:
#: ``relay.events`` once took every key, then each status by its three-word key (before
#: routing keys v2).
RELAY_RETIRED_BINDINGS: tuple[BindingSpec, ...] = (
    BindingSpec(QUEUE_RELAY_EVENTS, EXCHANGE_EVENTS, "#"),
    *(BindingSpec(QUEUE_RELAY_EVENTS, EXCHANGE_EVENTS, f"*.*.{k}") for k in RELAY_STATUS_KEYS),
)
#: Every queue a consumer may declare: the platform's, and the opt-in services' own.
QUEUE_SPECS: tuple[QueueSpec, ...] = (
    *ALL_QUEUES,
    *CONVERSATION_PARTITION_SPECS,
    *INBOX_QUEUES,
    *RELAY_QUEUES,
)

#: Bindings of earlier versions, removed when the topology is declared (unbinding one
#: that is not there is a no-op): ``whatsapp.outbound`` once took every key (``#``),
#: which would now copy bulk commands into the transactional queue; ``conversation.events``
#: once took every key of ``flowchat.events``, then every message's statuses (now only
#: ``CONVERSATION_EVENT_PATTERNS``: campaign messages' statuses and any ``failed``);
#: ``conversation.inbound`` once took every inbound message (now the partition queues do,
#: and it only what carries no partition header, through the alternate exchange).
RETIRED_BINDINGS: tuple[BindingSpec, ...] = (
    BindingSpec(QUEUE_OUTBOUND, EXCHANGE_OUTBOUND, "#"),
    BindingSpec(QUEUE_CONVERSATION_EVENTS, EXCHANGE_EVENTS, "#"),
    BindingSpec(QUEUE_CONVERSATION_INBOUND, EXCHANGE_INBOUND, "#"),
    *(
        BindingSpec(QUEUE_CONVERSATION_EVENTS, EXCHANGE_EVENTS, f"*.*.{s}")
        for s in CONVERSATION_CAMPAIGN_STATUSES
        if s not in CONVERSATION_EVENT_KEYS
    ),
)


def _key(*parts: str) -> str:
    # Topic words are separated by dots; ids must not smuggle extra words in.
    return ".".join(p.replace(".", "_") for p in parts)


def inbound_routing_key(tenant_id: str, account_id: str, message_type: str) -> str:
    return _key(tenant_id, account_id, message_type)


def outbound_routing_key(tenant_id: str, account_id: str, category: str | None = None) -> str:
    """``<tenant>.<account>`` (transactional lane) or ``<tenant>.<account>.bulk`` for
    ``category == "marketing"``: pass the command's category."""
    if category == "marketing":
        return _key(tenant_id, account_id, OUTBOUND_BULK_WORD)
    return _key(tenant_id, account_id)


def outbound_queue(category: str | None) -> str:
    """The queue a command of ``category`` lands in (what :func:`outbound_routing_key` picks)."""
    return QUEUE_OUTBOUND_BULK if category == "marketing" else QUEUE_OUTBOUND


def status_routing_key(tenant_id: str, account_id: str, kind: str) -> str:
    return _key(tenant_id, account_id, kind)


#: The tenant or account word of a ``flowchat.status`` key whose message holds results
#: of several (a ``send_result_batch`` of version 2).
SEVERAL = "-"


def send_results_routing_key(scopes: Iterable[tuple[str, str]], kind: str) -> str:
    """The ``flowchat.status`` key of a message holding results of ``scopes`` (their
    ``(tenant_id, account_id)``): ``<tenant>.<account>.<kind>`` when they share both,
    else :data:`SEVERAL` in place of the tenant or account they do not share."""
    tenants: set[str] = set()
    accounts: set[str] = set()
    for tenant_id, account_id in scopes:
        tenants.add(tenant_id)
        accounts.add(account_id)
    tenant = _key(next(iter(tenants))) if len(tenants) == 1 else SEVERAL
    account = _key(next(iter(accounts))) if len(accounts) == 1 else SEVERAL
    return f"{tenant}.{account}.{_key(kind)}"


def events_routing_key(tenant_id: str, account_id: str, status: str) -> str:
    return _key(tenant_id, account_id, status)


def status_event_key(tenant_id: str, account_id: str, status: str, *, campaign: bool) -> str:
    """The routing key of the state-manager's ``message_status_changed`` (routing keys
    v2): ``<tenant>.<account>.<status>``, with a fourth word ``campaign`` when the message
    belongs to a campaign. Bind ``*.*.<status>.#`` (:func:`status_pattern`) for every
    message's status, ``*.*.<status>.campaign`` for campaign messages' only."""
    key = _key(tenant_id, account_id, status)
    return f"{key}.{CAMPAIGN_WORD}" if campaign else key


def erasure_requested_key(tenant_id: str) -> str:
    return _key(tenant_id, "erasure_requested")


def erasure_reported_key(tenant_id: str, service: str) -> str:
    return _key(tenant_id, "erasure_reported", service)
