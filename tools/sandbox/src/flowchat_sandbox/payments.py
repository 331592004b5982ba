"""A local payment-provider emulator (dev and tests): payment links per invoice and
the provider's signed webhook when a customer "pays".

The protocol is FlowChat's provider seam
(:mod:`flowchat_conversation.commerce.payments`):

* ``POST /payments/v1/payment_links`` (``Authorization: Bearer <any key>``)
  ``{"invoice_id", "amount", "currency", "description", "metadata"}`` → 201
  ``{"id": "plink_…", "url": ".../payments/pay/plink_…", "status": "open"}``; the same
  invoice gets the same link back (idempotent).
* ``GET /payments/v1/payment_links/{id}``: the link and its payments.
* ``GET /payments/pay/{id}``: the page the customer opens (plain HTML).
* ``POST /sandbox/payments/{id}/pay``: the customer pays (the whole amount, or
  ``{"amount"}``): the emulator POSTs ``payment.succeeded`` to
  ``FLOWCHAT_SANDBOX_PAYMENTS_WEBHOOK_URL`` signed ``X-Payment-Signature:
  t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`` with
  ``FLOWCHAT_SANDBOX_PAYMENTS_WEBHOOK_SECRET``.
* ``POST /sandbox/payments/events/{event_id}/redeliver``: the same event again (a
  provider's retry: the receiver must not count it twice).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol


class Transport(Protocol):
    async def post(
        self, url: str, body: bytes, headers: dict[str, str], timeout_s: float
    ) -> int: ...


def signature(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@dataclass
class Link:
    link_id: str
    invoice_id: str
    amount: Decimal
    currency: str
    description: str
    metadata: dict[str, Any]
    url: str
    status: str = "open"
    payments: list[dict[str, Any]] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.link_id,
            "invoice_id": self.invoice_id,
            "amount": str(self.amount),
            "currency": self.currency,
            "description": self.description,
            "metadata": self.metadata,
            "url": self.url,
            "status": self.status,
            "payments": list(self.payments),
        }


class PaymentsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class PaymentEmulator:
    """In-memory links, payments and events (lost on restart, like the rest)."""

    def __init__(
        self,
        transport: Transport,
        *,
        webhook_url: str | None,
        webhook_secret: str | None,
        timeout_s: float = 5.0,
    ) -> None:
        self._transport = transport
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self._timeout_s = timeout_s
        self.links: dict[str, Link] = {}
        self._by_invoice: dict[str, str] = {}
        self.events: dict[str, bytes] = {}

    def create_link(self, body: dict[str, Any], base_url: str) -> tuple[Link, bool]:
        """The invoice's link (created when new; True then)."""
        try:
            invoice_id = str(body["invoice_id"])
            amount = Decimal(str(body["amount"]))
            currency = str(body["currency"]).upper()
            metadata = dict(body.get("metadata") or {})
        except (KeyError, ArithmeticError, ValueError, TypeError) as exc:
            raise PaymentsError(
                422, "invalid_request", "invoice_id, amount and currency are required"
            ) from exc
        if not amount.is_finite() or amount <= 0 or len(currency) != 3:
            raise PaymentsError(422, "invalid_request", "a positive amount and an ISO currency")
        known = self._by_invoice.get(invoice_id)
        if known is not None:
            return self.links[known], False
        link_id = "plink_" + secrets.token_hex(8)
        link = Link(
            link_id=link_id,
            invoice_id=invoice_id,
            amount=amount,
            currency=currency,
            description=str(body.get("description") or ""),
            metadata=metadata,
            url=f"{base_url.rstrip('/')}/payments/pay/{link_id}",
        )
        self.links[link_id] = link
        self._by_invoice[invoice_id] = link_id
        return link, True

    def link(self, link_id: str) -> Link:
        found = self.links.get(link_id)
        if found is None:
            raise PaymentsError(404, "not_found", f"no payment link {link_id}")
        return found

    async def pay(self, link_id: str, amount: Decimal | None = None) -> dict[str, Any]:
        """The customer pays: a payment and its signed ``payment.succeeded`` event."""
        link = self.link(link_id)
        if link.status == "paid":
            raise PaymentsError(409, "already_paid", f"payment link {link_id} is paid")
        paid = amount if amount is not None else link.amount
        payment_id = "pay_" + secrets.token_hex(8)
        event_id = "evt_" + secrets.token_hex(8)
        link.payments.append({"id": payment_id, "amount": str(paid)})
        if sum(Decimal(p["amount"]) for p in link.payments) >= link.amount:
            link.status = "paid"
        event = {
            "id": event_id,
            "type": "payment.succeeded",
            "created": int(time.time()),
            "data": {
                "payment_id": payment_id,
                "payment_link_id": link_id,
                "invoice_id": link.invoice_id,
                "amount": str(paid),
                "currency": link.currency,
                "metadata": link.metadata,
            },
        }
        self.events[event_id] = json.dumps(event, separators=(",", ":")).encode()
        status = await self.deliver(event_id)
        return {"payment_id": payment_id, "event_id": event_id, "webhook_status": status}

    async def deliver(self, event_id: str) -> int:
        """POST the event (signed now) to the webhook URL; the receiver's HTTP status."""
        body = self.events.get(event_id)
        if body is None:
            raise PaymentsError(404, "not_found", f"no event {event_id}")
        if not self.webhook_url or not self.webhook_secret:
            raise PaymentsError(
                409, "no_webhook", "FLOWCHAT_SANDBOX_PAYMENTS_WEBHOOK_URL / _SECRET are not set"
            )
        headers = {
            "Content-Type": "application/json",
            "X-Payment-Signature": signature(self.webhook_secret, body, int(time.time())),
        }
        return await self._transport.post(self.webhook_url, body, headers, self._timeout_s)
