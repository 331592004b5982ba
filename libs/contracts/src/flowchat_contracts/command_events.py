"""What becomes of an outbound command, as its publisher sees it on the queues.

::

    sender ──▶ [flowchat.status] <tenant>.<account>.command_parked   CommandParked
                  └─▶ state-manager: the message's status becomes ``parked`` (with the reason)
    state-manager ──▶ [flowchat.events] <tenant>.<account>.<status>  MessageStatusChanged
                  (accepted, sent, delivered, read, played, failed, parked)
    sender ──▶ [flowchat.events] <tenant>.<account>.command_rejected CommandRejected
                  (a body that is not a valid command, parked in ``flowchat.poison``)

Every event of one command carries the command's ``idempotency_key`` and
``correlation_id``: a publisher that leaves ``message_id`` and ``correlation_id`` out
(the docs allow it) matches the events to its commands by its own key.

Version 1 of ``message_status_changed`` gained ``idempotency_key`` (optional: absent on
events of messages recorded before it) and the status ``parked``: both compatible
changes (a new optional field, a new value), so the version stays 1.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from flowchat_contracts.models import (
    SCHEMA_VERSION,
    CustomerId,
    Id,
    MessageCategory,
    Provider,
    ProviderError,
    new_id,
    utcnow,
)

__all__ = [
    "COMMAND_PARKED",
    "COMMAND_REJECTED",
    "MESSAGE_STATUSES",
    "CommandParked",
    "CommandRejected",
    "MessageStatus",
    "MessageStatusChanged",
    "rejected_from_raw",
]

#: The last routing-key word of :class:`CommandParked` on ``flowchat.status``.
COMMAND_PARKED = "command_parked"
#: The last routing-key word of :class:`CommandRejected` on ``flowchat.events``.
COMMAND_REJECTED = "command_rejected"

#: A message's status as the state-manager records it (the routing key's last word of
#: its ``message_status_changed`` events):
#:
#: - ``queued``: known to the state-manager, no outcome yet (never an event);
#: - ``accepted``: the provider took the message (Meta answered with a WAMID); not yet
#:   on the customer's phone;
#: - ``sent``, ``delivered``, ``read``: Meta's statuses;
#: - ``played``: a voice message was played;
#: - ``failed``: the provider refused it, or FlowChat did (its own negative codes);
#:   terminal;
#: - ``parked``: the command waits in ``whatsapp.outbound.dlq`` for an operator (replay
#:   or discard); ``error_title`` says why. A replay that sends it moves it on.
MessageStatus = Literal[
    "queued", "accepted", "sent", "delivered", "read", "played", "failed", "parked"
]
MESSAGE_STATUSES: tuple[str, ...] = (
    "queued",
    "accepted",
    "sent",
    "delivered",
    "read",
    "played",
    "failed",
    "parked",
)


class MessageStatusChanged(BaseModel):
    """A message's status moved. Published by the state-manager on ``flowchat.events``
    with the key ``<tenant>.<account>.<status>``; AMQP ``message_id`` is ``event_id``
    (at-least-once: deduplicate by it), ``correlation_id`` the command's."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = 1
    kind: Literal["message_status_changed"] = "message_status_changed"
    event_id: str = Field(default_factory=new_id)
    #: FlowChat's message id (the command's ``message_id``, or one FlowChat gave it).
    message_id: str
    tenant_id: str
    account_id: str
    #: The command's ``idempotency_key`` (absent only for messages recorded before it
    #: was carried).
    idempotency_key: str | None = None
    status: MessageStatus
    previous_status: MessageStatus | None = None
    provider: str | None = None
    provider_message_id: str | None = None
    recipient: str | None = None
    category: str | None = None
    campaign_id: str | None = None
    #: The command's ``correlation_id`` (one FlowChat made up when it had none).
    correlation_id: str | None = None
    #: Why it failed or was parked: the provider's code (FlowChat's own are negative).
    error_code: int | None = None
    error_title: str | None = None
    #: When the provider says the status happened.
    timestamp: datetime
    #: When the state-manager recorded the change.
    recorded_at: datetime = Field(default_factory=utcnow)


class CommandParked(BaseModel):
    """The sender parked a valid command in ``whatsapp.outbound.dlq``. Published on
    ``flowchat.status`` (``<tenant>.<account>.command_parked``) before the command is
    acknowledged; the state-manager records the message as ``parked``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["command_parked"] = "command_parked"
    tenant_id: Id
    account_id: Id
    correlation_id: Id = Field(default_factory=new_id)
    message_id: Id
    idempotency_key: Id
    to: CustomerId
    message_type: str
    category: MessageCategory = "service"
    campaign_id: str | None = None
    #: The provider, when the sender got as far as the account's credentials.
    provider: Provider | None = None
    #: Why it was parked (the DLQ's ``x-flowchat-reason``).
    reason: Annotated[str, StringConstraints(max_length=1000)]
    #: The last provider error, when there was one.
    error: ProviderError | None = None
    attempts: int = Field(default=0, ge=0)
    occurred_at: datetime = Field(default_factory=utcnow)


class CommandRejected(BaseModel):
    """A body on ``flowchat.outbound`` that is not a valid command: it was parked in
    ``flowchat.poison`` and never sent. Published by the sender on ``flowchat.events``
    with the key ``<tenant>.<account>.command_rejected`` (``unknown`` for a word the
    body does not give); AMQP ``message_id`` is ``event_id``.

    The ids are read from the raw body when it is a JSON object and from the AMQP
    properties: whatever could be read is there, nothing else (never the body)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["command_rejected"] = "command_rejected"
    event_id: str = Field(default_factory=new_id)
    tenant_id: str | None = None
    account_id: str | None = None
    idempotency_key: str | None = None
    #: The body's ``message_id``, else the AMQP ``message_id``.
    message_id: str | None = None
    #: The body's ``correlation_id``, else the AMQP ``correlation_id``.
    correlation_id: str | None = None
    #: The validation errors (``invalid: <field>: <error>; …``).
    reason: str
    #: The queue the command was consumed from.
    queue: str
    rejected_at: datetime = Field(default_factory=utcnow)


def _word(value: Any) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= 128:
        return value
    return None


def rejected_from_raw(
    body: bytes,
    *,
    reason: str,
    queue: str,
    message_id: str | None = None,
    correlation_id: str | None = None,
) -> CommandRejected:
    """The :class:`CommandRejected` of an undecodable command: the ids the raw body gives
    (strings of at most 128 characters), else the AMQP properties'."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    fields: dict[str, Any] = data if isinstance(data, dict) else {}
    return CommandRejected(
        tenant_id=_word(fields.get("tenant_id")),
        account_id=_word(fields.get("account_id")),
        idempotency_key=_word(fields.get("idempotency_key")),
        message_id=_word(fields.get("message_id")) or message_id,
        correlation_id=_word(fields.get("correlation_id")) or correlation_id,
        reason=reason[:1000],
        queue=queue,
    )
