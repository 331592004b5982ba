"""Normalization of provider webhooks (pure code, no I/O), fed by Meta's own examples."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flowchat_contracts import InboundMessage, StatusUpdate
from flowchat_gateway.events import BusinessEvent
from flowchat_gateway.normalize import (
    AccountRef,
    Change,
    MalformedPayload,
    Normalized,
    event_id_for,
    event_identity,
    inbound_from_twilio,
    is_twilio_status_callback,
    normalize_change,
    split_changes,
    status_from_twilio,
)
from flowchat_sandbox.spec import SPEC_PATH

DATA = Path(__file__).parent / "data" / "meta_webhook_examples.json"
SPEC = SPEC_PATH  # the copy vendored with the sandbox
EXAMPLES: dict[str, Any] = json.loads(DATA.read_text())
ACCOUNT = AccountRef("tenant-a", "acc-1")
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def normalize_payload(payload: Any, account: AccountRef = ACCOUNT) -> Normalized:
    changes, parked = split_changes(payload)
    out = Normalized(parked=list(parked))
    for change in changes:
        out.extend(normalize_change(change, account, received_at=NOW, correlation_id="corr-1"))
    return out


def only_inbound(payload: Any) -> InboundMessage:
    out = normalize_payload(payload)
    assert out.parked == []
    assert len(out.events) == 1
    event = out.events[0]
    assert isinstance(event, InboundMessage)
    assert event.tenant_id == "tenant-a"
    assert event.account_id == "acc-1"
    assert event.provider == "meta"
    assert event.phone_number_id == "106540352242922"
    assert event.customer_wa_id == "16505551234"
    assert event.correlation_id == "corr-1"
    return event


def envelope(value: dict[str, Any], field: str = "messages") -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "419561257915477", "changes": [{"field": field, "value": value}]}],
    }


def message_value(message: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
        "messages": [
            {"from": "16505551234", "id": "wamid.X1", "timestamp": "1750000000", **message}
        ],
        **extra,
    }


def status_value(**status: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "statuses": [
            {
                "id": "wamid.OUT1",
                "recipient_id": "16505551234",
                "timestamp": "1750000100",
                **status,
            }
        ],
    }


# --------------------------------------------------------------------- Meta's examples


@pytest.mark.skipif(not SPEC.exists(), reason="the shared reference spec is not on this machine")
def test_examples_file_matches_the_specs_examples() -> None:
    import yaml

    text = SPEC.read_text()
    start = text.index("\n  /whatsapp/webhooks:\n") + 1
    lines = text[start:].split("\n")
    section = [lines[0]]
    for line in lines[1:]:
        if line.startswith("  /") or (line and not line.startswith("  ")):
            break
        section.append(line)
    doc = yaml.safe_load(textwrap.dedent("\n".join(section)))
    examples = doc["/whatsapp/webhooks"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]
    assert {name: ex["value"] for name, ex in examples.items()} == EXAMPLES


def test_every_example_of_the_spec_is_covered_here() -> None:
    covered = set(EXPECTED_INBOUND) | set(GROUP_EXAMPLES)
    assert covered == set(EXAMPLES)


GROUP_EXAMPLES = ("Group Create Message", "Group Settings Update", "Group Remove Participants")


def _text(e: InboundMessage) -> None:
    assert e.type == "text"
    assert e.text == "Does it come in another color?"
    assert e.customer_name == "Sheena Nelson"
    assert e.timestamp == datetime.fromtimestamp(1749416383, UTC)
    assert e.provider_message_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="


def _context(e: InboundMessage) -> None:
    assert e.type == "text"
    assert e.text == "Is this still available?"
    assert e.context_message_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGA9wcm9kdWN0X2lucXVpcnkA"


def _ad(e: InboundMessage) -> None:
    assert e.type == "text"
    assert e.text == "Hello! Can I get more info on this?"
    assert e.referral is not None
    assert e.referral["source_type"] == "ad"
    assert e.referral["source_id"] == "120226305854810726"
    assert e.referral["ctwa_clid"].startswith("Aff-n8ZT")


def _reaction(e: InboundMessage) -> None:
    assert e.type == "reaction"
    assert e.reaction_emoji == "👍"
    assert e.reaction_message_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA"


def _image(e: InboundMessage) -> None:
    assert e.type == "image"
    assert e.media is not None
    assert e.media.id == "1003383421387256"
    assert e.media.mime_type == "image/jpeg"
    assert e.media.sha256 == "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI="
    assert e.media.caption == "Taj Mahal"


def _location(e: InboundMessage) -> None:
    assert e.type == "location"
    assert e.location is not None
    assert e.location.latitude == pytest.approx(37.44221496582)
    assert e.location.longitude == pytest.approx(-122.16165924072)
    assert e.location.name == "Philz Coffee"
    assert e.location.address == "101 Forest Ave, Palo Alto, CA 94301"


def _contacts(e: InboundMessage) -> None:
    assert e.type == "contacts"
    assert len(e.contacts) == 1
    assert e.contacts[0]["name"]["formatted_name"] == "Lucía Gómez"
    assert e.contacts[0]["phones"][0]["wa_id"] == "19835552319"


def _unsupported(e: InboundMessage) -> None:
    assert e.type == "unsupported"
    assert len(e.errors) == 1
    assert e.errors[0].code == 131051
    assert e.errors[0].title == "Message type unknown"
    assert e.errors[0].details == "Message type is currently not supported."


def _button(e: InboundMessage) -> None:
    assert e.type == "button"
    assert e.reply is not None
    assert e.reply.id == "Unsubscribe"
    assert e.reply.title == "Unsubscribe"
    assert e.context_message_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJFNjk2OTMwNEZCQjhGMzUyQUYA"


def _list_reply(e: InboundMessage) -> None:
    assert e.type == "interactive"
    assert e.reply is not None
    assert e.reply.id == "priority_express"
    assert e.reply.title == "Priority Mail Express"
    assert e.reply.description == "Next Day to 2 Days"


def _button_reply(e: InboundMessage) -> None:
    assert e.type == "interactive"
    assert e.reply is not None
    assert e.reply.id == "cancel-button"
    assert e.reply.title == "Cancel"
    assert e.reply.description is None


def _order(e: InboundMessage) -> None:
    assert e.type == "order"
    assert e.order is not None
    assert e.order["catalog_id"] == "194836987003835"
    items = e.order["product_items"]
    assert [(i["product_retailer_id"], i["quantity"]) for i in items] == [
        ("di9ozbzfi4", 2),
        ("nqryix03ez", 1),
    ]


def _system(e: InboundMessage) -> None:
    assert e.type == "system"
    assert e.system is not None
    assert e.system["type"] == "user_changed_number"
    assert e.system["wa_id"] == "12195555358"
    assert e.customer_name is None  # system messages carry no contacts


EXPECTED_INBOUND = {
    "Text Message": _text,
    "Text Message with Context (Product Inquiry)": _context,
    "Text Message from Click to WhatsApp Ad": _ad,
    "Reaction Message": _reaction,
    "Image Message": _image,
    "Location Message": _location,
    "Contact Sharing Message": _contacts,
    "Unsupported Message": _unsupported,
    "Button Message": _button,
    "Interactive List Reply Message": _list_reply,
    "Interactive Button Reply Message": _button_reply,
    "Order Message": _order,
    "System Message": _system,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_INBOUND))
def test_meta_example_becomes_the_right_inbound_message(name: str) -> None:
    EXPECTED_INBOUND[name](only_inbound(EXAMPLES[name]))


@pytest.mark.parametrize("name", GROUP_EXAMPLES)
def test_meta_group_examples_are_ignored_not_errors(name: str) -> None:
    out = normalize_payload(EXAMPLES[name])
    assert out.events == []
    assert out.parked == []
    assert out.ignored == [EXAMPLES[name]["entry"][0]["changes"][0]["field"]]


# --------------------------------------------------------------------- other inbound types


@pytest.mark.parametrize("media_type", ["video", "audio", "document", "sticker"])
def test_media_types(media_type: str) -> None:
    body = {"id": "55501", "mime_type": f"{media_type}/x", "sha256": "abc="}
    if media_type == "document":
        body |= {"filename": "invoice.pdf", "caption": "your invoice"}
    event = only_inbound(envelope(message_value({"type": media_type, media_type: body})))
    assert event.type == media_type
    assert event.media is not None
    assert event.media.id == "55501"
    assert event.media.mime_type == f"{media_type}/x"
    if media_type == "document":
        assert event.media.filename == "invoice.pdf"
        assert event.media.caption == "your invoice"


def test_reaction_removed_has_empty_emoji() -> None:
    event = only_inbound(
        envelope(message_value({"type": "reaction", "reaction": {"message_id": "wamid.M"}}))
    )
    assert event.type == "reaction"
    assert event.reaction_emoji == ""
    assert event.reaction_message_id == "wamid.M"


@pytest.mark.parametrize("raw_type", ["ephemeral", "request_welcome", "poll", "", "future_thing"])
def test_unknown_type_becomes_unsupported(raw_type: str) -> None:
    event = only_inbound(envelope(message_value({"type": raw_type, raw_type or "x": {"a": 1}})))
    assert event.type == "unsupported"


def test_interactive_of_unknown_kind_becomes_unsupported() -> None:
    message = {"type": "interactive", "interactive": {"type": "future_reply", "future_reply": {}}}
    assert only_inbound(envelope(message_value(message))).type == "unsupported"


def test_unknown_fields_are_ignored_everywhere() -> None:
    payload = envelope(
        message_value(
            {
                "type": "text",
                "text": {"body": "hi", "new_text_field": True},
                "from_user_id": "US.13491208655302741918",
                "brand_new": {"nested": [1, 2]},
            },
            contacts=[
                {"profile": {"name": "Ann", "x": 1}, "wa_id": "16505551234", "user_id": "US.1"}
            ],
            another_value_field="whatever",
        )
    )
    payload["entry"][0]["time"] = 1750000000
    payload["entry"][0]["extra"] = {"x": 1}
    payload["new_top_level"] = 42
    event = only_inbound(payload)
    assert event.text == "hi"
    assert event.customer_name == "Ann"


def test_message_without_sender_is_parked_not_raised() -> None:
    value = message_value({"type": "text", "text": {"body": "hi"}})
    del value["messages"][0]["from"]
    value["messages"].append(
        {"from": "16505551234", "id": "wamid.OK", "timestamp": "1", "type": "text"}
    )
    out = normalize_payload(envelope(value))
    assert [e.provider_message_id for e in out.events] == ["wamid.OK"]  # type: ignore[union-attr]
    assert [p.reason for p in out.parked] == ["malformed_message"]


@pytest.mark.parametrize(
    ("field", "bad"),
    [("timestamp", "yesterday"), ("from", "not-a-number"), ("id", "")],
)
def test_invalid_message_parts_are_parked(field: str, bad: str) -> None:
    value = message_value({"type": "text", "text": {"body": "hi"}})
    value["messages"][0][field] = bad
    out = normalize_payload(envelope(value))
    assert out.events == []
    assert out.parked[0].reason == "malformed_message"


def test_batch_of_entries_and_changes_is_fully_normalized() -> None:
    first = message_value({"type": "text", "text": {"body": "one"}})
    first["messages"].append(
        {
            "from": "16505551234",
            "id": "wamid.X2",
            "timestamp": "1750000001",
            "type": "text",
            "text": {"body": "two"},
        }
    )
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "1", "changes": [{"field": "messages", "value": first}]},
            {
                "id": "2",
                "changes": [
                    {"field": "messages", "value": status_value(status="delivered")},
                    {"field": "messages", "value": status_value(status="read")},
                ],
            },
        ],
    }
    out = normalize_payload(payload)
    kinds = [(e.kind, getattr(e, "text", None) or getattr(e, "status", None)) for e in out.events]
    assert kinds == [
        ("inbound_message", "one"),
        ("inbound_message", "two"),
        ("status_update", "delivered"),
        ("status_update", "read"),
    ]


def test_envelope_without_entries_is_malformed() -> None:
    payloads: list[object] = [[], {"object": "x"}, {"entry": "nope"}, "text"]
    for payload in payloads:
        with pytest.raises(MalformedPayload):
            split_changes(payload)


def test_malformed_entries_and_changes_are_parked() -> None:
    changes, parked = split_changes(
        {"entry": [{"id": "1"}, {"id": "2", "changes": [{"field": "messages"}, 7]}]}
    )
    assert changes == []
    assert [p.reason for p in parked] == ["malformed_entry", "malformed_change", "malformed_change"]


def test_change_names_its_phone_number_id() -> None:
    changes, _ = split_changes(envelope(message_value({"type": "text"})))
    assert changes == [Change("419561257915477", "messages", changes[0].value, None)]
    assert changes[0].phone_number_id == "106540352242922"


# --------------------------------------------------------------------- statuses


def only_status(**status: Any) -> StatusUpdate:
    out = normalize_payload(envelope(status_value(**status)))
    assert out.parked == []
    (event,) = out.events
    assert isinstance(event, StatusUpdate)
    assert event.provider_message_id == "wamid.OUT1"
    assert event.recipient_id == "16505551234"
    assert event.timestamp == datetime.fromtimestamp(1750000100, UTC)
    return event


def test_status_sent_with_pricing_conversation_and_callback_data() -> None:
    event = only_status(
        status="sent",
        biz_opaque_callback_data="fc-message-42",
        conversation={"id": "conv-9", "origin": {"type": "marketing"}},
        pricing={"billable": True, "pricing_model": "PMP", "category": "marketing"},
    )
    assert event.status == "sent"
    assert event.message_id == "fc-message-42"
    assert event.conversation_id == "conv-9"
    assert event.pricing is not None
    assert event.pricing.billable is True
    assert event.pricing.pricing_model == "PMP"
    assert event.pricing.category == "marketing"


@pytest.mark.parametrize("status", ["delivered", "read", "played"])
def test_status_progress(status: str) -> None:
    event = only_status(status=status)
    assert event.status == status
    assert event.message_id is None
    assert event.errors == []


def test_status_failed_with_errors() -> None:
    event = only_status(
        status="failed",
        errors=[
            {
                "code": 131047,
                "title": "Re-engagement message",
                "message": "Re-engagement message",
                "error_data": {"details": "More than 24 hours have passed"},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
            }
        ],
    )
    assert event.status == "failed"
    assert [(e.code, e.title, e.details) for e in event.errors] == [
        (131047, "Re-engagement message", "More than 24 hours have passed")
    ]


def test_unknown_status_is_parked() -> None:
    out = normalize_payload(envelope(status_value(status="deleted")))
    assert out.events == []
    assert [p.reason for p in out.parked] == ["unknown_status"]


# --------------------------------------------------------------------- business fields


def only_business(field: str, value: dict[str, Any]) -> BusinessEvent:
    out = normalize_payload(envelope(value, field=field))
    assert out.parked == []
    (event,) = out.events
    assert isinstance(event, BusinessEvent)
    assert event.field == field
    assert event.waba_id == "419561257915477"
    assert event.data == value
    return event


def test_template_status_update() -> None:
    event = only_business(
        "message_template_status_update",
        {
            "event": "REJECTED",
            "message_template_id": 594425479261596,
            "message_template_name": "order_update",
            "message_template_language": "en_US",
            "reason": "INCORRECT_CATEGORY",
        },
    )
    assert event.event == "REJECTED"
    assert event.occurred_at == NOW


def test_phone_number_quality_update() -> None:
    event = only_business(
        "phone_number_quality_update",
        {"display_phone_number": "15550783881", "event": "FLAGGED", "current_limit": "TIER_10K"},
    )
    assert event.event == "FLAGGED"


def test_user_marketing_preferences() -> None:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "user_preferences": [
            {
                "wa_id": "16505551234",
                "detail": "User requested to stop marketing messages",
                "category": "marketing_messages",
                "value": "stop",
                "timestamp": 1731705721,
            }
        ],
    }
    event = only_business("user_marketing_preferences", value)
    assert event.phone_number_id == "106540352242922"
    assert event.data["user_preferences"][0]["value"] == "stop"


# --------------------------------------------------------------------- identity


def test_event_ids_are_stable_per_account_and_provider_id() -> None:
    payload = envelope(message_value({"type": "text", "text": {"body": "hi"}}))
    first = normalize_payload(payload).events[0]
    again = normalize_payload(payload).events[0]
    other = normalize_payload(payload, AccountRef("tenant-b", "acc-2")).events[0]
    assert first.event_id == again.event_id
    assert first.event_id != other.event_id
    assert event_identity(first) == "meta:message:wamid.X1"
    assert first.event_id == event_id_for("acc-1", "meta:message:wamid.X1")


def test_each_status_of_a_message_is_its_own_event() -> None:
    delivered = normalize_payload(envelope(status_value(status="delivered"))).events[0]
    read = normalize_payload(envelope(status_value(status="read"))).events[0]
    assert delivered.event_id != read.event_id
    assert event_identity(read) == "meta:status:wamid.OUT1:read"
    assert read.event_id == event_id_for(read.account_id, event_identity(read))


# --------------------------------------------------------------------- Twilio


def twilio_form(**fields: str) -> dict[str, str]:
    base = {
        "MessageSid": "SM0123456789abcdef0123456789abcdef",
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": "whatsapp:+14155552671",
        "To": "whatsapp:+14155550100",
        "ProfileName": "Ann",
        "WaId": "14155552671",
        "SmsStatus": "received",
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }
    return base | fields


def twilio_inbound(**fields: str) -> InboundMessage:
    form = twilio_form(**fields)
    assert not is_twilio_status_callback(form)
    event = inbound_from_twilio(form, ACCOUNT, received_at=NOW, correlation_id="c")
    assert isinstance(event, InboundMessage)
    assert event.provider == "twilio"
    assert event.provider_message_id == "SM0123456789abcdef0123456789abcdef"
    assert event.customer_wa_id == "14155552671"
    assert event.customer_name == "Ann"
    assert event.phone_number_id == "14155550100"
    assert event.timestamp == NOW
    return event


def test_twilio_text() -> None:
    event = twilio_inbound(Body="hello", MessageType="text")
    assert (event.type, event.text) == ("text", "hello")


def test_twilio_media() -> None:
    event = twilio_inbound(
        NumMedia="1",
        MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME",
        MediaContentType0="image/jpeg",
        Body="look",
        MessageType="image",
    )
    assert event.type == "image"
    assert event.media is not None
    assert event.media.link is not None
    assert event.media.link.endswith("/Media/ME")
    assert event.media.caption == "look"


def test_twilio_location() -> None:
    event = twilio_inbound(Latitude="52.52", Longitude="13.405", MessageType="location")
    assert event.type == "location"
    assert event.location is not None
    assert event.location.latitude == pytest.approx(52.52)


def test_twilio_button() -> None:
    event = twilio_inbound(ButtonPayload="yes-1", ButtonText="Yes", MessageType="button")
    assert event.type == "button"
    assert event.reply is not None
    assert (event.reply.id, event.reply.title) == ("yes-1", "Yes")


def test_twilio_unknown_type_is_unsupported() -> None:
    assert twilio_inbound(MessageType="hologram", Body="").type == "unsupported"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("sent", "sent"), ("delivered", "delivered"), ("read", "read"), ("failed", "failed")],
)
def test_twilio_status(raw: str, expected: str) -> None:
    form = {"MessageSid": "SM1", "MessageStatus": raw, "To": "whatsapp:+14155552671"}
    assert is_twilio_status_callback(form)
    event = status_from_twilio(form, ACCOUNT, received_at=NOW, correlation_id="c")
    assert event is not None
    assert (event.status, event.provider, event.recipient_id) == (
        expected,
        "twilio",
        "14155552671",
    )


def test_twilio_undelivered_is_failed_with_error_code() -> None:
    form = {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "63016"}
    event = status_from_twilio(form, ACCOUNT, received_at=NOW, correlation_id="c")
    assert event is not None
    assert event.status == "failed"
    assert [e.code for e in event.errors] == [63016]


@pytest.mark.parametrize("raw", ["queued", "sending", "accepted"])
def test_twilio_untracked_states_are_ignored(raw: str) -> None:
    form = {"MessageSid": "SM1", "MessageStatus": raw}
    assert status_from_twilio(form, ACCOUNT, received_at=NOW, correlation_id="c") is None


def test_twilio_unknown_status_is_an_error_for_parking() -> None:
    with pytest.raises(ValueError, match="unknown Twilio status"):
        status_from_twilio(
            {"MessageSid": "SM1", "MessageStatus": "teleported"},
            ACCOUNT,
            received_at=NOW,
            correlation_id="c",
        )
