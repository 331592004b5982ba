"""Provider webhooks → FlowChat events. Pure code: no I/O, no clock, no randomness.

Meta (``X-Hub-Signature-256`` verified elsewhere)::

    {"object": "whatsapp_business_account",
     "entry": [{"id": WABA_ID, "changes": [{"field": "messages", "value": {...}}, ...]}, ...]}

:func:`split_changes` cuts a payload into :class:`Change` s (each names its phone
number id, so the caller can find the account and its app secret);
:func:`normalize_change` turns one change of a known account into events:

- ``messages`` → one inbound message per ``value.messages[]`` (every type; an
  unknown type becomes ``unsupported``, never an error) and one
  :class:`StatusUpdate` per ``value.statuses[]``;
- the account-level fields of :data:`BUSINESS_FIELDS` → one :class:`BusinessEvent`
  (``user_preferences``, Meta's name for marketing opt-outs, is published as
  ``user_marketing_preferences``, the name consumers know: :data:`FIELD_ALIASES`);
- anything else is ignored.

Customers are identities (:class:`CustomerIdentity`): Meta names them by phone
number (``from``, ``wa_id``, ``recipient_id``), by business-scoped user id
(``from_user_id``, ``user_id``, ``recipient_user_id``, with parent ids and the
username in ``contacts[]``), or both. A message whose sender shows a phone number is
an :class:`InboundMessage` (version 1, ``customer_wa_id`` set); one from a customer
who hides it is an :class:`InboundMessageV2` — never parked for lacking a number.

Unknown fields are ignored everywhere. A piece that cannot be normalized (no id,
bad timestamp, a number that is not a WhatsApp id) is returned as :class:`Parked`
with the reason, never raised: the caller parks it for inspection and answers 200.

Event ids are derived from the provider's ids (:func:`event_id_for`), so a message
Meta delivers twice carries the same ``event_id`` both times and consumers can
drop the repeat even when the gateway's own dedupe could not run.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, get_args

import orjson
from pydantic import ValidationError

from flowchat_contracts import (
    CallPermissionReply,
    CustomerIdentity,
    FlowResponse,
    InboundMessage,
    InboundMessageV2,
    InboundType,
    Location,
    MarketingPreference,
    Media,
    Pricing,
    ProviderError,
    ProviderStatus,
    Reply,
    StatusUpdate,
    twilio_codes,
)
from flowchat_contracts.models import BSUID_PATTERN, WA_ID_PATTERN
from flowchat_gateway.events import BUSINESS_FIELDS, BusinessEvent

Inbound = InboundMessage | InboundMessageV2
Event = InboundMessage | InboundMessageV2 | StatusUpdate | BusinessEvent

#: Meta webhook fields published under another (older) field name consumers know.
FIELD_ALIASES: Mapping[str, str] = {"user_preferences": "user_marketing_preferences"}
_BSUID = re.compile(BSUID_PATTERN)
_PHONE = re.compile(WA_ID_PATTERN)

INBOUND_TYPES: frozenset[str] = frozenset(get_args(InboundType))
PROVIDER_STATUSES: frozenset[str] = frozenset(get_args(ProviderStatus))
MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
_EVENT_NAMESPACE = uuid.UUID("6f1d2f0e-3f4c-4e7a-9a51-0c8f5d3b2a10")


@dataclass(frozen=True)
class AccountRef:
    """The FlowChat account a change belongs to."""

    tenant_id: str
    account_id: str


@dataclass(frozen=True)
class Change:
    """One ``entry[i].changes[j]`` of a Meta webhook."""

    waba_id: str | None
    field: str
    value: dict[str, Any]
    entry_time: int | None = None

    @property
    def phone_number_id(self) -> str | None:
        return _text(_obj(self.value.get("metadata")).get("phone_number_id"))


@dataclass(frozen=True)
class Parked:
    """A piece of a webhook that could not be normalized, kept for inspection."""

    reason: str
    detail: str
    data: Any


@dataclass
class Normalized:
    events: list[Event] = field(default_factory=list)
    parked: list[Parked] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def extend(self, other: Normalized) -> None:
        self.events.extend(other.events)
        self.parked.extend(other.parked)
        self.ignored.extend(other.ignored)


class MalformedPayload(ValueError):
    """The body is not a webhook envelope at all (no ``entry`` list)."""


# --------------------------------------------------------------------- identity


def event_identity(event: Event) -> str:
    """What makes an event the same event when the provider sends it again."""
    if isinstance(event, InboundMessage | InboundMessageV2):
        return _message_identity(event.provider, event.provider_message_id)
    if isinstance(event, StatusUpdate):
        return _status_identity(event.provider, event.provider_message_id, event.status)
    digest = hashlib.sha256(orjson.dumps(event.data, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{event.provider}:event:{event.field}:{digest}"


def _message_identity(provider: str, provider_message_id: str) -> str:
    return f"{provider}:message:{provider_message_id}"


def _status_identity(provider: str, provider_message_id: str, status: str) -> str:
    return f"{provider}:status:{provider_message_id}:{status}"


def event_id_for(account_id: str, identity: str) -> str:
    return uuid.uuid5(_EVENT_NAMESPACE, f"{account_id}|{identity}").hex


def with_stable_id(event: Event) -> Event:
    """``event`` with its :func:`event_identity`'s id (a copy), for a builder that could
    not give it at once; Meta's messages and statuses are built with it (no copy)."""
    return event.model_copy(
        update={"event_id": event_id_for(event.account_id, event_identity(event))}
    )


