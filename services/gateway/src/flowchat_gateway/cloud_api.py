"""Meta's Cloud API request bodies, read and translated into FlowChat's contracts. Pure.

``POST /{version}/{phone_number_id}/messages`` takes exactly Meta's body (the spec's
``sendMessage`` request; ``shared/reference/whatsapp-cloud-api.md`` §1) for every type
the sender sends: text; image, audio, video, document, sticker by ``id`` or ``link``;
template with components; interactive ``button`` and ``list``; reaction; location;
contacts. The customer is ``to`` (a phone number) or ``recipient`` (a BSUID; ``to``
wins when both are given, as Meta documents); ``context.message_id`` quotes a message;
``biz_opaque_callback_data`` is kept for the tenant (``OutboundCommand.callback_data``).

Anything else is refused with Meta's code 100 (invalid parameter) or 131009 (parameter
value invalid) and the parameter named, as Meta words it, via :class:`CloudApiError`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from flowchat_contracts import (
    ButtonsContent,
    ContactsContent,
    ListContent,
    ListRow,
    ListSection,
    LocationContent,
    MediaContent,
    ReactionContent,
    ReplyButton,
    TemplateComponent,
    TemplateContent,
    TemplateParameter,
    TextContent,
)
from flowchat_contracts.meta_codes import MetaCode
from flowchat_contracts.models import BSUID_PATTERN
from flowchat_gateway.errors import CloudApiError
from flowchat_platform.phones import InvalidPhoneNumber, to_wa_id

MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
SUPPORTED_TYPES = (
    *MEDIA_TYPES,
    "text",
    "template",
    "interactive",
    "reaction",
    "location",
    "contacts",
)
_BSUID = re.compile(BSUID_PATTERN)


class _Meta(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Loose(BaseModel):
    """Objects Meta documents more optional fields for than FlowChat carries."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Context(_Meta):
    message_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Text(_Meta):
    body: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    preview_url: bool = False


class MediaObject(_Meta):
    id: str | None = None
    link: str | None = None
    caption: str | None = None
    filename: str | None = None


class Language(_Meta):
    code: Annotated[str, StringConstraints(min_length=2, max_length=15)]
    policy: Literal["deterministic"] | None = None


class Currency(_Meta):
    fallback_value: str
    code: str
    amount_1000: int


class DateTime(_Loose):
    fallback_value: str


class MediaRef(_Meta):
    id: str | None = None
    link: str | None = None
    filename: str | None = None
    caption: str | None = None


PARAMETER_TYPES = ("text", "currency", "date_time", "image", "video", "document", "payload")


class Parameter(_Loose):
    """A template parameter; types FlowChat does not send (``action``, ``coupon_code``,
    …) are refused by :func:`_parameter` with 131009, not as a malformed body."""

    type: str
    text: str | None = None
    parameter_name: str | None = None
    currency: Currency | None = None
    date_time: DateTime | None = None
    image: MediaRef | None = None
    video: MediaRef | None = None
    document: MediaRef | None = None
    payload: str | None = None


class Component(_Meta):
    type: str
    sub_type: str | None = None
    index: int | str | None = None
    parameters: list[Parameter] = Field(default_factory=list)


class Template(_Meta):
    name: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    language: Language
    components: list[Component] = Field(default_factory=list)


class TextPart(_Meta):
    text: str


class Header(_Meta):
    type: Literal["text"]
    text: str


class Reply(_Meta):
    id: str
    title: str


class Button(_Meta):
    type: Literal["reply"]
    reply: Reply


class Row(_Meta):
    id: str
    title: str
    description: str | None = None


class Section(_Meta):
    title: str | None = None
    rows: list[Row]


class Action(_Meta):
    button: str | None = None
    buttons: list[Button] | None = None
    sections: list[Section] | None = None


class Interactive(_Loose):
    """An interactive message; FlowChat sends ``button`` and ``list`` (others: 131051)."""

    type: str
    header: dict[str, Any] | None = None
    body: TextPart | None = None
    footer: TextPart | None = None
    action: dict[str, Any] | None = None


class Reaction(_Meta):
    message_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    emoji: str


class Location(_Meta):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


