"""An AsyncAPI 3.0 document of FlowChat's broker: exchanges, routing keys, queues and the
contracts on each, generated from :mod:`flowchat_contracts.topology` and the JSON
Schemas (:mod:`flowchat_contracts.schemas`).

``make schemas`` writes ``libs/contracts/asyncapi.json`` beside ``schemas/``; a test
fails when the checked-in file differs from what this module renders. Message payloads
point at the schema files (``./schemas/<kind>.v<n>.json``), so the document never
repeats them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowchat_contracts import topology
from flowchat_contracts.schemas import SCHEMA_MODELS

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "asyncapi.json"


@dataclass(frozen=True)
class Route:
    """Messages published to ``exchange`` with routing keys shaped like ``address``."""

    channel: str
    exchange: str
    address: str
    #: Schema file stems (``SCHEMA_MODELS`` keys) of the messages on it.
    messages: tuple[str, ...]
    description: str


#: Every contract on the broker, by exchange and routing key. The webhook schemas
#: (``webhook.*``) are HTTP bodies, not broker messages.
ROUTES: tuple[Route, ...] = (
    Route(
        "outbound",
        topology.EXCHANGE_OUTBOUND,
        "{tenant_id}.{account_id}",
        ("outbound_command.v1",),
        "Send one message (transactional lane: utility, authentication, service). "
        "Published by you, the gateway's send API and conversation; consumed by the sender.",
    ),
    Route(
        "outboundBulk",
        topology.EXCHANGE_OUTBOUND,
        "{tenant_id}.{account_id}.bulk",
        ("outbound_command.v1",),
        "Send one marketing message (the bulk lane, held back while transactional work waits).",
    ),
    Route(
        "inbound",
        topology.EXCHANGE_INBOUND,
        "{tenant_id}.{account_id}.{type}",
        ("inbound_message.v1", "inbound_message.v2"),
        "A customer's message, normalized by the gateway (v2: the customer hides the "
        "phone number).",
    ),
    Route(
        "status",
        topology.EXCHANGE_STATUS,
        "{tenant_id}.{account_id}.{kind}",
        (
            "status_update.v1",
            "send_result.v1",
            "send_result_batch.v1",
            "send_result_batch.v2",
            "command_parked.v1",
        ),
        "Provider statuses (gateway), send results and parked commands (sender); "
        "consumed by the state-manager. A send_result_batch v2 holds several accounts' "
        "results: '-' stands for the tenant or account word they do not share.",
    ),
    Route(
        "events",
        topology.EXCHANGE_EVENTS,
        "{tenant_id}.{account_id}.{word}[.campaign]",
        (
            "message_status_changed.v1",
            "command_rejected.v1",
            "handoff_requested.v1",
            "handoff_resolved.v1",
            "order_changed.v1",
            "campaign_changed.v1",
            "endpoint_disabled.v1",
        ),
        "FlowChat's events: status changes (word: the status; routing keys v2: a fourth "
        "word 'campaign' for a campaign message's; published only where some reader "
        "wants them: bind '*.*.<status>.#' and see docs/queue-contracts.md), rejected commands "
        "(command_rejected), hand-offs, order and campaign facts (order_changed, "
        "campaign_changed: only while a relay endpoint of the tenant subscribes), webhook "
        "endpoints the relay disabled (endpoint_disabled; account word '-'), Meta's "
        "business events (word: the field). Bind a "
        "queue of your own; see docs/events.md.",
    ),
    Route(
        "privacy",
        topology.EXCHANGE_PRIVACY,
        "{tenant_id}.{word}[.{service}]",
        ("erasure_requested.v1", "erasure_reported.v1"),
        "Customers' erasure: the conversation service's request (erasure_requested) to "
        "every service storing customer data, and each one's report "
        "(erasure_reported.<service>); see docs/privacy.md.",
    ),
)


def _exchange_binding(name: str) -> dict[str, Any]:
    spec = next(e for e in topology.ALL_EXCHANGES if e.name == name)
    return {
        "amqp": {
            "is": "routingKey",
            "exchange": {
                "name": spec.name,
                "type": spec.type,
                "durable": True,
                "autoDelete": False,
            },
            "bindingVersion": "0.3.0",
        }
    }


def _message_name(stem: str) -> str:
    return stem.replace(".", "_")


def render_asyncapi() -> str:
    """The AsyncAPI document as JSON text."""
    messages: dict[str, Any] = {}
    for route in ROUTES:
        for stem in route.messages:
            model = SCHEMA_MODELS[stem]
            messages[_message_name(stem)] = {
                "name": stem,
                "title": model.__name__,
                "summary": (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " "),
                "contentType": "application/json",
                "payload": {
                    "schemaFormat": "application/schema+json;version=draft-2020-12",
                    "schema": {"$ref": f"./schemas/{stem}.json"},
                },
            }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for route in ROUTES:
        params: dict[str, dict[str, Any]] = {
            p.strip("{}"): {} for p in route.address.split(".") if p.startswith("{")
        }
        channels[route.channel] = {
            "address": route.address,
            "title": f"{route.exchange} {route.address}",
            "description": route.description,
            "parameters": params,
            "messages": {
                _message_name(s): {"$ref": f"#/components/messages/{_message_name(s)}"}
                for s in route.messages
            },
            "bindings": _exchange_binding(route.exchange),
        }
        operations[f"publish_{route.channel}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{route.channel}"},
            "bindings": {"amqp": {"deliveryMode": 2, "mandatory": True, "bindingVersion": "0.3.0"}},
        }
    queues: dict[str, Any] = {}
    bindings = (
        *topology.ALL_BINDINGS,
        *topology.CONVERSATION_PARTITION_BINDINGS,
        *topology.INBOX_BINDINGS,
        *topology.RELAY_BINDINGS,
    )
    for queue in topology.QUEUE_SPECS:
        queues[queue.name] = {
            "arguments": queue.arguments,
            "bindings": [
                {
                    "exchange": b.exchange,
                    "routingKey": b.routing_key,
                    **({"arguments": b.arguments} if b.arguments else {}),
                }
                for b in bindings
                if b.queue == queue.name
            ],
        }
    internal = {
        ex.name: {
            "type": ex.type,
            "arguments": ex.arguments,
            "boundTo": [
                {"exchange": eb.source, "routingKey": eb.routing_key}
                for eb in topology.EXCHANGE_BINDINGS
                if eb.destination == ex.name
            ],
        }
        for ex in topology.INTERNAL_EXCHANGES
    }
    document = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "FlowChat broker contracts",
            "version": "1",
            "description": (
                "FlowChat's RabbitMQ exchanges, routing keys and message contracts, "
                "generated from flowchat_contracts (topology and models): `make schemas`. "
                "Publishers need the user, vhost and permissions of docs/broker-access.md. "
                "Routing-key words are ids with '.' replaced by '_'. FlowChat's own queues "
                "(x-flowchat-queues) are listed for operators: never consume them."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
        "x-flowchat-queues": queues,
        "x-flowchat-internal-exchanges": internal,
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def export_asyncapi(path: Path = DEFAULT_PATH) -> Path:
    path.write_text(render_asyncapi())
    return path
