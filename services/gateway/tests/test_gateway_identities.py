"""Customers as identities and the message kinds Meta added (pure normalization, no I/O).

Payloads are Meta's current shapes (BSUID page, messages / status / system /
user_preferences webhook references) as quoted in the issue-21 research memo.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from flowchat_contracts import InboundMessage, InboundMessageV2, StatusUpdate
from flowchat_gateway.events import BusinessEvent
from flowchat_gateway.normalize import (
    AccountRef,
    Normalized,
    inbound_from_twilio,
    normalize_change,
    split_changes,
    status_from_twilio,
)

ACCOUNT = AccountRef("tenant-a", "acc-1")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
BSUID = "US.13491208655302741918"
PARENT = "US.ENT.11815799212886844830"
PHONE = "16505551234"
METADATA = {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}


def normalize(field: str, value: dict[str, Any]) -> Normalized:
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "419561257915477", "changes": [{"field": field, "value": value}]}],
    }
    changes, parked = split_changes(payload)
    out = Normalized(parked=list(parked))
    for change in changes:
        out.extend(normalize_change(change, ACCOUNT, received_at=NOW, correlation_id="c"))
    return out


def one_event(field: str, value: dict[str, Any]) -> Any:
    out = normalize(field, value)
    assert out.parked == [], out.parked
    (event,) = out.events
    return event


def username_only_message(**message: Any) -> dict[str, Any]:
    """A message from a user who hides the phone number behind a username."""
    return {
        "messaging_product": "whatsapp",
        "metadata": METADATA,
        "contacts": [
            {
                "profile": {"name": "Sheena", "username": "sheena.n"},
                "user_id": BSUID,
                "parent_user_id": PARENT,
            }
        ],
        "messages": [
            {
                "from_user_id": BSUID,
                "from_parent_user_id": PARENT,
                "id": "wamid.HIDDEN",
                "timestamp": "1739321024",
                "type": "text",
                "text": {"body": "hi"},
                **message,
            }
        ],
    }


def both_ids_message(**message: Any) -> dict[str, Any]:
    value = username_only_message(**message)
    value["contacts"][0]["wa_id"] = PHONE
    value["messages"][0]["from"] = PHONE
    return value


# --------------------------------------------------------------------- BSUIDs: messages


def test_a_username_only_message_is_published_as_v2_never_parked() -> None:
    event = one_event("messages", username_only_message())
    assert isinstance(event, InboundMessageV2)
    assert event.schema_version == 2
    assert event.customer_wa_id is None
    assert event.customer.user_id == BSUID
    assert event.customer.parent_user_id == PARENT
    assert event.customer.username == "sheena.n"
    assert event.customer.key == BSUID
    assert event.customer_name == "Sheena"
    assert (event.type, event.text) == ("text", "hi")


def test_a_message_with_both_ids_stays_v1_and_links_them() -> None:
    event = one_event("messages", both_ids_message())
    assert isinstance(event, InboundMessage)
    assert event.customer_wa_id == PHONE
    assert event.customer is not None
    assert (event.customer.wa_id, event.customer.user_id) == (PHONE, BSUID)
    assert event.customer.key == BSUID
    assert event.customer.ids == (BSUID, PHONE, PARENT)


def test_a_phone_only_message_carries_a_phone_identity() -> None:
    value = both_ids_message()
    del value["messages"][0]["from_user_id"], value["messages"][0]["from_parent_user_id"]
    value["contacts"] = [{"profile": {"name": "Ann"}, "wa_id": PHONE}]
    event = one_event("messages", value)
    assert isinstance(event, InboundMessage)
    assert event.customer is not None
    assert event.customer.model_dump(exclude_none=True) == {"wa_id": PHONE}


def test_a_malformed_bsuid_is_left_out_not_parked() -> None:
    value = both_ids_message()
    value["messages"][0]["from_user_id"] = "not a bsuid"
    value["contacts"][0]["user_id"] = "not a bsuid"
    event = one_event("messages", value)
    assert isinstance(event, InboundMessage)
    assert event.customer is not None
    assert event.customer.user_id is None


def test_a_message_naming_nobody_is_still_parked() -> None:
    value = username_only_message()
    del value["messages"][0]["from_user_id"], value["messages"][0]["from_parent_user_id"]
    out = normalize("messages", value)
    assert out.events == []
    assert [p.reason for p in out.parked] == ["malformed_message"]


def test_user_changed_user_id_carries_new_and_previous_ids() -> None:
    value = {
        "messaging_product": "whatsapp",
        "metadata": METADATA,
        "messages": [
            {
                "id": "wamid.SYS1",
                "timestamp": "1739321024",
                "type": "system",
                "system": {
                    "body": "User changed their id",
                    "type": "user_changed_user_id",
                    "user_id": "US.222",
                    "parent_user_id": "US.ENT.333",
                    "previous_user_id": "US.111",
                    "previous_parent_user_id": "US.ENT.444",
                },
            }
        ],
    }
    event = one_event("messages", value)
    assert isinstance(event, InboundMessageV2)
    assert event.type == "system"
    assert (event.customer.user_id, event.customer.parent_user_id) == ("US.222", "US.ENT.333")
    assert event.previous_customer is not None
    assert event.previous_customer.user_id == "US.111"
    assert event.previous_customer.parent_user_id == "US.ENT.444"
    assert event.system is not None
    assert event.system["type"] == "user_changed_user_id"


def test_user_changed_number_links_old_and_new_phone_and_bsuid() -> None:
    value = {
        "messaging_product": "whatsapp",
        "metadata": METADATA,
        "messages": [
            {
                "from": PHONE,
                "id": "wamid.SYS2",
                "timestamp": "1739321024",
                "type": "system",
                "system": {
                    "body": "User Sheena changed from 16505551234 to 16505559999",
                    "type": "user_changed_number",
                    "wa_id": "16505559999",
                    "user_id": "US.222",
                    "previous_user_id": "US.111",
                },
            }
        ],
    }
    event = one_event("messages", value)
    assert isinstance(event, InboundMessage)
    assert event.customer_wa_id == PHONE  # the sender, as before
    assert event.customer is not None
    assert (event.customer.wa_id, event.customer.user_id) == ("16505559999", "US.222")
    assert event.previous_customer is not None
    assert (event.previous_customer.wa_id, event.previous_customer.user_id) == (PHONE, "US.111")


# --------------------------------------------------------------------- BSUIDs: statuses


def test_status_of_a_message_sent_to_a_bsuid() -> None:
    value = {
        "messaging_product": "whatsapp",
        "metadata": METADATA,
        "contacts": [
            {"profile": {"username": "sheena.n"}, "user_id": BSUID, "parent_user_id": PARENT}
        ],
        "statuses": [
            {
                "id": "wamid.OUT",
                "status": "delivered",
                "timestamp": "1739321030",
                "recipient_user_id": BSUID,
                "recipient_parent_user_id": PARENT,
                "biz_opaque_callback_data": "msg-123",
                "pricing": {
                    "billable": True,
                    "pricing_model": "PMP",
                    "category": "utility",
                    "type": "regular",
                },
            }
        ],
    }
    event = one_event("messages", value)
    assert isinstance(event, StatusUpdate)
    assert event.recipient_id is None
    assert event.customer is not None
    assert event.customer.user_id == BSUID
    assert event.customer.parent_user_id == PARENT
    assert event.customer.username == "sheena.n"
    assert event.message_id == "msg-123"
    assert event.pricing is not None
    assert event.pricing.type == "regular"


def test_status_sent_to_a_phone_links_the_bsuid() -> None:
    value = {
        "messaging_product": "whatsapp",
        "metadata": METADATA,
        "contacts": [{"wa_id": PHONE, "user_id": BSUID}],
        "statuses": [
            {
                "id": "wamid.OUT",
                "status": "sent",
                "timestamp": "1739321030",
                "recipient_id": PHONE,
                "recipient_user_id": BSUID,
            }
        ],
    }
    event = one_event("messages", value)
    assert event.recipient_id == PHONE
    assert (event.customer.wa_id, event.customer.user_id) == (PHONE, BSUID)


def test_failed_status_without_contacts_and_a_group_recipient_is_not_parked() -> None:
    value = {
        "messaging_product": "whatsapp",
        "metadata": METADATA,
        "statuses": [
            {
                "id": "wamid.OUT",
                "status": "failed",
                "timestamp": "1739321030",
                "recipient_id": "120363040000000000@g.us",
                "errors": [{"code": 131050, "title": "x", "error_data": {"details": "d"}}],
            }
        ],
    }
    event = one_event("messages", value)
    assert event.customer is None
    assert event.errors[0].details == "d"


# --------------------------------------------------------------------- user_preferences


def user_preferences_value(**item: Any) -> dict[str, Any]:
    """Meta's user_preferences webhook reference example."""
    return {
        "messaging_product": "whatsapp",
        "metadata": METADATA,
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": PHONE}],
        "user_preferences": [
            {
                "wa_id": PHONE,
                "detail": "User requested to stop marketing messages",
                "category": "marketing_messages",
                "value": "stop",
                "timestamp": 1731705721,
                **item,
            }
        ],
    }


