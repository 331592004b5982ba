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

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, model_validator

SCHEMA_VERSION: Literal[1] = 1

Provider = Literal["meta", "twilio"]
MessageCategory = Literal["marketing", "utility", "authentication", "service"]
Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
#: A WhatsApp id: the recipient's phone number in international format, digits only.
WaId = Annotated[str, StringConstraints(pattern=r"^\+?[1-9][0-9]{6,14}$")]


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Envelope(_Model):
    schema_version: Literal[1] = SCHEMA_VERSION
    tenant_id: Id
    account_id: Id
    correlation_id: Id = Field(default_factory=new_id)


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
]


class InboundMessage(_Envelope):
    """A customer's message, normalized from Meta's or Twilio's webhook."""

    kind: Literal["inbound_message"] = "inbound_message"
    event_id: Id = Field(default_factory=new_id)
    provider: Provider
    provider_message_id: Id
    phone_number_id: str
    customer_wa_id: WaId
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
    recipient_id: str | None = None
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
    | ReactionContent
    | LocationContent
    | ContactsContent,
    Field(discriminator="type"),
]


class OutboundCommand(_Envelope):
    """Send one message to one customer. Published to ``flowchat.outbound``.

    ``idempotency_key`` makes the send effectively-once: a second command with the
    same key (per tenant) is never sent again.
    """

    kind: Literal["outbound_command"] = "outbound_command"
    message_id: Id = Field(default_factory=new_id)
    idempotency_key: Id
    to: WaId
    category: MessageCategory = "service"
    campaign_id: str | None = None
    reply_to: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    content: OutboundContent


class SendResult(_Envelope):
    """What happened when the sender handed a command to the provider."""

    kind: Literal["send_result"] = "send_result"
    message_id: Id
    idempotency_key: Id
    to: WaId
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


#: At most this many results in one :class:`SendResultBatch`.
SEND_RESULT_BATCH_MAX = 1000


class SendResultBatch(_Envelope):
    """Several ``SendResult`` of one account in one message: a busy sender's form (one
    broker write and one confirm for many outcomes; a lone result goes as a plain
    ``SendResult``). Consumers of ``flowchat.status`` take both:
    :func:`send_results_in` reads either body."""

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


#: Everything on ``flowchat.status``, told apart by ``kind``.
StatusEvent = Annotated[SendResult | SendResultBatch | StatusUpdate, Field(discriminator="kind")]

_SEND_RESULTS: TypeAdapter[SendResult | SendResultBatch] = TypeAdapter(
    Annotated[SendResult | SendResultBatch, Field(discriminator="kind")]
)


def send_results_in(body: bytes | str) -> list[SendResult]:
    """The send results a ``flowchat.status`` body carries: one ``SendResult`` or a batch."""
    event = _SEND_RESULTS.validate_json(body)
    return event.results if isinstance(event, SendResultBatch) else [event]
