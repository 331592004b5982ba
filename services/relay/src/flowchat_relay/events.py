"""What the relay delivers, built from what it consumes. No I/O.

- ``message.status`` from the state-manager's ``message_status_changed`` event
  (``flowchat.events``; its model is the state-manager's, mirrored here leniently);
- ``message.received`` from an inbound message (``flowchat.inbound``, v1 or v2).

Each becomes a :class:`Outgoing`: the FlowChat event (its id derived from the source's
event id, so a redelivered source makes the same event) and, when the event carries
enough, the Meta-shaped webhook body for ``meta`` endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from flowchat_contracts import (
    CustomerIdentity,
    InboundMessage,
    InboundMessageV2,
    MessageReceived,
    MessageStatus,
    MessageStatusData,
    ReceivedMessage,
    StatusError,
    is_bsuid,
)
from flowchat_platform.accounts import AccountCredentials

MESSAGE_RECEIVED = "message.received"
MESSAGE_STATUS = "message.status"
#: The test ping (never stored, never subscribed to).
PING = "endpoint.ping"

#: Meta's own statuses (``accepted`` is FlowChat's: no Meta-shaped body).
META_STATUSES = frozenset({"sent", "delivered", "read", "played", "failed"})


class StatusChanged(BaseModel):
    """The state-manager's ``message_status_changed`` (the fields the relay reads)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["message_status_changed"]
    event_id: str
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
    error_code: int | None = None
    error_title: str | None = None
    timestamp: datetime


@dataclass(frozen=True)
class Outgoing:
    """One event to store: the FlowChat event (``sequence`` set by the store) and the
    Meta-shaped body builder's input."""

    event: MessageReceived | MessageStatus
    #: The conversation the sequence counts in (None: no sequence).
    conversation: str | None

    @property
    def id(self) -> str:
        return self.event.id

    @property
    def type(self) -> str:
        return self.event.type


def status_event(source: StatusChanged) -> Outgoing:
    error = (
        StatusError(code=source.error_code, title=source.error_title)
        if source.error_code is not None or source.error_title
        else None
    )
    event = MessageStatus(
        id=f"evt_{source.event_id}",
        tenant_id=source.tenant_id,
        account_id=source.account_id,
        timestamp=source.timestamp,
        data=MessageStatusData(
            message_id=source.message_id,
            provider_message_id=source.provider_message_id,
            status=source.status,
            previous_status=source.previous_status,
            provider=source.provider,
            recipient=source.recipient,
            category=source.category,
            campaign_id=source.campaign_id,
            error=error,
        ),
    )
    return Outgoing(event, source.recipient)


_RECEIVED_FIELDS = set(ReceivedMessage.model_fields) - {"customer"}


def received_event(source: InboundMessage | InboundMessageV2) -> Outgoing:
    customer = source.customer
    if customer is None and source.customer_wa_id:
        customer = CustomerIdentity(wa_id=source.customer_wa_id)
    data = ReceivedMessage.model_validate(
        {**source.model_dump(include=_RECEIVED_FIELDS), "customer": customer}
    )
    event = MessageReceived(
        id=f"evt_{source.event_id}",
        tenant_id=source.tenant_id,
        account_id=source.account_id,
        timestamp=source.timestamp,
        data=data,
    )
    return Outgoing(event, customer.key if customer else None)


# ----------------------------------------------------------------- Meta's shape


def _envelope(account: AccountCredentials, phone_number_id: str, value: dict[str, Any]) -> Any:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": account.waba_id or account.account_id,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": account.display_phone_number
                                or phone_number_id,
                                "phone_number_id": phone_number_id,
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def _unix(at: datetime) -> str:
    return str(int(at.timestamp()))


def meta_body(event: MessageReceived | MessageStatus, account: AccountCredentials) -> Any | None:
    """The webhook Meta would have sent for ``event`` (None when it has no Meta form)."""
    if isinstance(event, MessageStatus):
        return _meta_status(event, account)
    return _meta_message(event, account)


def _meta_status(event: MessageStatus, account: AccountCredentials) -> Any | None:
    data = event.data
    if data.status not in META_STATUSES or not data.provider_message_id:
        return None
    phone_number_id = account.phone_number_id
    if not phone_number_id:
        return None
    status: dict[str, Any] = {
        "id": data.provider_message_id,
        "status": data.status,
        "timestamp": _unix(event.timestamp),
    }
    contact: dict[str, Any] = {"profile": {}}
    if data.recipient and is_bsuid(data.recipient):
        status["recipient_user_id"] = contact["user_id"] = data.recipient
    elif data.recipient:
        status["recipient_id"] = contact["wa_id"] = data.recipient.lstrip("+")
    if data.error is not None:
        status["errors"] = [
            {
                "code": data.error.code or 0,
                "title": data.error.title or "",
                "message": data.error.title or "",
            }
        ]
    return _envelope(account, phone_number_id, {"contacts": [contact], "statuses": [status]})


def _meta_message(event: MessageReceived, account: AccountCredentials) -> Any | None:
    data = event.data
    customer = data.customer
    sender = (customer.wa_id or customer.user_id) if customer else None
    if sender is None:
        return None
    message: dict[str, Any] = {
        "from": sender.lstrip("+"),
        "id": data.provider_message_id,
        "timestamp": _unix(event.timestamp),
        "type": data.type,
    }
    if customer is not None and customer.user_id:
        message["from_user_id"] = customer.user_id
    if data.context_message_id:
        message["context"] = {"id": data.context_message_id}
    if data.type == "text":
        message["text"] = {"body": data.text or ""}
    elif data.media is not None:
        message[data.type] = data.media.model_dump(exclude_none=True)
    elif data.type == "location" and data.location is not None:
        message["location"] = data.location.model_dump(exclude_none=True)
    elif data.type == "reaction":
        message["reaction"] = {
            "message_id": data.reaction_message_id or "",
            "emoji": data.reaction_emoji or "",
        }
    elif data.type == "button" and data.reply is not None:
        message["button"] = {"payload": data.reply.id, "text": data.reply.title}
    elif data.type == "interactive" and data.reply is not None:
        kind = "list_reply" if data.reply.description is not None else "button_reply"
        message["interactive"] = {"type": kind, kind: data.reply.model_dump(exclude_none=True)}
    elif data.type == "contacts":
        message["contacts"] = data.contacts
    contact: dict[str, Any] = {"profile": {"name": data.customer_name or ""}}
    if customer is not None and customer.wa_id:
        contact["wa_id"] = customer.wa_id.lstrip("+")
    if customer is not None and customer.user_id:
        contact["user_id"] = customer.user_id
    return _envelope(account, data.phone_number_id, {"contacts": [contact], "messages": [message]})
