"""Every event FlowChat delivers to tenants' endpoints beyond ``message.received`` and
``message.status`` (those are :mod:`flowchat_contracts.webhooks`), version 1, and the
two internal events on ``flowchat.events`` the relay turns into the order and campaign
ones.

Delivered (the relay's ``flowchat`` format; same envelope as :mod:`~flowchat_contracts.webhooks`:
stable ``id``, tenant, account, ``timestamp``, per-conversation ``sequence``):

- ``conversation.handoff_requested`` / ``conversation.handoff_resolved`` (the latter with
  the customer's waiting time), from the conversation service's and the inbox's
  hand-off events;
- ``order.created`` / ``order.status_changed`` / ``order.paid``, from
  :class:`OrderChanged` (the conversation service's commerce);
- ``campaign.started`` / ``campaign.paused`` (with the reason) / ``campaign.completed``,
  from :class:`CampaignChanged` (the conversation service's outreach);
- ``template.status_changed`` and ``account.quality_changed``, from the gateway's
  ``business_event`` of Meta's ``message_template_status_update`` and
  ``phone_number_quality_update`` webhooks.

:class:`OrderChanged` and :class:`CampaignChanged` exist only for the relay: their
publishers send them only while some endpoint of the tenant subscribes to the event
type (``flowchat_platform.subscriptions``). Receivers ignore fields they do not know.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowchat_contracts.models import SCHEMA_VERSION, CustomerIdentity, new_id, utcnow
from flowchat_contracts.webhooks import EVENT_TYPES as MESSAGE_EVENT_TYPES
from flowchat_contracts.webhooks import MessageReceived, MessageStatus, _Event

HANDOFF_REQUESTED = "conversation.handoff_requested"
HANDOFF_RESOLVED = "conversation.handoff_resolved"
ORDER_CREATED = "order.created"
ORDER_STATUS_CHANGED = "order.status_changed"
ORDER_PAID = "order.paid"
CAMPAIGN_STARTED = "campaign.started"
CAMPAIGN_PAUSED = "campaign.paused"
CAMPAIGN_COMPLETED = "campaign.completed"
TEMPLATE_STATUS_CHANGED = "template.status_changed"
ACCOUNT_QUALITY_CHANGED = "account.quality_changed"

#: The event types of this module, in the order the docs list them.
MORE_EVENT_TYPES: tuple[str, ...] = (
    HANDOFF_REQUESTED,
    HANDOFF_RESOLVED,
    ORDER_CREATED,
    ORDER_STATUS_CHANGED,
    ORDER_PAID,
    CAMPAIGN_STARTED,
    CAMPAIGN_PAUSED,
    CAMPAIGN_COMPLETED,
    TEMPLATE_STATUS_CHANGED,
    ACCOUNT_QUALITY_CHANGED,
)
#: Every event type an endpoint can subscribe to.
ALL_EVENT_TYPES: tuple[str, ...] = (*MESSAGE_EVENT_TYPES, *MORE_EVENT_TYPES)


class _Data(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# --------------------------------------------------------------------- hand-offs


class HandoffRequestedData(_Data):
    customer: CustomerIdentity
    reason: str | None = None
    #: The bot's state when it handed over (``REVIEWING_ORDER``, …).
    bot_state: str | None = None
    requested_at: datetime


class HandoffRequestedEvent(_Event):
    """``conversation.handoff_requested``: the bot handed the conversation to people."""

    type: Literal["conversation.handoff_requested"] = "conversation.handoff_requested"
    data: HandoffRequestedData


class HandoffResolvedData(_Data):
    customer: CustomerIdentity
    #: Who resolved it (an agent id), when known.
    resolved_by: str | None = None
    #: Seconds the customer waited for the first agent reply (None: nobody replied).
    waited_s: float | None = Field(default=None, ge=0)
    resolved_at: datetime


class HandoffResolvedEvent(_Event):
    """``conversation.handoff_resolved``: people are done; the bot speaks again."""

    type: Literal["conversation.handoff_resolved"] = "conversation.handoff_resolved"
    data: HandoffResolvedData


# --------------------------------------------------------------------- orders

OrderChange = Literal["created", "status_changed", "paid"]
#: Amounts are decimal strings (``"12.50"``): never a float.
Amount = Annotated[str, Field(pattern=r"^-?[0-9]+(\.[0-9]+)?$", max_length=32)]


class OrderData(_Data):
    order_id: str
    customer: CustomerIdentity | None = None
    #: The order's status now (``confirmed``, ``processing``, ``shipped``, …).
    status: str
    #: Its status before this change (None for ``order.created``).
    previous_status: str | None = None
    reason: str | None = None
    currency: str
    total: Amount
    amount_paid: Amount | None = None
    #: The reference the customer pays with.
    payment_reference: str | None = None


class OrderCreated(_Event):
    """``order.created``: a customer placed an order through the bot."""

    type: Literal["order.created"] = "order.created"
    data: OrderData


class OrderStatusChanged(_Event):
    """``order.status_changed``: the order moved along its lifecycle."""

    type: Literal["order.status_changed"] = "order.status_changed"
    data: OrderData


class OrderPaid(_Event):
    """``order.paid``: payments now cover the order's invoice."""

    type: Literal["order.paid"] = "order.paid"
    data: OrderData


