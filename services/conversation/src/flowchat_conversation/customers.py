"""Customers are identities, not phone numbers (shared by commerce and outreach; no I/O).

A person may be known by a phone number (``wa_id``), a BSUID (``user_id``), a parent
BSUID, or several of them. The ``customer_aliases`` table maps every id a tenant has
seen to one **customer key**; the key is what contacts, orders, hand-offs, reminders,
campaign recipients and the bot's sessions are stored under.

Resolution rule (:func:`choose_key`): the ids of an inbound identity are looked up in
the order BSUID, phone, parent BSUID; the first one already linked names the customer
(so a customer stored by phone before BSUIDs existed keeps its key when a message
brings the phone and a BSUID); none linked: a new customer keyed by
``CustomerIdentity.key`` (the BSUID, else the phone). Every id of the identity is then
linked to that key; an id linked to another customer stays where it is, except on
Meta's id-change system messages, which move the new ids to the customer who owned
the previous ones.

Messages go to the phone number when one is known, else to the BSUID
(:attr:`Customer.address`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from flowchat_contracts import CustomerIdentity, InboundMessage, InboundMessageV2, is_bsuid
from flowchat_contracts.models import BSUID_PATTERN

__all__ = [
    "ID_CHANGES",
    "AliasKind",
    "Customer",
    "alias_kind",
    "choose_key",
    "identity_for",
    "identity_of",
    "looks_like_bsuid",
]

AliasKind = Literal["phone", "bsuid", "parent"]

#: ``system.type`` values that announce new ids for a customer (``previous_customer``).
ID_CHANGES = frozenset({"user_changed_user_id", "user_changed_number", "customer_changed_number"})


_BSUID = re.compile(BSUID_PATTERN)


def looks_like_bsuid(value: str) -> bool:
    """True for a well-formed BSUID or parent BSUID (``US.1349…``, ``US.ENT.1181…``)."""
    return _BSUID.fullmatch(value) is not None


def alias_kind(customer_id: str) -> AliasKind:
    if ".ENT." in customer_id:
        return "parent"
    return "bsuid" if is_bsuid(customer_id) else "phone"


def identity_for(customer_id: str) -> CustomerIdentity:
    """The identity one id names (a phone number, with or without ``+``, or a BSUID)."""
    if alias_kind(customer_id) == "parent":
        return CustomerIdentity(parent_user_id=customer_id)
    if is_bsuid(customer_id):
        return CustomerIdentity(user_id=customer_id)
    return CustomerIdentity(wa_id=customer_id.lstrip("+"))


def identity_of(message: InboundMessage | InboundMessageV2) -> CustomerIdentity:
    """The sender's identity: ``customer`` (v2, and v1 from current publishers) with the
    phone number of ``customer_wa_id`` filled in, or ``customer_wa_id`` alone (v1 from
    old publishers)."""
    phone = message.customer_wa_id.lstrip("+") if message.customer_wa_id else None
    identity = message.customer
    if identity is None:
        assert phone is not None  # v1 requires it, v2 requires ``customer``
        return CustomerIdentity(wa_id=phone)
    if identity.wa_id is None and phone is not None:
        return identity.model_copy(update={"wa_id": phone})
    return identity


def choose_key(identity: CustomerIdentity, known: Mapping[str, str]) -> str:
    """The customer key of ``identity``: the key of its first linked id (BSUID, phone,
    parent BSUID), else a new key (the BSUID, else the phone number)."""
    for customer_id in identity.ids:
        if customer_id in known:
            return known[customer_id]
    return identity.key


@dataclass(frozen=True)
class Customer:
    """A resolved customer: its key and every id linked to it."""

    key: str
    ids: tuple[str, ...]

    @property
    def phone(self) -> str | None:
        return next((i for i in self.ids if alias_kind(i) == "phone"), None)

    @property
    def address(self) -> str:
        """Where messages go: the phone number when known, else the BSUID."""
        if self.phone is not None:
            return self.phone
        bsuid = next((i for i in self.ids if alias_kind(i) == "bsuid"), None)
        return bsuid or self.key