def metric_type(event: Event) -> str:
    """A bounded label naming the event's type."""
    if isinstance(event, InboundMessage | InboundMessageV2):
        return event.type
    if isinstance(event, StatusUpdate):
        return event.status
    return event.field


# --------------------------------------------------------------------- small parsers


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def without_nul(value: Any) -> Any:
    """``value`` with every NUL character removed from its strings (keys too).

    PostgreSQL text and JSONB cannot hold NUL: a customer's message carrying one would
    fail every attempt downstream. A provider's webhook cannot be refused for its text,
    so the edge drops the character and the rest arrives as sent.
    """
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    return value


def parse_timestamp(value: Any) -> datetime:
    """Meta's timestamps are Unix seconds, as a string or a number."""
    if isinstance(value, bool):
        raise ValueError("timestamp is not a number")
    seconds = int(value) if isinstance(value, int | str) else None
    if seconds is None or seconds < 0:
        raise ValueError(f"bad timestamp {value!r}")
    return datetime.fromtimestamp(seconds, UTC)


def _errors(value: Any) -> list[ProviderError]:
    out = []
    for item in _list(value):
        err = _obj(item)
        code = err.get("code")
        if isinstance(code, bool) or not isinstance(code, int | str):
            continue
        try:
            code_int = int(code)
        except ValueError:
            continue
        out.append(
            ProviderError(
                code=code_int,
                title=_text(err.get("title")) or "",
                message=_text(err.get("message")) or "",
                details=_text(_obj(err.get("error_data")).get("details")) or "",
            )
        )
    return out


# --------------------------------------------------------------------- Meta: envelope


def split_changes(payload: Any) -> tuple[list[Change], list[Parked]]:
    """Every change of every entry; malformed entries or changes come back parked."""
    if not isinstance(payload, dict) or not isinstance(payload.get("entry"), list):
        raise MalformedPayload("not a webhook envelope: no entry list")
    changes: list[Change] = []
    parked: list[Parked] = []
    for entry in payload["entry"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("changes"), list):
            parked.append(Parked("malformed_entry", "entry without a changes list", entry))
            continue
        waba_id = _text(entry.get("id"))
        time = entry.get("time")
        entry_time = time if isinstance(time, int) and not isinstance(time, bool) else None
        for change in entry["changes"]:
            change_field = _obj(change).get("field")
            value = _obj(change).get("value")
            if not isinstance(change_field, str) or not isinstance(value, dict):
                parked.append(Parked("malformed_change", "change without field or value", change))
                continue
            changes.append(Change(waba_id, change_field, value, entry_time))
    return changes, parked


