"""What the relay delivers, built from what it consumes. No I/O.

- ``message.status`` from the state-manager's ``message_status_changed`` event
  (``flowchat.events``; its model is the state-manager's, mirrored here leniently);
- ``message.received`` from an inbound message (``flowchat.inbound``, v1 or v2);
- ``conversation.handoff_requested`` / ``…_resolved`` from the hand-off events (the
  conversation service's, the inbox's);
- ``order.*`` and ``campaign.*`` from the conversation service's ``order_changed`` and
  ``campaign_changed`` (:mod:`flowchat_contracts.tenant_events`);
- ``template.status_changed`` and ``account.quality_changed`` from the gateway's
  ``business_event`` of ``message_template_status_update`` / ``phone_number_quality_update``.

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
    HandoffRequested,
    HandoffResolved,
    InboundMessage,
    InboundMessageV2,
    MessageReceived,
    MessageStatus,
    MessageStatusData,
    ReceivedMessage,
    StatusError,
    is_bsuid,
)
from flowchat_contracts.meta_ids import wamid_of
from flowchat_contracts.tenant_events import (
    CAMPAIGN_EVENT_TYPES,
    ORDER_EVENT_TYPES,
    AccountQualityChanged,
    AccountQualityData,
    AnyTenantEvent,
    CampaignChanged,
    CampaignCompleted,
    CampaignPaused,
    CampaignStarted,
    HandoffRequestedData,
    HandoffRequestedEvent,
    HandoffResolvedData,
    HandoffResolvedEvent,
    OrderChanged,
    OrderCreated,
    OrderPaid,
    OrderStatusChanged,
    TemplateStatusChanged,
    TemplateStatusData,
)
from flowchat_platform.accounts import AccountCredentials
from flowchat_platform.meta_echo import SentThroughCloudApi

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


def conversation_of(customer: CustomerIdentity) -> str:
    """The conversation a customer's events count their ``sequence`` in: the phone number
    (digits) when known, else the BSUID. Statuses name their recipient, which is the phone
    number whenever FlowChat knows it, so a customer's received messages, statuses,
    hand-offs and orders share one sequence."""
    return (customer.wa_id or "").lstrip("+") or customer.key


#: The fields of an event's body that hold a customer's id (a phone number or a BSUID).
_CUSTOMER_KEYS = frozenset({"wa_id", "user_id", "parent_user_id", "recipient"})


def customer_ids(body: Any) -> list[str]:
    """Every customer id a FlowChat event's body names (``data.recipient``, a
    ``customer``'s ``wa_id`` / ``user_id`` / ``parent_user_id``, wherever they are), sorted
    and without repeats: what the store keeps keyed digests of, so that an erasure or an
    export finds the event without the ids in clear."""
    found: set[str] = set()
    stack = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _CUSTOMER_KEYS and isinstance(value, str) and value:
                    found.add(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))
    return sorted(found)


@dataclass(frozen=True)
class Outgoing:
    """One event to store: the FlowChat event (``sequence`` set by the store) and the
    Meta-shaped body builder's input."""

    event: AnyTenantEvent
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
    return Outgoing(event, source.recipient.lstrip("+") if source.recipient else None)


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
    return Outgoing(event, conversation_of(customer) if customer else None)


def handoff_requested_event(source: HandoffRequested) -> Outgoing:
    event = HandoffRequestedEvent(
        id=f"evt_{source.event_id}",
        tenant_id=source.tenant_id,
        account_id=source.account_id,
        timestamp=source.requested_at,
        data=HandoffRequestedData(
            customer=source.customer,
            reason=source.reason,
            bot_state=source.bot_state,
            requested_at=source.requested_at,
        ),
    )
    return Outgoing(event, conversation_of(source.customer))


def handoff_resolved_event(source: HandoffResolved) -> Outgoing:
    event = HandoffResolvedEvent(
        id=f"evt_{source.event_id}",
        tenant_id=source.tenant_id,
        account_id=source.account_id,
        timestamp=source.resolved_at,
        data=HandoffResolvedData(
            customer=source.customer,
            resolved_by=source.resolved_by,
            waited_s=source.waited_s,
            resolved_at=source.resolved_at,
        ),
    )
    return Outgoing(event, conversation_of(source.customer))


_ORDER_MODELS: dict[str, type[OrderCreated | OrderStatusChanged | OrderPaid]] = {
    "order.created": OrderCreated,
    "order.status_changed": OrderStatusChanged,
    "order.paid": OrderPaid,
}
_CAMPAIGN_MODELS: dict[str, type[CampaignStarted | CampaignPaused | CampaignCompleted]] = {
    "campaign.started": CampaignStarted,
    "campaign.paused": CampaignPaused,
    "campaign.completed": CampaignCompleted,
}


