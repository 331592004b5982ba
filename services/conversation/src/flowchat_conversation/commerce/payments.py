"""The payment-provider seam (no I/O): payment links per invoice and the provider's
signed webhook.

A provider makes a payment page for an invoice (:class:`PaymentProvider.create_link`,
idempotent by invoice id) and, when the customer pays, POSTs an event to FlowChat's
``/v1/payments/webhook`` signed with the shared secret::

    X-Payment-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

The body: ``{"id": "evt_…", "type": "payment.succeeded", "data": {"payment_id": "pay_…",
"invoice_id": "INV-…", "amount": "12.50", "currency": "USD"}}``. The event marks the
invoice paid through the same path as a tenant-recorded payment, with the provider's
payment id as the reference: a redelivered event is a duplicate, never a second payment.
The sandbox's payment emulator (``tools/sandbox``) speaks this protocol; a real
provider plugs in behind :class:`PaymentProvider` and a translation of its webhook.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Protocol

#: Signatures older (or newer) than this are refused (replays).
SIGNATURE_TOLERANCE_S = 300


@dataclass(frozen=True)
class PaymentLink:
    link_id: str
    url: str


class PaymentProvider(Protocol):
    async def create_link(
        self,
        *,
        tenant_id: str,
        invoice_id: str,
        amount: Decimal,
        currency: str,
        description: str,
    ) -> PaymentLink:
        """The invoice's payment page (the same one for the same invoice)."""


@dataclass(frozen=True)
class PaymentEvent:
    event_id: str
    type: str
    payment_id: str
    invoice_id: str
    amount: Decimal
    currency: str


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, body: bytes, header: str | None, *, now: float) -> bool:
    """Is ``header`` a valid, fresh signature of ``body`` under ``secret``?"""
    if not header:
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > SIGNATURE_TOLERANCE_S:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def parse_event(body: bytes) -> PaymentEvent | None:
    """The event in a webhook body (None when it is not one)."""
    try:
        raw = json.loads(body)
        data = raw["data"]
        return PaymentEvent(
            event_id=str(raw["id"]),
            type=str(raw["type"]),
            payment_id=str(data["payment_id"]),
            invoice_id=str(data["invoice_id"]),
            amount=Decimal(str(data["amount"])),
            currency=str(data["currency"]).upper(),
        )
    except (ValueError, KeyError, TypeError, InvalidOperation):
        return None
