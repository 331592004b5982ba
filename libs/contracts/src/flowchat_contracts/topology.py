"""RabbitMQ topology of FlowChat: every exchange, queue, binding and retry tier.

Names live here and nowhere else; services import these constants.

::

    gateway ──▶ [flowchat.inbound]  topic, key <tenant>.<account>.<type>
                    └─ "#" ─▶ (conversation.inbound)            quorum
    anyone  ──▶ [flowchat.outbound] topic, key <tenant>.<account>
                    └─ "#" ─▶ (whatsapp.outbound)               quorum, delivery limit
                                 ├─ sender: retry ─▶ (whatsapp.outbound.retry.<tier>)
                                 │      queue TTL, dead-letters back ─▶ (whatsapp.outbound)
                                 └─ exhausted / rejected ─▶ (whatsapp.outbound.dlq)  parking lot
    gateway, sender ─▶ [flowchat.status] topic, key <tenant>.<account>.<kind>
                    └─ "#" ─▶ (state-manager.status)            quorum
    state-manager ─▶ [flowchat.events] topic, key <tenant>.<account>.<status>
    gateway ───────▶ [flowchat.events] topic, key <tenant>.<account>.<field> (business events)
                    └─ "#" ─▶ (conversation.events)             quorum (campaign metrics,
                                                                opt-outs, template pauses)
    any consumer ─▶ (flowchat.poison)  undecodable messages, with the reason in headers

Retry tiers use a queue-level TTL (``x-message-ttl``), never a per-message TTL:
RabbitMQ only expires messages at the head of a queue, so a per-message TTL would
make a 5 s retry wait behind a 10 min one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ALL_BINDINGS",
    "ALL_EXCHANGES",
    "ALL_QUEUES",
    "EXCHANGE_EVENTS",
    "EXCHANGE_INBOUND",
    "EXCHANGE_OUTBOUND",
    "EXCHANGE_STATUS",
    "QUEUE_CONVERSATION_EVENTS",
    "QUEUE_CONVERSATION_INBOUND",
    "QUEUE_OUTBOUND",
    "QUEUE_OUTBOUND_DLQ",
    "QUEUE_POISON",
    "QUEUE_STATE_STATUS",
    "RETRY_TIERS",
    "WORK_DELIVERY_LIMIT",
    "BindingSpec",
    "ExchangeSpec",
    "QueueSpec",
    "RetryTier",
    "events_routing_key",
    "inbound_routing_key",
    "outbound_routing_key",
    "retry_tier_for",
    "status_routing_key",
]

EXCHANGE_INBOUND = "flowchat.inbound"
EXCHANGE_OUTBOUND = "flowchat.outbound"
EXCHANGE_STATUS = "flowchat.status"
EXCHANGE_EVENTS = "flowchat.events"

QUEUE_CONVERSATION_INBOUND = "conversation.inbound"
QUEUE_CONVERSATION_EVENTS = "conversation.events"
QUEUE_OUTBOUND = "whatsapp.outbound"
QUEUE_OUTBOUND_DLQ = "whatsapp.outbound.dlq"
QUEUE_STATE_STATUS = "state-manager.status"
QUEUE_POISON = "flowchat.poison"

#: Redeliveries of one message (crashes, rejects) before RabbitMQ parks it.
WORK_DELIVERY_LIMIT = 10


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: Literal["topic", "direct", "fanout"] = "topic"


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BindingSpec:
    queue: str
    exchange: str
    routing_key: str = "#"


@dataclass(frozen=True)
class RetryTier:
    """A delay queue: messages wait ``delay_s`` then dead-letter back to the outbound queue."""

    delay_s: int

    @property
    def queue(self) -> str:
        return f"{QUEUE_OUTBOUND}.retry.{self.label}"

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
                "x-dead-letter-routing-key": QUEUE_OUTBOUND,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )


#: Retry delays of the sender, shortest first. Attempt n waits in tier n-1.
RETRY_TIERS: tuple[RetryTier, ...] = tuple(RetryTier(s) for s in (5, 30, 120, 600, 3600))


def retry_tier_for(delay_s: float) -> RetryTier:
    """The shortest tier that waits at least ``delay_s`` (the longest tier past the end)."""
    for tier in RETRY_TIERS:
        if tier.delay_s >= delay_s:
            return tier
    return RETRY_TIERS[-1]


_QUORUM: dict[str, Any] = {"x-queue-type": "quorum"}

ALL_EXCHANGES: tuple[ExchangeSpec, ...] = (
    ExchangeSpec(EXCHANGE_INBOUND),
    ExchangeSpec(EXCHANGE_OUTBOUND),
    ExchangeSpec(EXCHANGE_STATUS),
    ExchangeSpec(EXCHANGE_EVENTS),
)


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


ALL_QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec(QUEUE_CONVERSATION_INBOUND, _work_queue(WORK_DELIVERY_LIMIT, QUEUE_POISON)),
    QueueSpec(QUEUE_OUTBOUND, _work_queue(WORK_DELIVERY_LIMIT, QUEUE_OUTBOUND_DLQ)),
    QueueSpec(QUEUE_OUTBOUND_DLQ, dict(_QUORUM)),
    QueueSpec(QUEUE_STATE_STATUS, _work_queue(WORK_DELIVERY_LIMIT, QUEUE_POISON)),
    QueueSpec(QUEUE_POISON, dict(_QUORUM)),
    QueueSpec(QUEUE_CONVERSATION_EVENTS, _work_queue(WORK_DELIVERY_LIMIT, QUEUE_POISON)),
    *(tier.spec() for tier in RETRY_TIERS),
)

ALL_BINDINGS: tuple[BindingSpec, ...] = (
    BindingSpec(QUEUE_CONVERSATION_INBOUND, EXCHANGE_INBOUND),
    BindingSpec(QUEUE_OUTBOUND, EXCHANGE_OUTBOUND),
    BindingSpec(QUEUE_STATE_STATUS, EXCHANGE_STATUS),
    BindingSpec(QUEUE_CONVERSATION_EVENTS, EXCHANGE_EVENTS),
)


def _key(*parts: str) -> str:
    # Topic words are separated by dots; ids must not smuggle extra words in.
    return ".".join(p.replace(".", "_") for p in parts)


def inbound_routing_key(tenant_id: str, account_id: str, message_type: str) -> str:
    return _key(tenant_id, account_id, message_type)


def outbound_routing_key(tenant_id: str, account_id: str) -> str:
    return _key(tenant_id, account_id)


def status_routing_key(tenant_id: str, account_id: str, kind: str) -> str:
    return _key(tenant_id, account_id, kind)


def events_routing_key(tenant_id: str, account_id: str, status: str) -> str:
    return _key(tenant_id, account_id, status)
