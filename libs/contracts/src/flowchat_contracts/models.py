"""FlowChat's queue contracts, version 1.

Every model carries ``schema_version``, a constant ``kind`` naming it (so a
consumer can tell messages apart from the body alone), the tenant and account it
belongs to, and a correlation id that follows one customer interaction through
every service. Unknown fields are ignored on read (forward compatibility);
limits follow WhatsApp's documented ones so a bad command is refused at the edge
instead of by Meta.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    TypeAdapter,
    model_validator,
)

SCHEMA_VERSION: Literal[1] = 1

Provider = Literal["meta", "twilio"]
MessageCategory = Literal["marketing", "utility", "authentication", "service"]
Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
#: A WhatsApp id: the recipient's phone number in international format, digits only.
WA_ID_PATTERN = r"^\+?[1-9][0-9]{6,14}$"
WaId = Annotated[str, StringConstraints(pattern=WA_ID_PATTERN)]
#: A business-scoped user id (BSUID): ``CC.<alphanumerics>`` (CC the ISO 3166 country),
#: or a parent BSUID ``CC.ENT.<alphanumerics>``. Meta sends it for every user since 2026,
#: and instead of the phone number when the user hides it behind a username.
BSUID_PATTERN = r"^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$"
Bsuid = Annotated[str, StringConstraints(pattern=BSUID_PATTERN)]
#: Whom a message goes to: a phone number (WhatsApp id) or a BSUID. The sender
#: addresses a BSUID with Meta's ``recipient`` field and a phone number with ``to``.
CUSTOMER_ID_PATTERN = f"^({WA_ID_PATTERN[1:-1]}|{BSUID_PATTERN[1:-1]})$"
CustomerId = Annotated[str, StringConstraints(pattern=CUSTOMER_ID_PATTERN)]


def is_bsuid(customer_id: str) -> bool:
    """True for a BSUID (``US.1349…``), False for a phone number."""
    return "." in customer_id


#: The ``schema_version`` of :class:`InboundMessageV2`.
INBOUND_SCHEMA_VERSION_2: Literal[2] = 2


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Scoped(_Model):
    tenant_id: Id
    account_id: Id
    correlation_id: Id = Field(default_factory=new_id)


class _Envelope(_Scoped):
    schema_version: Literal[1] = SCHEMA_VERSION


# --------------------------------------------------------------------- shared parts


class ProviderError(_Model):
    """An error as the provider reported it (Meta's ``code``/``title``/``details``)."""

    code: int
    title: str = ""
    message: str = ""
    details: str = ""


class Pricing(_Model):
    billable: bool | None = None
    category: str | None = None
    pricing_model: str | None = None
    #: ``regular``, ``free_customer_service`` or ``free_entry_point`` (Meta's PMP).
    type: str | None = None


class Media(_Model):
    id: str | None = None
    link: str | None = None
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None


class Location(_Model):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


class Reply(_Model):
    """A tapped button or list row (interactive reply or template quick reply)."""

    id: str
    title: str = ""
    description: str | None = None


class CustomerIdentity(_Model):
    """Who a customer is: a BSUID, a phone number (WhatsApp id), or both.

    - ``user_id``: the business-scoped user id (BSUID). Meta sends it with every
      message and status since 2026; it stays the same when the username changes and
      is replaced when the user changes phone number (announced by the system message
      ``user_changed_user_id`` / ``user_changed_number`` with the previous ids).
    - ``wa_id``: the phone number, absent when the user hides it behind a username.
    - ``parent_user_id``: the parent BSUID (``CC.ENT.…``), shared across linked
      portfolios; only when Meta enables it.
    - ``username``: shown to people, can change: never a key.

    At least one of the ids is present. :attr:`key` is the id to key a customer by:
    the BSUID when there is one, else the phone number. Both ids are the same person:
    a consumer that sees them together links them (an alias), so data keyed by the
    phone before BSUIDs existed still finds its customer.
    """

    wa_id: WaId | None = None
    user_id: Bsuid | None = None
    parent_user_id: Bsuid | None = None
    username: Annotated[str, StringConstraints(max_length=128)] | None = None

    @model_validator(mode="after")
    def _has_an_id(self) -> CustomerIdentity:
        if self.wa_id is None and self.user_id is None and self.parent_user_id is None:
            raise ValueError("a customer identity needs a wa_id, a user_id or a parent_user_id")
        return self

    @property
    def key(self) -> str:
        """The stable key: the BSUID, else the phone number, else the parent BSUID."""
        key = self.user_id or (self.wa_id.lstrip("+") if self.wa_id else self.parent_user_id)
        assert key is not None  # the validator guarantees one id
        return key

    @property
    def ids(self) -> tuple[str, ...]:
        """Every id of this customer (phone digits without ``+``), for alias links."""
        return tuple(
            i
            for i in (
                self.user_id,
                self.wa_id.lstrip("+") if self.wa_id else None,
                self.parent_user_id,
            )
            if i
        )


class FlowResponse(_Model):
    """A WhatsApp Flow's answer (``interactive.nfm_reply``)."""

    #: ``flow`` for a Flow, ``address_message`` for an address message.
    name: str | None = None
    body: str | None = None
    #: ``response_json`` parsed (it carries the ``flow_token``); None when not JSON.
    response: dict[str, Any] | None = None
    #: ``response_json`` exactly as Meta sent it.
    response_json: str | None = None

    @property
    def flow_token(self) -> str | None:
        token = (self.response or {}).get("flow_token")
        return token if isinstance(token, str) else None


class CallPermissionReply(_Model):
    """The customer's answer to a call-permission request."""

    response: str
    is_permanent: bool | None = None
    #: Only for a temporary grant.
    expiration_timestamp: datetime | None = None
    #: ``user_action`` or ``automatic``.
    response_source: str | None = None


class MarketingPreference(_Model):
    """One item of Meta's ``user_preferences`` webhook: a marketing opt-out or resume."""

    customer: CustomerIdentity
    #: ``stop`` or ``resume`` (``signup`` possible); compare lower-cased.
    value: str
    category: str = "marketing_messages"
    detail: str | None = None
    timestamp: datetime | None = None


# --------------------------------------------------------------------- inbound

InboundType = Literal[
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "reaction",
    "button",
    "interactive",
    "order",
    "referral",
    "system",
    "unsupported",
    # a WhatsApp Flow's answer (``flow``), an edit or deletion of an earlier message
    # (``original_message_id``), a call-permission answer (``call_permission``)
    "flow_response",
    "edit",
    "revoke",
    "call_permission_reply",
]


class _InboundFields(_Scoped):
    kind: Literal["inbound_message"] = "inbound_message"
    event_id: Id = Field(default_factory=new_id)
    provider: Provider
    provider_message_id: Id
    phone_number_id: str
    customer_name: str | None = None
    type: InboundType
    timestamp: datetime
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
    system: dict[str, Any] | None = None
    errors: list[ProviderError] = Field(default_factory=list)
    #: ``flow_response``: the Flow's answer.
    flow: FlowResponse | None = None
    #: ``edit`` and ``revoke``: the message edited or deleted. An edit carries the new
    #: content in the usual fields (``text``, ``media``, …) and its type in ``edited_type``.
    original_message_id: str | None = None
    edited_type: str | None = None
    #: ``call_permission_reply``: the answer.
    call_permission: CallPermissionReply | None = None
    #: ``system`` messages ``user_changed_number`` / ``user_changed_user_id``: the ids the
    #: customer had before (``customer`` holds the new ones).
    previous_customer: CustomerIdentity | None = None


class InboundMessage(_InboundFields):
    """A customer's message, normalized from Meta's or Twilio's webhook (version 1).

    ``customer_wa_id`` is required: a message from a customer whose phone number is
    hidden is published as :class:`InboundMessageV2` instead (see docs/queue-contracts.md).
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    customer_wa_id: WaId
    #: The customer's identity (BSUID, phone, both); None only from old publishers.
    customer: CustomerIdentity | None = None


class InboundMessageV2(_InboundFields):
    """A customer's message, version 2: the customer is an identity (BSUID, phone, or
    both) and ``customer_wa_id`` may be absent. Same ``kind``, exchange and routing
    keys as version 1; a v1-only consumer refuses it (``schema_version``)."""

    schema_version: Literal[2] = INBOUND_SCHEMA_VERSION_2
    customer: CustomerIdentity
    #: The phone number when the customer shows it (the same as ``customer.wa_id``).
    customer_wa_id: WaId | None = None


def _version_of(value: Any) -> str:
    """A body's ``schema_version`` as a union tag (1 when absent)."""
    version = (
        value.get("schema_version", SCHEMA_VERSION)
        if isinstance(value, dict)
        else getattr(value, "schema_version", SCHEMA_VERSION)
    )
    return str(version)


