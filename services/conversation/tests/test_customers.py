"""Customers are identities (no I/O): whom an inbound message is from, which key a
customer is stored under, where messages to them go, and the CSV columns for BSUIDs."""

from __future__ import annotations

from datetime import UTC, datetime

from flowchat_contracts import CustomerIdentity, InboundMessage, InboundMessageV2
from flowchat_conversation.customers import (
    Customer,
    alias_kind,
    choose_key,
    identity_for,
    identity_of,
)
from flowchat_conversation.outreach.contacts import parse_contacts_csv

PHONE, BSUID, PARENT = "15550001111", "US.13491208655302741918", "US.ENT.11815799212886844830"

_FIELDS = {
    "tenant_id": "t1",
    "account_id": "a1",
    "provider": "meta",
    "provider_message_id": "wamid.1",
    "phone_number_id": "pn1",
    "type": "text",
    "timestamp": datetime.now(UTC),
    "text": "hi",
}


def test_the_sender_of_either_version():
    old = InboundMessage(customer_wa_id="+" + PHONE, **_FIELDS)  # an old publisher
    assert identity_of(old) == CustomerIdentity(wa_id=PHONE)
    both = InboundMessage(customer_wa_id=PHONE, customer=CustomerIdentity(user_id=BSUID), **_FIELDS)
    assert identity_of(both).ids == (BSUID, PHONE)
    hidden = InboundMessageV2(customer=CustomerIdentity(user_id=BSUID, username="s"), **_FIELDS)
    assert identity_of(hidden).key == BSUID


def test_the_key_is_the_first_linked_id_else_the_identity_key():
    both = CustomerIdentity(wa_id=PHONE, user_id=BSUID, parent_user_id=PARENT)
    assert choose_key(both, {}) == BSUID  # new: the BSUID
    assert choose_key(both, {PHONE: PHONE}) == PHONE  # stored by phone before BSUIDs
    assert choose_key(both, {PHONE: PHONE, BSUID: "X"}) == "X"  # the BSUID first
    assert choose_key(both, {PARENT: "P"}) == "P"
    assert choose_key(CustomerIdentity(wa_id=PHONE), {}) == PHONE


def test_messages_go_to_the_phone_when_known_else_the_bsuid():
    assert Customer(BSUID, (BSUID,)).address == BSUID
    assert Customer(BSUID, (BSUID, PHONE)).address == PHONE
    assert Customer(PHONE, (PHONE, BSUID)).phone == PHONE
    assert Customer(PARENT, (PARENT,)).address == PARENT
    assert [alias_kind(i) for i in (PHONE, BSUID, PARENT)] == ["phone", "bsuid", "parent"]
    assert identity_for("+" + PHONE) == CustomerIdentity(wa_id=PHONE)
    assert identity_for(PARENT) == CustomerIdentity(parent_user_id=PARENT)


def test_csv_rows_name_a_customer_by_phone_bsuid_or_both():
    good, rejected = parse_contacts_csv(
        "phone,bsuid,name\n"
        f"+2348000000001,{BSUID},Both\n"
        ",US.2,Bsuid only\n"
        "US.3,,Bsuid in the phone column\n"
        ",nope,Bad\n"
        ",,Nothing\n"
    )
    assert [(c.wa_id, c.user_id) for _, c in good] == [
        ("2348000000001", BSUID),
        ("US.2", None),
        ("US.3", None),
    ]
    assert good[0][1].identity.ids == (BSUID, "2348000000001")
    assert [(r.line, r.phone) for r in rejected] == [(5, "nope"), (6, "")]