@pytest.mark.parametrize("field", ["user_preferences", "user_marketing_preferences"])
def test_marketing_preferences_under_either_name_are_one_event(field: str) -> None:
    value = user_preferences_value()
    event = one_event(field, value)
    assert isinstance(event, BusinessEvent)
    assert event.field == "user_marketing_preferences"  # what consumers bind and read
    assert event.data == value  # as sent: consumers read data.user_preferences[]
    assert event.phone_number_id == "106540352242922"
    (pref,) = event.marketing_preferences
    assert pref.value == "stop"
    assert pref.customer.wa_id == PHONE
    assert pref.timestamp == datetime.fromtimestamp(1731705721, UTC)


def test_the_same_preference_under_either_name_is_the_same_event() -> None:
    a = one_event("user_preferences", user_preferences_value())
    b = one_event("user_marketing_preferences", user_preferences_value())
    assert a.event_id == b.event_id


def test_a_resume_by_bsuid_only() -> None:
    value = user_preferences_value(value="resume", user_id=BSUID)
    del value["user_preferences"][0]["wa_id"]
    value["contacts"] = [{"profile": {"username": "sheena.n"}, "user_id": BSUID}]
    event = one_event("user_preferences", value)
    (pref,) = event.marketing_preferences
    assert pref.value == "resume"
    assert pref.customer.user_id == BSUID
    assert pref.customer.wa_id is None
    assert pref.customer.username == "sheena.n"