class OrderChanged(BaseModel):
    """The conversation service's order fact on ``flowchat.events`` (key
    ``<tenant>.<account>.order_changed``; AMQP ``message_id`` = ``event_id``), for the
    relay. ``change`` names the webhook event it becomes."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["order_changed"] = "order_changed"
    event_id: str = Field(default_factory=new_id, min_length=1, max_length=128)
    tenant_id: str = Field(min_length=1, max_length=128)
    account_id: str = Field(min_length=1, max_length=128)
    correlation_id: str = Field(default_factory=new_id, min_length=1, max_length=128)
    change: OrderChange
    order: OrderData
    occurred_at: datetime = Field(default_factory=utcnow)


ORDER_EVENT_TYPES: dict[OrderChange, str] = {
    "created": ORDER_CREATED,
    "status_changed": ORDER_STATUS_CHANGED,
    "paid": ORDER_PAID,
}


# --------------------------------------------------------------------- campaigns

CampaignChange = Literal["started", "paused", "completed"]


class CampaignData(_Data):
    campaign_id: str
    name: str | None = None
    #: The campaign's status now (``running``, ``paused``, ``completed``).
    status: str
    previous_status: str | None = None
    #: Why it paused (``operator``, ``template_paused``, an error's reason, …).
    reason: str | None = None


class CampaignStarted(_Event):
    """``campaign.started``: the campaign is running (started, on schedule, or resumed)."""

    type: Literal["campaign.started"] = "campaign.started"
    data: CampaignData


class CampaignPaused(_Event):
    """``campaign.paused``: by the operator or automatically, ``data.reason`` says why."""

    type: Literal["campaign.paused"] = "campaign.paused"
    data: CampaignData


class CampaignCompleted(_Event):
    """``campaign.completed``: every recipient was sent to or excluded."""

    type: Literal["campaign.completed"] = "campaign.completed"
    data: CampaignData


class CampaignChanged(BaseModel):
    """The conversation service's campaign fact on ``flowchat.events`` (key
    ``<tenant>.<account>.campaign_changed``), for the relay."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["campaign_changed"] = "campaign_changed"
    event_id: str = Field(default_factory=new_id, min_length=1, max_length=128)
    tenant_id: str = Field(min_length=1, max_length=128)
    account_id: str = Field(min_length=1, max_length=128)
    correlation_id: str = Field(default_factory=new_id, min_length=1, max_length=128)
    change: CampaignChange
    campaign: CampaignData
    occurred_at: datetime = Field(default_factory=utcnow)


CAMPAIGN_EVENT_TYPES: dict[CampaignChange, str] = {
    "started": CAMPAIGN_STARTED,
    "paused": CAMPAIGN_PAUSED,
    "completed": CAMPAIGN_COMPLETED,
}