#: Any version of an inbound message, told apart by ``schema_version`` (1 when absent).
AnyInboundMessage = Annotated[
    Annotated[InboundMessage, Tag("1")] | Annotated[InboundMessageV2, Tag("2")],
    Discriminator(_version_of),
]

_ANY_INBOUND: TypeAdapter[InboundMessage | InboundMessageV2] = TypeAdapter(AnyInboundMessage)


def inbound_message_in(body: bytes | str) -> InboundMessage | InboundMessageV2:
    """The inbound message a ``flowchat.inbound`` body carries, of either version."""
    return _ANY_INBOUND.validate_json(body)


# --------------------------------------------------------------------- statuses

ProviderStatus = Literal["sent", "delivered", "read", "played", "failed"]


class StatusUpdate(_Envelope):
    """A delivery status from the provider (Meta status webhook, Twilio callback)."""

    kind: Literal["status_update"] = "status_update"
    event_id: Id = Field(default_factory=new_id)
    provider: Provider
    provider_message_id: Id
    status: ProviderStatus
    timestamp: datetime
    #: The phone number the message went to; absent when it was sent to a BSUID.
    recipient_id: str | None = None
    #: The recipient as an identity (BSUID, phone, both) when the provider names it.
    customer: CustomerIdentity | None = None
    #: FlowChat's message id, echoed back by Meta from ``biz_opaque_callback_data``.
    message_id: str | None = None
    errors: list[ProviderError] = Field(default_factory=list)
    pricing: Pricing | None = None
    conversation_id: str | None = None