# --------------------------------------------------------------------- new message kinds


def test_flow_answer_is_typed_with_its_response_parsed() -> None:
    value = both_ids_message(
        type="interactive",
        context={"from": "15550783881", "id": "wamid.FLOW"},
        interactive={
            "type": "nfm_reply",
            "nfm_reply": {
                "name": "flow",
                "body": "Sent",
                "response_json": '{"flow_token": "tok-1", "size": "M", "qty": 2}',
            },
        },
    )
    del value["messages"][0]["text"]
    event = one_event("messages", value)
    assert event.type == "flow_response"
    assert event.flow.name == "flow"
    assert event.flow.body == "Sent"
    assert event.flow.response == {"flow_token": "tok-1", "size": "M", "qty": 2}
    assert event.flow.flow_token == "tok-1"
    assert event.context_message_id == "wamid.FLOW"


def test_flow_answer_with_broken_json_keeps_the_raw_text() -> None:
    value = both_ids_message(
        type="interactive",
        interactive={"type": "nfm_reply", "nfm_reply": {"name": "flow", "response_json": "{"}},
    )
    event = one_event("messages", value)
    assert event.type == "flow_response"
    assert event.flow.response is None
    assert event.flow.response_json == "{"


def test_edited_message_carries_the_new_content_and_the_original_id() -> None:
    value = both_ids_message(
        type="edit",
        edit={
            "original_message_id": "wamid.ORIG",
            "message": {"type": "text", "text": {"body": "new text"}},
        },
    )
    event = one_event("messages", value)
    assert (event.type, event.edited_type, event.text) == ("edit", "text", "new text")
    assert event.original_message_id == "wamid.ORIG"


