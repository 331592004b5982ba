"""The event the state-manager publishes on ``flowchat.events`` for every status change.

Routing key ``<tenant>.<account>.<status>`` (``topology.events_routing_key``). The
AMQP ``message_id`` is ``event_id``: delivery is at-least-once (transactional outbox),
so subscribers deduplicate by it. The model is a contract
(:class:`flowchat_contracts.command_events.MessageStatusChanged`, JSON Schema
``message_status_changed.v1.json``).
"""

from __future__ import annotations

from flowchat_contracts.command_events import MessageStatusChanged

__all__ = ["MessageStatusChanged"]