# --------------------------------------------------------------------- outbound

_Text4096 = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
_Caption = Annotated[str, StringConstraints(max_length=1024)]


class TextContent(_Model):
    type: Literal["text"] = "text"
    body: _Text4096
    preview_url: bool = False


class MediaContent(_Model):
    type: Literal["image", "video", "audio", "document", "sticker"]
    media_id: str | None = None
    link: str | None = None
    caption: _Caption | None = None
    filename: str | None = None

    @model_validator(mode="after")
    def _id_xor_link(self) -> MediaContent:
        if (self.media_id is None) == (self.link is None):
            raise ValueError("exactly one of media_id and link is required")
        if self.caption is not None and self.type not in ("image", "video", "document"):
            raise ValueError(f"{self.type} messages take no caption")
        if self.filename is not None and self.type != "document":
            raise ValueError("only documents take a filename")
        return self


class TemplateParameter(_Model):
    """One template parameter; ``parameter_name`` is set for NAMED templates."""

    type: Literal["text", "currency", "date_time", "image", "video", "document", "payload"]
    text: str | None = None
    parameter_name: str | None = None
    currency_code: str | None = None
    amount: Decimal | None = None
    fallback_value: str | None = None
    media_id: str | None = None
    link: str | None = None
    payload: str | None = None


class TemplateComponent(_Model):
    type: Literal["header", "body", "button"]
    sub_type: Literal["quick_reply", "url", "catalog"] | None = None
    index: int | None = Field(default=None, ge=0, le=9)
    parameters: list[TemplateParameter] = Field(default_factory=list)


class TemplateContent(_Model):
    type: Literal["template"] = "template"
    name: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    language: Annotated[str, StringConstraints(min_length=2, max_length=15)]
    components: list[TemplateComponent] = Field(default_factory=list)


class ReplyButton(_Model):
    id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    title: Annotated[str, StringConstraints(min_length=1, max_length=20)]


