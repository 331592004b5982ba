"""The event the state-manager publishes on ``flowchat.events`` for every status change.

Routing key ``<tenant>.<account>.<status>`` (``topology.events_routing_key``). The
AMQP ``message_id`` is ``event_id``: delivery is at-least-once (transactional outbox),
so subscribers deduplicate by it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flowchat_contracts.models import new_id, utcnow


class MessageStatusChanged(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = 1
    kind: Literal["message_status_changed"] = "message_status_changed"
    event_id: str = Field(default_factory=new_id)
    message_id: str
    tenant_id: str
    account_id: str
    status: str
    previous_status: str | None = None
    provider: str | None = None
    provider_message_id: str | None = None
    recipient: str | None = None
    category: str | None = None
    campaign_id: str | None = None
    correlation_id: str | None = None
    error_code: int | None = None
    error_title: str | None = None
    #: When the provider says the status happened.
    timestamp: datetime
    #: When the state-manager recorded the change.
    recorded_at: datetime = Field(default_factory=utcnow)