def normalize_change(
    change: Change, account: AccountRef, *, received_at: datetime, correlation_id: str
) -> Normalized:
    """The events of one change of a known, verified account."""
    out = Normalized()
    if change.field == "messages":
        value = change.value
        contacts = _list(value.get("contacts"))
        for message in _list(value.get("messages")):
            _append(
                out,
                lambda m=message: inbound_from_meta(
                    _obj(m), contacts, change, account, correlation_id=correlation_id
                ),
                "malformed_message",
                message,
                stable=True,
            )
        for status in _list(value.get("statuses")):
            if _obj(status).get("status") not in PROVIDER_STATUSES:
                out.parked.append(
                    Parked("unknown_status", f"status {_obj(status).get('status')!r}", status)
                )
                continue
            _append(
                out,
                lambda s=status: status_from_meta(
                    _obj(s), account, correlation_id=correlation_id, contacts=contacts
                ),
                "malformed_status",
                status,
                stable=True,
            )
        if value.get("errors"):
            out.parked.append(
                Parked("meta_errors", "webhook-level errors from Meta", value.get("errors"))
            )
        return out
    if change.field in BUSINESS_FIELDS or change.field in FIELD_ALIASES:
        _append(
            out,
            lambda: business_event_from_meta(
                change, account, received_at=received_at, correlation_id=correlation_id
            ),
            "malformed_change",
            change.value,
        )
        return out
    out.ignored.append(change.field)
    return out


def _append(out: Normalized, build: Any, reason: str, data: Any, *, stable: bool = False) -> None:
    """``build()``'s event (given its stable id unless ``stable``: built with it), or
    the piece parked when it cannot be built."""
    try:
        event = build()
        out.events.append(event if stable else with_stable_id(event))
    except (ValidationError, ValueError, TypeError) as exc:
        out.parked.append(Parked(reason, _describe(exc), data))


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(value)'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
    return str(exc)[:500]


# --------------------------------------------------------------------- Meta: messages


def inbound_from_meta(
    message: dict[str, Any],
    contacts: list[Any],
    change: Change,
    account: AccountRef,
    *,
    correlation_id: str,
) -> Inbound:
    """One ``value.messages[]`` item: an :class:`InboundMessage` when the sender's phone
    number is known, else an :class:`InboundMessageV2` keyed by the BSUID."""
    wamid = _text(message.get("id"))
    if not wamid:
        raise ValueError("message without id")
    raw_type = _text(message.get("type")) or "unsupported"
    system = _obj(message.get("system")) if raw_type == "system" else {}
    sender = _text(message.get("from"))
    user_id = _text(message.get("from_user_id"))
    if sender and not user_id and _BSUID.match(sender):  # a BSUID where the phone goes
        sender, user_id = None, sender
    if sender and not _PHONE.match(sender) and user_id and _BSUID.match(user_id):
        sender = None  # a broken phone beside a good BSUID: keep the message, by the BSUID
    user_id = user_id or _text(system.get("user_id"))
    contact = _contact_for(contacts, sender, user_id)
    contact_wa_id = _text(contact.get("wa_id"))
    wa_id = sender or (contact_wa_id if contact_wa_id and _PHONE.match(contact_wa_id) else None)
    customer = _identity(
        wa_id,
        user_id or _text(contact.get("user_id")),
        _text(message.get("from_parent_user_id"))
        or _text(system.get("parent_user_id"))
        or _text(contact.get("parent_user_id")),
        _text(_obj(contact.get("profile")).get("username")),
    )
    if customer is None:
        raise ValueError("message without a sender (no from, from_user_id or contact)")
    fields: dict[str, Any] = {
        "tenant_id": account.tenant_id,
        "account_id": account.account_id,
        "correlation_id": correlation_id,
        "provider": "meta",
        "provider_message_id": wamid,
        "phone_number_id": change.phone_number_id or "",
        "customer_name": _text(_obj(contact.get("profile")).get("name")),
        "customer": customer,
        "timestamp": parse_timestamp(message.get("timestamp")),
        "context_message_id": _text(_obj(message.get("context")).get("id")),
        "errors": _errors(message.get("errors")),
    }
    fields["event_id"] = event_id_for(account.account_id, _message_identity("meta", wamid))
    if isinstance(message.get("referral"), dict):
        fields["referral"] = message["referral"]
    fields.update(_content(raw_type, message))
    if system:
        fields.update(_id_change(system, sender, customer))
    if wa_id:
        return InboundMessage(customer_wa_id=wa_id, **fields)
    return InboundMessageV2(**fields)