class SendBody(_Meta):
    """Meta's ``sendMessage`` request body (the parts FlowChat sends)."""

    messaging_product: Literal["whatsapp"]
    recipient_type: Literal["individual"] = "individual"
    to: Annotated[str, StringConstraints(min_length=1, max_length=140)] | None = None
    recipient: Annotated[str, StringConstraints(min_length=1, max_length=140)] | None = None
    type: str = "text"
    context: Context | None = None
    biz_opaque_callback_data: Annotated[str, StringConstraints(max_length=512)] | None = None
    text: Text | None = None
    image: MediaObject | None = None
    audio: MediaObject | None = None
    video: MediaObject | None = None
    document: MediaObject | None = None
    sticker: MediaObject | None = None
    template: Template | None = None
    interactive: Interactive | None = None
    reaction: Reaction | None = None
    location: Location | None = None
    contacts: list[dict[str, Any]] | None = None


class ReadBody(_Meta):
    """Mark-as-read: ``{"messaging_product", "status": "read", "message_id"}``."""

    messaging_product: Literal["whatsapp"]
    status: Literal["read"]
    message_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    typing_indicator: dict[str, Any] | None = None


OutboundContentT = (
    TextContent
    | MediaContent
    | TemplateContent
    | ButtonsContent
    | ListContent
    | ReactionContent
    | LocationContent
    | ContactsContent
)


class Unsupported(Exception):
    """A well-formed message of a kind FlowChat does not send (Meta's 131051)."""


def invalid(details: str, code: int = MetaCode.INVALID_PARAMETER) -> CloudApiError:
    return CloudApiError(int(code), details, status=400)


def _refusal(exc: ValidationError, prefix: str = "") -> CloudApiError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in (*([prefix] if prefix else []), *first.get("loc", ())))
    kind = first.get("type", "")
    if kind == "missing":
        return invalid(f"The parameter {where} is required.")
    if kind == "extra_forbidden":
        return invalid(f"Param {where} is not a valid parameter.")
    return invalid(f"Param {where} is invalid: {first.get('msg', '')}")


def parse_send(body: Any) -> SendBody:
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    if "type" not in body:  # Meta's default: the one content object present, else text
        present = [kind for kind in SUPPORTED_TYPES if kind in body]
        body = {**body, "type": present[0] if len(present) == 1 else "text"}
    try:
        return SendBody.model_validate(body)
    except ValidationError as exc:
        raise _refusal(exc) from exc


def parse_read(body: dict[str, Any]) -> ReadBody:
    try:
        return ReadBody.model_validate(body)
    except ValidationError as exc:
        raise _refusal(exc) from exc


def customer_of(body: SendBody) -> tuple[str, str, dict[str, str]]:
    """``(input, customer id, contact)``: the customer as given, as FlowChat's
    ``CustomerId`` (a WhatsApp id or a BSUID), and Meta's ``contacts[0]`` for it."""
    if body.to is not None:
        raw = body.to
        if _BSUID.match(raw):  # Meta takes a BSUID in `to` too
            return raw, raw, {"input": raw, "user_id": raw}
        try:
            wa_id = to_wa_id(raw)
        except InvalidPhoneNumber as exc:
            raise invalid(f"Param to is not a valid phone number: {exc}") from exc
        return raw, wa_id, {"input": raw, "wa_id": wa_id}
    if body.recipient is not None:
        if not _BSUID.match(body.recipient):
            raise invalid("Param recipient must be a business-scoped user id (BSUID).")
        return body.recipient, body.recipient, {"input": body.recipient, "user_id": body.recipient}
    raise invalid("The parameter to is required.")


def content_of(body: SendBody) -> OutboundContentT:
    """The message of ``body`` as FlowChat's ``OutboundContent``."""
    kind = body.type
    if kind not in SUPPORTED_TYPES:
        raise invalid(
            f"Param type {kind!r} is not a supported message type.",
            MetaCode.UNSUPPORTED_MESSAGE_TYPE,
        )
    part = getattr(body, kind)
    if part is None:
        raise invalid(f"The parameter {kind} is required.")
    try:
        return _content(kind, part)
    except Unsupported as exc:
        raise invalid(f"Param {kind} is invalid: {exc}", MetaCode.UNSUPPORTED_MESSAGE_TYPE) from exc
    except ValidationError as exc:
        raise _refusal(exc, kind) from exc
    except ValueError as exc:
        raise invalid(f"Param {kind} is invalid: {exc}", MetaCode.PARAMETER_VALUE_INVALID) from exc