#: The routing key's last word of the internal events.
ORDER_CHANGED_KIND = "order_changed"
CAMPAIGN_CHANGED_KIND = "campaign_changed"
ENDPOINT_DISABLED_KIND = "endpoint_disabled"
#: The account word of the key of a tenant-level event (no account: ``<tenant>.-.<kind>``).
NO_ACCOUNT = "-"


# --------------------------------------------------------------------- the relay's own

EndpointDisabledReason = Literal["gone", "failing"]


class EndpointDisabled(BaseModel):
    """The relay disabled one of the tenant's webhook endpoints (on ``flowchat.events``,
    key ``<tenant>.-.endpoint_disabled``; AMQP ``message_id`` = ``event_id``): it
    answered 410 Gone (``gone``), or all its attempts failed for the relay's
    ``DISABLE_AFTER_S`` (``failing``). One event per disabling; ``event_id`` is derived
    from the endpoint and ``disabled_at``. Carries the URL's host only, never the URL
    (its path or query may hold a token) nor anything of the secret."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["endpoint_disabled"] = "endpoint_disabled"
    event_id: str = Field(min_length=1, max_length=128)
    tenant_id: str = Field(min_length=1, max_length=128)
    endpoint_id: str = Field(min_length=1, max_length=128)
    #: The host of the endpoint's URL (no scheme, path, query or credentials).
    url_host: str = Field(max_length=255)
    reason: EndpointDisabledReason
    disabled_at: datetime
    #: The last attempt's HTTP status (None: no answer) and error, when known.
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=512)


# --------------------------------------------------------------------- account level


class TemplateStatusData(_Data):
    waba_id: str | None = None
    template_id: str | None = None
    name: str | None = None
    language: str | None = None
    #: Meta's ``event``: APPROVED, REJECTED, PAUSED, DISABLED, PENDING_DELETION, …
    status: str
    reason: str | None = None
    #: Meta's ``value`` as sent (``other_info``, …).
    details: dict[str, Any] = Field(default_factory=dict)


class TemplateStatusChanged(_Event):
    """``template.status_changed``: one of the tenant's templates changed status."""

    type: Literal["template.status_changed"] = "template.status_changed"
    data: TemplateStatusData


class AccountQualityData(_Data):
    waba_id: str | None = None
    phone_number_id: str | None = None
    display_phone_number: str | None = None
    #: Meta's ``event``: FLAGGED, UNFLAGGED, UPGRADE, DOWNGRADE, ONBOARDING, …
    event: str
    current_limit: str | None = None
    old_limit: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class AccountQualityChanged(_Event):
    """``account.quality_changed``: a number's quality or messaging limit changed."""

    type: Literal["account.quality_changed"] = "account.quality_changed"
    data: AccountQualityData


#: Any event the relay delivers, told apart by ``type``.
AnyTenantEvent = Annotated[
    MessageReceived
    | MessageStatus
    | HandoffRequestedEvent
    | HandoffResolvedEvent
    | OrderCreated
    | OrderStatusChanged
    | OrderPaid
    | CampaignStarted
    | CampaignPaused
    | CampaignCompleted
    | TemplateStatusChanged
    | AccountQualityChanged,
    Field(discriminator="type"),
]

#: File stem → model, for :mod:`flowchat_contracts.schemas`.
TENANT_EVENT_SCHEMAS: dict[str, type[BaseModel]] = {
    "webhook.conversation.handoff_requested.v1": HandoffRequestedEvent,
    "webhook.conversation.handoff_resolved.v1": HandoffResolvedEvent,
    "webhook.order.created.v1": OrderCreated,
    "webhook.order.status_changed.v1": OrderStatusChanged,
    "webhook.order.paid.v1": OrderPaid,
    "webhook.campaign.started.v1": CampaignStarted,
    "webhook.campaign.paused.v1": CampaignPaused,
    "webhook.campaign.completed.v1": CampaignCompleted,
    "webhook.template.status_changed.v1": TemplateStatusChanged,
    "webhook.account.quality_changed.v1": AccountQualityChanged,
    "order_changed.v1": OrderChanged,
    "campaign_changed.v1": CampaignChanged,
    "endpoint_disabled.v1": EndpointDisabled,
}