def order_event(source: OrderChanged) -> Outgoing:
    model = _ORDER_MODELS[ORDER_EVENT_TYPES[source.change]]
    event = model(
        id=f"evt_{source.event_id}",
        tenant_id=source.tenant_id,
        account_id=source.account_id,
        timestamp=source.occurred_at,
        data=source.order,
    )
    customer = source.order.customer
    return Outgoing(event, conversation_of(customer) if customer else None)


def campaign_event(source: CampaignChanged) -> Outgoing:
    model = _CAMPAIGN_MODELS[CAMPAIGN_EVENT_TYPES[source.change]]
    event = model(
        id=f"evt_{source.event_id}",
        tenant_id=source.tenant_id,
        account_id=source.account_id,
        timestamp=source.occurred_at,
        data=source.campaign,
    )
    return Outgoing(event, None)


class BusinessEventIn(BaseModel):
    """The gateway's ``business_event`` (the fields the relay reads)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["business_event"]
    event_id: str
    tenant_id: str
    account_id: str
    field: str
    event: str | None = None
    waba_id: str | None = None
    phone_number_id: str | None = None
    occurred_at: datetime
    data: dict[str, Any] = {}


TEMPLATE_FIELD = "message_template_status_update"
QUALITY_FIELD = "phone_number_quality_update"
#: The business fields that become an event (the others are not the tenant's news).
BUSINESS_EVENT_FIELDS = frozenset({TEMPLATE_FIELD, QUALITY_FIELD})


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def business_event(source: BusinessEventIn) -> Outgoing | None:
    """``template.status_changed`` / ``account.quality_changed``; None for other fields."""
    data = source.data
    event: TemplateStatusChanged | AccountQualityChanged
    if source.field == TEMPLATE_FIELD:
        event = TemplateStatusChanged(
            id=f"evt_{source.event_id}",
            tenant_id=source.tenant_id,
            account_id=source.account_id,
            timestamp=source.occurred_at,
            data=TemplateStatusData(
                waba_id=source.waba_id,
                template_id=_text(data.get("message_template_id")),
                name=_text(data.get("message_template_name")),
                language=_text(data.get("message_template_language")),
                status=source.event or _text(data.get("event")) or "UNKNOWN",
                reason=_text(data.get("reason")),
                details=data,
            ),
        )
    elif source.field == QUALITY_FIELD:
        event = AccountQualityChanged(
            id=f"evt_{source.event_id}",
            tenant_id=source.tenant_id,
            account_id=source.account_id,
            timestamp=source.occurred_at,
            data=AccountQualityData(
                waba_id=source.waba_id,
                phone_number_id=source.phone_number_id,
                display_phone_number=_text(data.get("display_phone_number")),
                event=source.event or _text(data.get("event")) or "UNKNOWN",
                current_limit=_text(data.get("current_limit")),
                old_limit=_text(data.get("old_limit")),
                details=data,
            ),
        )
    else:
        return None
    return Outgoing(event, None)


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


def meta_body(
    event: AnyTenantEvent,
    account: AccountCredentials,
    sent: SentThroughCloudApi | None = None,
) -> Any | None:
    """The webhook Meta would have sent for ``event`` (None when it has no Meta form:
    hand-offs, orders and campaigns are FlowChat's own). ``sent``: the status's message
    went through the gateway's compatible endpoint, whose id it then carries."""
    if isinstance(event, MessageStatus):
        return _meta_status(event, account, sent)
    if isinstance(event, MessageReceived):
        return _meta_message(event, account)
    if isinstance(event, TemplateStatusChanged):
        return _meta_account_field(TEMPLATE_FIELD, event, event.data.details, account)
    if isinstance(event, AccountQualityChanged):
        return _meta_account_field(QUALITY_FIELD, event, event.data.details, account)
    return None


def _meta_account_field(
    field: str,
    event: TemplateStatusChanged | AccountQualityChanged,
    value: dict[str, Any],
    account: AccountCredentials,
) -> Any:
    """An account-level change as Meta sends it: ``value`` as Meta sent it to FlowChat."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": account.waba_id or account.account_id,
                "time": int(event.timestamp.timestamp()),
                "changes": [{"field": field, "value": value}],
            }
        ],
    }


def _meta_status(
    event: MessageStatus, account: AccountCredentials, sent: SentThroughCloudApi | None
) -> Any | None:
    data = event.data
    # the id the compatible endpoint answered, else the provider's (Meta's WAMID)
    message_id = wamid_of(data.message_id) if sent is not None else data.provider_message_id
    if data.status not in META_STATUSES or not message_id:
        return None
    phone_number_id = account.phone_number_id
    if not phone_number_id:
        return None
    status: dict[str, Any] = {
        "id": message_id,
        "status": data.status,
        "timestamp": _unix(event.timestamp),
    }
    if sent is not None and sent.callback_data is not None:
        status["biz_opaque_callback_data"] = sent.callback_data
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