class ButtonsContent(_Model):
    type: Literal["interactive_buttons"] = "interactive_buttons"
    body: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    header: Annotated[str, StringConstraints(max_length=60)] | None = None
    footer: Annotated[str, StringConstraints(max_length=60)] | None = None
    buttons: Annotated[list[ReplyButton], Field(min_length=1, max_length=3)]

    @model_validator(mode="after")
    def _unique_ids(self) -> ButtonsContent:
        ids = [b.id for b in self.buttons]
        if len(set(ids)) != len(ids):
            raise ValueError("button ids must be unique")
        return self


class ListRow(_Model):
    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    title: Annotated[str, StringConstraints(min_length=1, max_length=24)]
    description: Annotated[str, StringConstraints(max_length=72)] | None = None


class ListSection(_Model):
    title: Annotated[str, StringConstraints(max_length=24)] | None = None
    rows: Annotated[list[ListRow], Field(min_length=1, max_length=10)]


class ListContent(_Model):
    type: Literal["interactive_list"] = "interactive_list"
    body: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    button: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    header: Annotated[str, StringConstraints(max_length=60)] | None = None
    footer: Annotated[str, StringConstraints(max_length=60)] | None = None
    sections: Annotated[list[ListSection], Field(min_length=1, max_length=10)]

    @model_validator(mode="after")
    def _row_limits(self) -> ListContent:
        rows = [row.id for section in self.sections for row in section.rows]
        if len(rows) > 10:
            raise ValueError("a list message has at most 10 rows in all")
        if len(set(rows)) != len(rows):
            raise ValueError("row ids must be unique")
        if len(self.sections) > 1 and any(not s.title for s in self.sections):
            raise ValueError("every section needs a title when there are several")
        return self


class CtaUrlContent(_Model):
    """An interactive call-to-action URL button (Cloud API ``interactive.type:
    cta_url``): a payment link, a tracking page."""

    type: Literal["cta_url"] = "cta_url"
    body: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    display_text: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    url: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    header: Annotated[str, StringConstraints(max_length=60)] | None = None
    footer: Annotated[str, StringConstraints(max_length=60)] | None = None


class ProductContent(_Model):
    """A single-product message (``interactive.type: product``) from the number's
    connected catalog."""

    type: Literal["product"] = "product"
    catalog_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    product_retailer_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    body: Annotated[str, StringConstraints(max_length=1024)] | None = None
    footer: Annotated[str, StringConstraints(max_length=60)] | None = None


class ProductSection(_Model):
    title: Annotated[str, StringConstraints(min_length=1, max_length=24)]
    product_retailer_ids: Annotated[list[str], Field(min_length=1, max_length=30)]


class ProductListContent(_Model):
    """A multi-product message (``interactive.type: product_list``): up to 10
    sections and 30 products in all."""

    type: Literal["product_list"] = "product_list"
    catalog_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    header: Annotated[str, StringConstraints(min_length=1, max_length=60)]
    body: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    footer: Annotated[str, StringConstraints(max_length=60)] | None = None
    sections: Annotated[list[ProductSection], Field(min_length=1, max_length=10)]

    @model_validator(mode="after")
    def _limits(self) -> ProductListContent:
        if sum(len(s.product_retailer_ids) for s in self.sections) > 30:
            raise ValueError("a product list message has at most 30 products in all")
        return self


class CatalogContent(_Model):
    """The catalog message (``interactive.type: catalog_message``): the number's whole
    connected catalog behind a "View catalog" button."""

    type: Literal["catalog_message"] = "catalog_message"
    body: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    footer: Annotated[str, StringConstraints(max_length=60)] | None = None
    #: The product whose image heads the message (Meta's schema requires one).
    thumbnail_product_retailer_id: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class FlowContent(_Model):
    """A WhatsApp Flow message (``interactive.type: flow``); the customer's answer comes
    back as an ``nfm_reply`` carrying ``flow_token``."""

    type: Literal["flow"] = "flow"
    flow_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    flow_token: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    flow_cta: Annotated[str, StringConstraints(min_length=1, max_length=30)]
    body: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    header: Annotated[str, StringConstraints(max_length=60)] | None = None
    footer: Annotated[str, StringConstraints(max_length=60)] | None = None
    #: The first screen and its data (``flow_action: navigate``).
    screen: str | None = None
    data: dict[str, Any] | None = None


