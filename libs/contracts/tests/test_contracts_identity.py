"""Customers as identities (BSUID, phone, both) and the inbound message's two versions."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from flowchat_contracts import (
    CustomerIdentity,
    InboundMessage,
    InboundMessageV2,
    StatusUpdate,
    inbound_message_in,
    twilio_codes,
)
from flowchat_contracts.schemas import DEFAULT_DIR

BSUID = "US.13491208655302741918"
PARENT = "US.ENT.11815799212886844830"
BASE = {
    "tenant_id": "t",
    "account_id": "a",
    "provider": "meta",
    "provider_message_id": "wamid.1",
    "phone_number_id": "106540352242922",
    "type": "text",
    "text": "hi",
    "timestamp": "2026-01-01T00:00:00Z",
}


@pytest.mark.parametrize("bsuid", [BSUID, PARENT, "BR.abcXYZ09", "DE." + "a" * 128])
def test_bsuid_forms_are_accepted(bsuid: str) -> None:
    assert CustomerIdentity(user_id=bsuid).key == bsuid


@pytest.mark.parametrize(
    "bad", ["US13491208655302741918", "us.123", "USA.123", "US.", "US.12-3", "US." + "1" * 129]
)
def test_bad_bsuids_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        CustomerIdentity(user_id=bad)


def test_the_key_is_the_bsuid_else_the_phone_number() -> None:
    both = CustomerIdentity(wa_id="+16505551234", user_id=BSUID, parent_user_id=PARENT)
    assert both.key == BSUID
    assert both.ids == (BSUID, "16505551234", PARENT)
    assert CustomerIdentity(wa_id="+16505551234").key == "16505551234"
    assert CustomerIdentity(parent_user_id=PARENT).key == PARENT


def test_an_identity_needs_an_id() -> None:
    with pytest.raises(ValidationError, match="needs a wa_id"):
        CustomerIdentity(username="sheena.n")


def test_v1_still_requires_the_phone_number_and_refuses_v2() -> None:
    with pytest.raises(ValidationError):
        InboundMessage.model_validate({**BASE, "customer": {"user_id": BSUID}})
    v2 = InboundMessageV2.model_validate({**BASE, "customer": {"user_id": BSUID}})
    with pytest.raises(ValidationError):
        InboundMessage.model_validate_json(v2.model_dump_json())


def test_a_v1_message_may_carry_the_identity_and_old_bodies_still_read() -> None:
    old = InboundMessage.model_validate({**BASE, "customer_wa_id": "16505551234"})
    assert old.customer is None
    new = InboundMessage.model_validate(
        {**BASE, "customer_wa_id": "16505551234", "customer": {"wa_id": "16505551234"}}
    )
    assert new.customer is not None
    assert new.customer.key == "16505551234"


def test_either_version_reads_through_one_decoder() -> None:
    v1 = inbound_message_in(json.dumps({**BASE, "customer_wa_id": "16505551234"}))
    assert isinstance(v1, InboundMessage)
    v2 = inbound_message_in(
        json.dumps({**BASE, "schema_version": 2, "customer": {"user_id": BSUID}})
    )
    assert isinstance(v2, InboundMessageV2)
    assert v2.customer_wa_id is None
    with pytest.raises(ValidationError):
        inbound_message_in(json.dumps({**BASE, "schema_version": 2}))  # no customer


def test_status_update_carries_the_recipient_as_an_identity() -> None:
    s = StatusUpdate.model_validate(
        {
            "tenant_id": "t",
            "account_id": "a",
            "provider": "meta",
            "provider_message_id": "wamid.O",
            "status": "delivered",
            "timestamp": "2026-01-01T00:00:00Z",
            "customer": {"user_id": BSUID, "username": "sheena.n"},
            "pricing": {"category": "utility", "type": "regular"},
        }
    )
    assert s.recipient_id is None
    assert s.customer is not None
    assert s.customer.user_id == BSUID
    assert s.pricing is not None
    assert s.pricing.type == "regular"


def test_v2_schema_is_exported_beside_v1() -> None:
    import jsonschema

    v1 = json.loads((DEFAULT_DIR / "inbound_message.v1.json").read_text())
    v2 = json.loads((DEFAULT_DIR / "inbound_message.v2.json").read_text())
    body = {**BASE, "schema_version": 2, "customer": {"user_id": BSUID}}
    jsonschema.validate(body, v2)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, v1)


def test_twilio_codes_have_titles() -> None:
    assert "24-hour" in twilio_codes.title(63016)
    assert twilio_codes.title(99999) == "Twilio error 99999"
