"""The events FlowChat delivers to tenants' own endpoints (the relay's ``flowchat``
format), version 1.

Every event has the Standard Webhooks payload shape ``{type, timestamp, data}`` plus
FlowChat's envelope: a stable ``id`` (also the ``webhook-id`` header; the same event
redelivered keeps it, so receivers deduplicate by it), the tenant, the account and a
per-conversation ``sequence`` (1, 2, … for one customer of one account; ``None`` when
the event names no customer). Receivers ignore fields they do not know.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowchat_contracts.models import (
    CustomerIdentity,
    FlowResponse,
    Location,
    Media,
    Provider,
    Reply,
)

WEBHOOK_SCHEMA_VERSION: Literal[1] = 1

#: Every event type the relay delivers today.
EVENT_TYPES: tuple[str, ...] = ("message.received", "message.status")


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = WEBHOOK_SCHEMA_VERSION
    id: Annotated[str, Field(min_length=1, max_length=160)]
    tenant_id: str
    account_id: str
    #: When it happened (the provider's time).
    timestamp: datetime
    #: 1, 2, … per conversation (a customer of an account); None when no customer is known.
    sequence: int | None = None


class ReceivedMessage(BaseModel):
    """The customer's message, as FlowChat normalized it from Meta or Twilio."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    provider: Provider
    provider_message_id: str
    phone_number_id: str
    customer: CustomerIdentity | None = None
    customer_name: str | None = None
    type: str
    text: str | None = None
    media: Media | None = None
    location: Location | None = None
    reply: Reply | None = None
    reaction_message_id: str | None = None
    reaction_emoji: str | None = None
    context_message_id: str | None = None
    contacts: list[dict[str, Any]] = Field(default_factory=list)
    order: dict[str, Any] | None = None
    referral: dict[str, Any] | None = None
    flow: FlowResponse | None = None


class MessageReceived(_Event):
    """``message.received``: a customer wrote to one of the tenant's numbers."""

    type: Literal["message.received"] = "message.received"
    data: ReceivedMessage


class StatusError(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    code: int | None = None
    title: str | None = None


class MessageStatusData(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    #: FlowChat's message id (what the send API answered).
    message_id: str
    #: The provider's id (Meta's WAMID, Twilio's SID) once the provider accepted it.
    provider_message_id: str | None = None
    #: accepted, sent, delivered, read, played, failed or parked (in the DLQ).
    status: str
    previous_status: str | None = None
    provider: str | None = None
    #: The customer (phone number or BSUID).
    recipient: str | None = None
    category: str | None = None
    campaign_id: str | None = None
    error: StatusError | None = None


class MessageStatus(_Event):
    """``message.status``: an outbound message's status changed."""

    type: Literal["message.status"] = "message.status"
    data: MessageStatusData


#: Any event the relay delivers, told apart by ``type``.
WebhookEvent = Annotated[MessageReceived | MessageStatus, Field(discriminator="type")]