class ReactionContent(_Model):
    type: Literal["reaction"] = "reaction"
    message_id: Id
    #: An empty emoji removes the reaction.
    emoji: Annotated[str, StringConstraints(max_length=16)]


class LocationContent(_Model):
    type: Literal["location"] = "location"
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]
    name: str | None = None
    address: str | None = None


class ContactsContent(_Model):
    type: Literal["contacts"] = "contacts"
    #: Contact cards in the Cloud API's shape (name, phones, emails, …).
    contacts: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=5)]


OutboundContent = Annotated[
    TextContent
    | MediaContent
    | TemplateContent
    | ButtonsContent
    | ListContent
    | CtaUrlContent
    | ProductContent
    | ProductListContent
    | CatalogContent
    | FlowContent
    | ReactionContent
    | LocationContent
    | ContactsContent,
    Field(discriminator="type"),
]


#: Who wrote an outbound message: the commerce bot, a person in the inbox, a campaign, a
#: scheduled reminder, or a tenant's program through the send API.
MessageOrigin = Literal["bot", "agent", "campaign", "reminder", "api"]


class OutboundCommand(_Envelope):
    """Send one message to one customer. Published to ``flowchat.outbound``.

    ``idempotency_key`` makes the send effectively-once: a second command with the
    same key (per tenant) is never sent again.
    """

    kind: Literal["outbound_command"] = "outbound_command"
    message_id: Id = Field(default_factory=new_id)
    idempotency_key: Id
    #: A phone number (WhatsApp id) or, for a customer who hides it, a BSUID.
    to: CustomerId
    category: MessageCategory = "service"
    campaign_id: str | None = None
    reply_to: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    content: OutboundContent
    #: The tenant's own ``biz_opaque_callback_data`` (gateway's Cloud-API-compatible
    #: endpoint), for ``meta``-format status webhooks to echo. Not sent to Meta: the
    #: sender's ``biz_opaque_callback_data`` carries FlowChat's ``message_id``.
    callback_data: Annotated[str, StringConstraints(max_length=512)] | None = None
    #: Who wrote the message, for the conversation history (the inbox). Optional: a
    #: consumer derives it when absent (``campaign_id`` → campaign, and so on).
    origin: MessageOrigin | None = None
    #: The agent (user id) who wrote it, when ``origin`` is ``agent``.
    agent_id: Annotated[str, StringConstraints(max_length=128)] | None = None


class SendResult(_Envelope):
    """What happened when the sender handed a command to the provider."""

    kind: Literal["send_result"] = "send_result"
    message_id: Id
    idempotency_key: Id
    to: CustomerId
    message_type: str
    category: MessageCategory = "service"
    campaign_id: str | None = None
    status: Literal["accepted", "failed"]
    provider: Provider
    provider_message_id: str | None = None
    error: ProviderError | None = None
    attempts: int = Field(default=1, ge=1)
    occurred_at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _consistent(self) -> SendResult:
        if self.status == "accepted" and not self.provider_message_id:
            raise ValueError("an accepted send carries the provider's message id")
        if self.status == "failed" and self.error is None:
            raise ValueError("a failed send carries the error")
        return self


#: At most this many results in one batch (:class:`SendResultBatch`, either version).
SEND_RESULT_BATCH_MAX = 1000


class SendResultBatch(_Envelope):
    """Several ``SendResult`` of one account in one message (version 1): a busy sender's
    form (one broker write and one confirm for many outcomes; a lone result goes as a
    plain ``SendResult``). :class:`SendResultBatchV2` holds any accounts' results.
    Consumers of ``flowchat.status`` take every form: :func:`send_results_in` reads
    each body."""

    kind: Literal["send_result_batch"] = "send_result_batch"
    results: list[SendResult] = Field(min_length=1, max_length=SEND_RESULT_BATCH_MAX)

    @model_validator(mode="after")
    def _one_account(self) -> SendResultBatch:
        for r in self.results:
            if r.tenant_id != self.tenant_id or r.account_id != self.account_id:
                raise ValueError(
                    "every result of a batch belongs to the batch's tenant and account"
                )
        return self


def _require(schema: dict[str, Any], name: str) -> None:
    schema["required"] = [name, *schema.get("required", [])]