def _identity(
    wa_id: str | None, user_id: str | None, parent_user_id: str | None, username: str | None
) -> CustomerIdentity | None:
    """The identity these ids make; None when there is none. A phone number that is not
    one raises (the piece is parked, as before); a malformed BSUID is left out, so a
    message is never lost for an optional id."""
    user_id = user_id if user_id and _BSUID.match(user_id) else None
    parent_user_id = parent_user_id if parent_user_id and _BSUID.match(parent_user_id) else None
    if not (wa_id or user_id or parent_user_id):
        return None
    return CustomerIdentity(
        wa_id=wa_id,
        user_id=user_id,
        parent_user_id=parent_user_id,
        username=(username or None) and username[:128],
    )


def _safe_identity(
    wa_id: str | None, user_id: str | None, parent_user_id: str | None, username: str | None
) -> CustomerIdentity | None:
    """:func:`_identity` for where an identity is a bonus (statuses): never raises."""
    return _identity(
        wa_id if wa_id and _PHONE.match(wa_id) else None, user_id, parent_user_id, username
    )


def _contact_for(contacts: list[Any], wa_id: str | None, user_id: str | None) -> dict[str, Any]:
    """The ``contacts[]`` entry of the customer named by ``wa_id`` or ``user_id``: the one
    naming either id, else a lone contact naming no other id (its name only when the
    customer is named by nothing else)."""
    items = [c for c in contacts if isinstance(c, dict)]
    for contact in items:
        if (wa_id and _text(contact.get("wa_id")) == wa_id) or (
            user_id and _text(contact.get("user_id")) == user_id
        ):
            return contact
    if len(items) != 1:
        return {}
    (only,) = items
    names_other = (wa_id and only.get("wa_id")) or (user_id and only.get("user_id"))
    if names_other or not (wa_id or user_id):
        return {"profile": {"name": _obj(only.get("profile")).get("name")}}
    return only


def _id_change(
    system: dict[str, Any], sender: str | None, customer: CustomerIdentity
) -> dict[str, Any]:
    """``user_changed_number`` / ``user_changed_user_id`` (and the older
    ``customer_changed_number``): the new ids in ``customer``, the old ones in
    ``previous_customer``."""
    new_wa_id = _text(system.get("wa_id")) or _text(system.get("new_wa_id"))
    previous = _identity(
        sender if new_wa_id else None,
        _text(system.get("previous_user_id")),
        _text(system.get("previous_parent_user_id")),
        None,
    )
    out: dict[str, Any] = {}
    if previous is not None and previous != customer:
        out["previous_customer"] = previous
    if new_wa_id and _PHONE.match(new_wa_id):
        out["customer"] = customer.model_copy(update={"wa_id": new_wa_id})
    return out


def _content(raw_type: str, message: dict[str, Any]) -> dict[str, Any]:
    """The type-specific fields; anything unknown becomes ``unsupported``."""
    body = _obj(message.get(raw_type))
    if raw_type == "text":
        return {"type": "text", "text": _text(body.get("body")) or ""}
    if raw_type in MEDIA_TYPES:
        media = Media(
            id=_text(body.get("id")),
            link=_text(body.get("url")) or _text(body.get("link")),
            mime_type=_text(body.get("mime_type")),
            sha256=_text(body.get("sha256")),
            caption=_text(body.get("caption")),
            filename=_text(body.get("filename")),
        )
        return {"type": raw_type, "media": media, "text": media.caption}
    if raw_type == "location":
        return {
            "type": "location",
            "location": Location(
                latitude=body.get("latitude"),
                longitude=body.get("longitude"),
                name=_text(body.get("name")),
                address=_text(body.get("address")),
            ),
        }
    if raw_type == "contacts":
        cards = [c for c in _list(message.get("contacts")) if isinstance(c, dict)]
        return {"type": "contacts", "contacts": cards}
    if raw_type == "reaction":
        return {
            "type": "reaction",
            "reaction_message_id": _text(body.get("message_id")),
            # An absent emoji means the customer removed the reaction.
            "reaction_emoji": _text(body.get("emoji")) or "",
        }
    if raw_type == "button":
        payload = _text(body.get("payload")) or _text(body.get("text")) or ""
        text = _text(body.get("text")) or ""
        return {"type": "button", "text": text, "reply": Reply(id=payload, title=text)}
    if raw_type == "interactive":
        return _interactive(body)
    if raw_type == "order":
        return {"type": "order", "order": body, "text": _text(body.get("text")) or None}
    if raw_type == "system":
        return {"type": "system", "system": body, "text": _text(body.get("body"))}
    if raw_type == "referral":
        referral = _obj(message.get("referral")) or body
        return {"type": "referral", "referral": referral}
    if raw_type == "edit":
        return _edit(body)
    if raw_type == "revoke":
        return {"type": "revoke", "original_message_id": _text(body.get("original_message_id"))}
    return {"type": "unsupported"}