def test_edited_caption_keeps_the_media() -> None:
    value = both_ids_message(
        type="edit",
        edit={
            "original_message_id": "wamid.ORIG",
            "message": {"type": "image", "image": {"id": "123", "caption": "better"}},
        },
    )
    event = one_event("messages", value)
    assert (event.type, event.edited_type, event.text) == ("edit", "image", "better")
    assert event.media.id == "123"


def test_deleted_message_names_the_original() -> None:
    value = both_ids_message(type="revoke", revoke={"original_message_id": "wamid.ORIG"})
    event = one_event("messages", value)
    assert (event.type, event.original_message_id) == ("revoke", "wamid.ORIG")


def test_call_permission_reply_is_typed() -> None:
    value = both_ids_message(
        type="interactive",
        context={"id": "wamid.REQ"},
        interactive={
            "type": "call_permission_reply",
            "call_permission_reply": {
                "response": "accept",
                "is_permanent": False,
                "expiration_timestamp": 1739925024,
                "response_source": "user_action",
            },
        },
    )
    event = one_event("messages", value)
    assert event.type == "call_permission_reply"
    reply = event.call_permission
    assert (reply.response, reply.is_permanent, reply.response_source) == (
        "accept",
        False,
        "user_action",
    )
    assert reply.expiration_timestamp == datetime.fromtimestamp(1739925024, UTC)


# --------------------------------------------------------------------- Twilio


def test_twilio_failure_keeps_the_code_and_a_reason() -> None:
    base = {"MessageSid": "SM1", "MessageStatus": "undelivered", "To": "whatsapp:+14155552671"}
    event = status_from_twilio(
        {**base, "ErrorCode": "63016"}, ACCOUNT, received_at=NOW, correlation_id="c"
    )
    assert event is not None
    (error,) = event.errors
    assert error.code == 63016
    assert "24-hour" in error.title
    assert error.details == error.title  # no text from Twilio: the code's title
    event = status_from_twilio(
        {**base, "ErrorCode": "63024", "ChannelStatusMessage": "Invalid recipient (Meta 131026)"},
        ACCOUNT,
        received_at=NOW,
        correlation_id="c",
    )
    assert event is not None
    (error,) = event.errors
    assert (error.code, error.message) == (63024, "Invalid recipient (Meta 131026)")
    assert error.details == "Invalid recipient (Meta 131026)"


def test_twilio_inbound_from_a_bsuid_is_v2() -> None:
    form = {
        "MessageSid": "SM2",
        "From": f"whatsapp:{BSUID}",
        "To": "whatsapp:+14155550100",
        "Body": "hi",
    }
    event = inbound_from_twilio(form, ACCOUNT, received_at=NOW, correlation_id="c")
    assert isinstance(event, InboundMessageV2)
    assert event.customer.user_id == BSUID


def test_twilio_inbound_names_the_external_user_id() -> None:
    form = {
        "MessageSid": "SM3",
        "From": "whatsapp:+14155552671",
        "To": "whatsapp:+14155550100",
        "ExternalUserId": BSUID,
        "Body": "hi",
    }
    event = inbound_from_twilio(form, ACCOUNT, received_at=NOW, correlation_id="c")
    assert isinstance(event, InboundMessage)
    assert event.customer is not None
    assert (event.customer.wa_id, event.customer.user_id) == ("14155552671", BSUID)


def test_a_broken_phone_beside_a_good_bsuid_keeps_the_message() -> None:
    value = both_ids_message()
    value["messages"][0]["from"] = "not a number"
    value["contacts"][0]["wa_id"] = "not a number"
    event = one_event("messages", value)
    assert isinstance(event, InboundMessageV2)
    assert event.customer.user_id == BSUID


def test_a_relayed_user_id_update_is_passed_on_as_sent() -> None:
    value = {
        "messaging_product": "whatsapp",
        "metadata": METADATA,
        "user_id_update": [{"previous_user_id": "US.111", "user_id": "US.222"}],
    }
    event = one_event("user_id_update", value)
    assert isinstance(event, BusinessEvent)
    assert (event.field, event.data) == ("user_id_update", value)