#: The ``schema_version`` of :class:`SendResultBatchV2`.
SEND_RESULT_BATCH_VERSION_2: Literal[2] = 2


class SendResultBatchV2(_Model):
    """Send results of any accounts, of any tenants, in one message (version 2): each
    result names its own tenant and account, so a sender busy with many numbers makes
    one broker write and one confirm for all the results that finished together (v1's
    one message per account made one per result with a thousand numbers busy).

    Same ``kind``, exchange and consumers as version 1; the routing key's tenant and
    account words are the results' when they share them, else ``-``
    (``topology.send_results_routing_key``). A v1-only consumer refuses it
    (``schema_version``): consumers first, then publishers (docs/queue-contracts.md).
    """

    # required in the JSON Schema: a body without it reads as version 1
    model_config = ConfigDict(json_schema_extra=lambda s: _require(s, "schema_version"))

    schema_version: Literal[2] = SEND_RESULT_BATCH_VERSION_2
    kind: Literal["send_result_batch"] = "send_result_batch"
    correlation_id: Id = Field(default_factory=new_id)
    results: list[SendResult] = Field(min_length=1, max_length=SEND_RESULT_BATCH_MAX)


#: A batch of send results of either version, told apart by ``schema_version`` (1 when
#: absent): v1 one account's, v2 any accounts'.
AnySendResultBatch = Annotated[
    Annotated[SendResultBatch, Tag("1")] | Annotated[SendResultBatchV2, Tag("2")],
    Discriminator(_version_of),
]

#: Everything on ``flowchat.status``, told apart by ``kind`` (and a batch by its version).
StatusEvent = Annotated[SendResult | AnySendResultBatch | StatusUpdate, Field(discriminator="kind")]

_SEND_RESULTS: TypeAdapter[SendResult | SendResultBatch | SendResultBatchV2] = TypeAdapter(
    Annotated[SendResult | AnySendResultBatch, Field(discriminator="kind")]
)


def send_results_in(body: bytes | str) -> list[SendResult]:
    """The send results a ``flowchat.status`` body carries: one ``SendResult`` or a
    batch of either version."""
    event = _SEND_RESULTS.validate_json(body)
    return [event] if isinstance(event, SendResult) else event.results


# --------------------------------------------------------------------- hand-offs


class HandoffRequested(_Envelope):
    """The bot handed a conversation to people (the customer asked for an agent), or an
    agent took it over in the inbox (``taken_over_by``).

    Published on ``flowchat.events`` with the key ``<tenant>.<account>.handoff_requested``
    (``topology.HANDOFF_REQUESTED``); the inbox opens a conversation for it. AMQP
    ``message_id`` is ``event_id``: subscribers deduplicate by it.
    """

    kind: Literal["handoff_requested"] = "handoff_requested"
    event_id: Id = Field(default_factory=new_id)
    customer: CustomerIdentity
    reason: Annotated[str, StringConstraints(max_length=200)] | None = None
    #: The bot's state when it handed over (``REVIEWING_ORDER``, …).
    bot_state: Annotated[str, StringConstraints(max_length=64)] | None = None
    #: The agent who took the conversation over from the bot in the inbox (None: the
    #: bot handed it over). The conversation service quiets the bot for such an event
    #: (the bot's own hand-off already did).
    taken_over_by: Annotated[str, StringConstraints(max_length=128)] | None = None
    requested_at: datetime = Field(default_factory=utcnow)


class HandoffResolved(_Envelope):
    """People are done with a conversation: the bot speaks again.

    Published by the inbox on ``flowchat.events`` with the key
    ``<tenant>.<account>.handoff_resolved``; the conversation service releases its
    hand-off (what ``POST …/conversations/{wa_id}/release`` does). Idempotent by
    ``event_id``.
    """

    kind: Literal["handoff_resolved"] = "handoff_resolved"
    event_id: Id = Field(default_factory=new_id)
    customer: CustomerIdentity
    #: Who resolved it (an agent id), when known.
    resolved_by: Annotated[str, StringConstraints(max_length=128)] | None = None
    #: Seconds from the hand-off to the first agent reply (None: nobody replied).
    waited_s: float | None = Field(default=None, ge=0)
    resolved_at: datetime = Field(default_factory=utcnow)