def _interactive(body: dict[str, Any]) -> dict[str, Any]:
    kind = _text(body.get("type"))
    if kind == "nfm_reply":
        return _flow_response(_obj(body.get("nfm_reply")))
    if kind == "call_permission_reply":
        return _call_permission(_obj(body.get("call_permission_reply")))
    reply = _obj(body.get(kind)) if kind in ("button_reply", "list_reply") else None
    if reply is None or _text(reply.get("id")) is None:
        return {"type": "unsupported"}
    return {
        "type": "interactive",
        "text": _text(reply.get("title")),
        "reply": Reply(
            id=_text(reply.get("id")) or "",
            title=_text(reply.get("title")) or "",
            description=_text(reply.get("description")),
        ),
    }


def _edit(body: dict[str, Any]) -> dict[str, Any]:
    """An edit carries the new content in the usual fields, its type in ``edited_type``."""
    edited = _obj(body.get("message"))
    inner_type = _text(edited.get("type")) or "unsupported"
    new = _content(inner_type, edited) if inner_type != "edit" else {"type": "unsupported"}
    return {
        **new,
        "type": "edit",
        "edited_type": new["type"],
        "original_message_id": _text(body.get("original_message_id")),
    }


def _flow_response(reply: dict[str, Any]) -> dict[str, Any]:
    raw = reply.get("response_json")
    parsed: Any = None
    if isinstance(raw, str):
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
    elif isinstance(raw, dict):  # already an object: some relays decode it
        parsed, raw = raw, orjson.dumps(raw).decode()
    return {
        "type": "flow_response",
        "flow": FlowResponse(
            name=_text(reply.get("name")),
            body=_text(reply.get("body")),
            response=parsed if isinstance(parsed, dict) else None,
            response_json=raw if isinstance(raw, str) else None,
        ),
    }


def _call_permission(reply: dict[str, Any]) -> dict[str, Any]:
    response = _text(reply.get("response"))
    if not response:
        return {"type": "unsupported"}
    expires = reply.get("expiration_timestamp")
    permanent = reply.get("is_permanent")
    return {
        "type": "call_permission_reply",
        "call_permission": CallPermissionReply(
            response=response,
            is_permanent=permanent if isinstance(permanent, bool) else None,
            expiration_timestamp=parse_timestamp(expires) if expires is not None else None,
            response_source=_text(reply.get("response_source")),
        ),
    }


# --------------------------------------------------------------------- Meta: statuses


def status_from_meta(
    status: dict[str, Any],
    account: AccountRef,
    *,
    correlation_id: str,
    contacts: list[Any] | None = None,
) -> StatusUpdate:
    """One ``value.statuses[]`` item as a :class:`StatusUpdate`. The recipient is named
    by ``recipient_id`` (a phone), ``recipient_user_id`` (a BSUID) or both; ``contacts[]``
    (sent/delivered/read only) adds the username and the other id."""
    wamid = _text(status.get("id"))
    if not wamid:
        raise ValueError("status without id")
    pricing = _obj(status.get("pricing"))
    recipient = _text(status.get("recipient_id"))
    user_id = _text(status.get("recipient_user_id"))
    contact = _contact_for(contacts or [], recipient, user_id)
    customer = _safe_identity(
        recipient or _text(contact.get("wa_id")),
        user_id or _text(contact.get("user_id")),
        _text(status.get("recipient_parent_user_id")) or _text(contact.get("parent_user_id")),
        _text(_obj(contact.get("profile")).get("username")),
    )
    state = status.get("status")  # checked by the caller
    return StatusUpdate(
        event_id=event_id_for(account.account_id, _status_identity("meta", wamid, str(state))),
        tenant_id=account.tenant_id,
        account_id=account.account_id,
        correlation_id=correlation_id,
        provider="meta",
        provider_message_id=wamid,
        status=state,
        timestamp=parse_timestamp(status.get("timestamp")),
        recipient_id=recipient,
        customer=customer,
        message_id=_text(status.get("biz_opaque_callback_data")),
        errors=_errors(status.get("errors")),
        pricing=Pricing(
            billable=pricing.get("billable") if isinstance(pricing.get("billable"), bool) else None,
            category=_text(pricing.get("category")),
            pricing_model=_text(pricing.get("pricing_model")),
            type=_text(pricing.get("type")),
        )
        if pricing
        else None,
        conversation_id=_text(_obj(status.get("conversation")).get("id")),
    )