def _content(kind: str, part: Any) -> OutboundContentT:
    if isinstance(part, Text):
        return TextContent(body=part.body, preview_url=part.preview_url)
    if isinstance(part, MediaObject):
        return MediaContent(
            type=kind,
            media_id=part.id,
            link=part.link,
            caption=part.caption,
            filename=part.filename,
        )
    if isinstance(part, Template):
        return TemplateContent(
            name=part.name,
            language=part.language.code,
            components=[_component(c) for c in part.components],
        )
    if isinstance(part, Interactive):
        return _interactive(part)
    if isinstance(part, Reaction):
        return ReactionContent(message_id=part.message_id, emoji=part.emoji)
    if isinstance(part, Location):
        return LocationContent(
            latitude=part.latitude, longitude=part.longitude, name=part.name, address=part.address
        )
    assert isinstance(part, list)
    return ContactsContent(contacts=part)


def _component(c: Component) -> TemplateComponent:
    kind = c.type.lower()
    if kind not in ("header", "body", "button"):
        raise ValueError(f"component type {c.type!r} takes no parameters")
    index: int | None = None
    if c.index is not None:
        try:
            index = int(c.index)
        except ValueError:
            raise ValueError(f"button index {c.index!r} is not a number") from None
    return TemplateComponent(
        type=kind,
        sub_type=c.sub_type.lower() if c.sub_type else None,
        index=index,
        parameters=[_parameter(p) for p in c.parameters],
    )


def _parameter(p: Parameter) -> TemplateParameter:
    if p.type not in PARAMETER_TYPES:
        raise ValueError(f"template parameters of type {p.type!r} are not supported")
    values: dict[str, Any] = {"type": p.type, "parameter_name": p.parameter_name}
    if p.type == "text":
        if p.text is None:
            raise ValueError("a text parameter needs text")
        values["text"] = p.text
    elif p.type == "currency":
        if p.currency is None:
            raise ValueError("a currency parameter needs currency")
        values["currency_code"] = p.currency.code
        values["amount"] = Decimal(p.currency.amount_1000) / 1000
        values["fallback_value"] = p.currency.fallback_value
    elif p.type == "date_time":
        if p.date_time is None:
            raise ValueError("a date_time parameter needs date_time")
        values["fallback_value"] = p.date_time.fallback_value
    elif p.type == "payload":
        if p.payload is None:
            raise ValueError("a payload parameter needs payload")
        values["payload"] = p.payload
    else:
        ref = getattr(p, p.type)
        if ref is None or (ref.id is None) == (ref.link is None):
            raise ValueError(f"a {p.type} parameter needs exactly one of id and link")
        values["media_id"] = ref.id
        values["link"] = ref.link
    return TemplateParameter(**values)


def _interactive(part: Interactive) -> ButtonsContent | ListContent:
    if part.type not in ("button", "list"):
        raise Unsupported(f"interactive messages of type {part.type!r} are not supported")
    if part.body is None or part.action is None:
        raise ValueError("interactive body and action are required")
    action = Action.model_validate(part.action)
    header = Header.model_validate(part.header).text if part.header else None
    footer = part.footer.text if part.footer else None
    if part.type == "button":
        if not action.buttons:
            raise ValueError("action.buttons is required")
        return ButtonsContent(
            body=part.body.text,
            header=header,
            footer=footer,
            buttons=[ReplyButton(id=b.reply.id, title=b.reply.title) for b in action.buttons],
        )
    if not action.sections or not action.button:
        raise ValueError("action.button and action.sections are required")
    return ListContent(
        body=part.body.text,
        button=action.button,
        header=header,
        footer=footer,
        sections=[
            ListSection(
                title=s.title,
                rows=[ListRow(id=r.id, title=r.title, description=r.description) for r in s.rows],
            )
            for s in action.sections
        ],
    )


__all__ = [
    "MEDIA_TYPES",
    "ReadBody",
    "SendBody",
    "content_of",
    "customer_of",
    "invalid",
    "parse_read",
    "parse_send",
]