# --------------------------------------------------------------------- Meta: business fields


def business_event_from_meta(
    change: Change, account: AccountRef, *, received_at: datetime, correlation_id: str
) -> BusinessEvent:
    value = change.value
    occurred_at = received_at
    for candidate in (value.get("timestamp"), change.entry_time):
        if candidate is not None:
            try:
                occurred_at = parse_timestamp(candidate)
                break
            except ValueError:
                continue
    field = FIELD_ALIASES.get(change.field, change.field)
    return BusinessEvent(
        tenant_id=account.tenant_id,
        account_id=account.account_id,
        correlation_id=correlation_id,
        field=field,  # checked by the caller
        event=_text(value.get("event")),
        waba_id=change.waba_id,
        phone_number_id=change.phone_number_id,
        occurred_at=occurred_at,
        data=value,
        marketing_preferences=_preferences(value) if field == "user_marketing_preferences" else [],
    )


def _preferences(value: dict[str, Any]) -> list[MarketingPreference]:
    """``value.user_preferences[]`` with each customer as an identity: the ids of the item
    first, then those of its ``contacts[]`` entry. Items naming nobody are left out."""
    contacts = _list(value.get("contacts"))
    out = []
    for item in _list(value.get("user_preferences")):
        pref = _obj(item)
        wa_id = _text(pref.get("wa_id"))
        user_id = _text(pref.get("user_id"))
        contact = _contact_for(contacts, wa_id, user_id)
        customer = _safe_identity(
            wa_id or _text(contact.get("wa_id")),
            user_id or _text(contact.get("user_id")),
            _text(pref.get("parent_user_id")) or _text(contact.get("parent_user_id")),
            _text(_obj(contact.get("profile")).get("username")),
        )
        choice = _text(pref.get("value"))
        if customer is None or not choice:
            continue
        at = None
        with contextlib.suppress(ValueError, OverflowError, OSError):
            at = parse_timestamp(pref.get("timestamp")) if "timestamp" in pref else None
        out.append(
            MarketingPreference(
                customer=customer,
                value=choice.lower(),
                category=_text(pref.get("category")) or "marketing_messages",
                detail=_text(pref.get("detail")),
                timestamp=at,
            )
        )
    return out


# --------------------------------------------------------------------- Twilio


TWILIO_STATUSES: Mapping[str, ProviderStatus | None] = {
    "queued": None,
    "accepted": None,
    "scheduled": None,
    "sending": None,
    "canceled": None,
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "undelivered": "failed",
}


def twilio_wa_id(address: str | None) -> str:
    """``whatsapp:+14155550100`` → ``14155550100``: a Twilio address as a WhatsApp id,
    FlowChat's one form of a phone number (E.164 digits without ``+``, as Meta sends them).
    Not validated here: the event's model checks the form, a bad one is parked."""
    value = (address or "").strip()
    return value.removeprefix("whatsapp:").strip().removeprefix("+")


def is_twilio_status_callback(form: Mapping[str, str]) -> bool:
    status = form.get("MessageStatus")
    return bool(status) and status != "received"


def status_from_twilio(
    form: Mapping[str, str],
    account: AccountRef,
    *,
    received_at: datetime,
    correlation_id: str,
) -> StatusUpdate | None:
    """A Twilio status callback; ``None`` for the states FlowChat does not track (queued…)."""
    raw = (form.get("MessageStatus") or "").lower()
    if raw not in TWILIO_STATUSES:
        raise ValueError(f"unknown Twilio status {raw!r}")
    status = TWILIO_STATUSES[raw]
    if status is None:
        return None
    sid = form.get("MessageSid") or form.get("SmsSid")
    if not sid:
        raise ValueError("status callback without MessageSid")
    errors: list[ProviderError] = []
    code = (form.get("ErrorCode") or "").strip()
    if status == "failed" and code.isdigit():
        # Twilio documents only ErrorCode; ErrorMessage / ChannelStatusMessage come
        # sometimes. The reason is never left empty: the code's title stands in.
        title = twilio_codes.title(int(code))
        text = (form.get("ErrorMessage") or form.get("ChannelStatusMessage") or "").strip()
        errors.append(
            ProviderError(code=int(code), title=title, message=text, details=text or title)
        )
    recipient = twilio_wa_id(form.get("To"))
    update = StatusUpdate(
        tenant_id=account.tenant_id,
        account_id=account.account_id,
        correlation_id=correlation_id,
        provider="twilio",
        provider_message_id=sid,
        status=status,
        timestamp=received_at,
        recipient_id=recipient or None,
        customer=_twilio_identity(recipient, form),
        errors=errors,
    )
    event = with_stable_id(update)
    assert isinstance(event, StatusUpdate)
    return event


def inbound_from_twilio(
    form: Mapping[str, str],
    account: AccountRef,
    *,
    received_at: datetime,
    correlation_id: str,
) -> Inbound:
    """A Twilio inbound WhatsApp message (form fields of the incoming webhook)."""
    sid = form.get("MessageSid") or form.get("SmsMessageSid")
    if not sid:
        raise ValueError("inbound message without MessageSid")
    address = twilio_wa_id(form.get("From"))
    customer = _twilio_identity(address, form)
    fields: dict[str, Any] = {
        "tenant_id": account.tenant_id,
        "account_id": account.account_id,
        "correlation_id": correlation_id,
        "provider": "twilio",
        "provider_message_id": sid,
        "phone_number_id": twilio_wa_id(form.get("To")),
        "customer_name": form.get("ProfileName") or None,
        "customer": customer,
        "timestamp": received_at,
        "context_message_id": form.get("OriginalRepliedMessageSid") or None,
    }
    fields.update(_twilio_content(form))
    model: Inbound
    if customer is not None and customer.wa_id is None:  # Twilio names a BSUID only
        model = InboundMessageV2(**fields)
    else:  # a phone number, or an address that is neither (validated, then parked)
        model = InboundMessage(customer_wa_id=address, **fields)
    event = with_stable_id(model)
    assert isinstance(event, InboundMessage | InboundMessageV2)
    return event


def _twilio_identity(address: str, form: Mapping[str, str]) -> CustomerIdentity | None:
    """The customer of a Twilio webhook: the phone of ``From``/``To``, and the BSUID of
    ``ExternalUserId`` (or of the address itself when Twilio has no phone to show)."""
    bsuid = (form.get("ExternalUserId") or "").strip() or None
    if _BSUID.match(address):
        return _identity(None, address, None, None)
    return _safe_identity(address or None, bsuid, None, None)


def _twilio_content(form: Mapping[str, str]) -> dict[str, Any]:
    message_type = (form.get("MessageType") or "").lower()
    body = form.get("Body") or ""
    if form.get("Latitude") and form.get("Longitude"):
        return {
            "type": "location",
            "location": Location(
                latitude=float(form["Latitude"]),
                longitude=float(form["Longitude"]),
                name=form.get("Label") or None,
                address=form.get("Address") or None,
            ),
        }
    if form.get("ButtonPayload") or message_type in ("button", "interactive"):
        payload = form.get("ButtonPayload") or form.get("ListId") or body
        title = form.get("ButtonText") or form.get("ListTitle") or body
        kind = "button" if message_type != "interactive" else "interactive"
        return {"type": kind, "text": title, "reply": Reply(id=payload, title=title)}
    num_media = int(form.get("NumMedia") or "0") if (form.get("NumMedia") or "0").isdigit() else 0
    if num_media > 0:
        mime = form.get("MediaContentType0") or ""
        media_type = message_type if message_type in MEDIA_TYPES else _media_type(mime)
        return {
            "type": media_type,
            "text": body or None,
            "media": Media(
                link=form.get("MediaUrl0"), mime_type=mime or None, caption=body or None
            ),
        }
    if message_type and message_type != "text" and message_type in INBOUND_TYPES:
        return {"type": message_type, "text": body or None}
    if message_type and message_type != "text":
        return {"type": "unsupported", "text": body or None}
    return {"type": "text", "text": body}


def _media_type(mime: str) -> str:
    major = mime.split("/", 1)[0]
    return major if major in ("image", "video", "audio") else "document"
