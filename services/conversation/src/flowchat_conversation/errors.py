"""Exceptions of the conversation service (both packages: commerce and outreach).

::

    FlowchatError                       (flowchat_platform.errors)             HTTP
    └── ConversationError(message, *, code, details)                           500
        ├── NotReady(what)              database / broker not connected yet    503
        ├── SessionConflict(key)        the session changed despite the lock   500
        │                               (an inbound message is retried)
        ├── CatalogError                a product request refused              422
        │   └── CatalogCsvError         the catalog CSV cannot be read         422
        ├── OrderError                  an order request refused               422
        │   ├── OrderNotFound           no such order of that tenant           404
        │   ├── InvalidTransition       the order cannot go to that status     409
        │   ├── PaymentRejected         the payment does not fit the order     409
        │   │   └── InvalidAmount       not positive, or too many decimals     422
        │   ├── InvoiceNotFound         no such invoice of that tenant         404
        │   ├── DiscountRejected        unknown / expired / used-up code       409
        │   ├── CatalogNotConnected     no Meta catalog / Flow for that        409
        │   ├── BadSignature            the payment webhook is not signed      401
        │   ├── NoPaymentProvider       no provider configured                 409
        │   └── NoHandoff               no open hand-off with that customer    404
        └── OutreachError               a contacts / campaign / reminder       422
            │                           request refused
            ├── ContactCsvError         the contacts CSV cannot be read        422
            ├── OutreachNotFound        no such contact, campaign, reminder    404
            ├── InvalidState            campaign / reminder in another state   409
            └── ProviderError           the template lookup failed             422
                ├── ProviderUnavailable the provider did not answer            503
                └── ProviderRefused     the provider answered an error         502

Every one carries ``code`` (machine-readable), ``message`` and ``details``; the HTTP
status on the right is chosen in one place, the app's exception handler
(:data:`flowchat_conversation.app.HTTP_STATUS`), which answers FlowChat's error body
``{"error": {"code", "message", "details"}}``. Queue-message fates (duplicate →
``Discard``, invalid event → ``DeadLetter``) come from :mod:`flowchat_platform.errors`,
as does ``StoreUnavailable``.
"""

from __future__ import annotations

from typing import Any

from flowchat_platform.errors import FlowchatError


class ConversationError(FlowchatError):
    """Base of the conversation service's own exceptions."""

    def __init__(
        self, message: str, *, code: str = "conversation_error", details: list[Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or []


class NotReady(ConversationError):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is not connected yet", code="not_ready")
        self.what = what


class SessionConflict(ConversationError):
    def __init__(self, key: str, *, expected_version: int) -> None:
        super().__init__(
            f"session {key} changed concurrently (expected v{expected_version})",
            code="session_conflict",
        )
        self.key = key
        self.expected_version = expected_version


# ---------------------------------------------------------------- commerce


class CatalogError(ConversationError):
    def __init__(
        self, message: str, *, code: str = "invalid_product", details: list[Any] | None = None
    ) -> None:
        super().__init__(message, code=code, details=details)


class CatalogCsvError(CatalogError):
    """The catalog file as a whole cannot be read (no header, missing or unknown columns)."""

    def __init__(self, message: str, *, details: list[Any] | None = None) -> None:
        super().__init__(message, code="invalid_csv", details=details)


class OrderError(ConversationError):
    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, code=code)


class OrderNotFound(OrderError):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"no order {order_id}", code="not_found")
        self.order_id = order_id


class InvalidTransition(OrderError):
    def __init__(self, order_id: str, *, current: str, target: str) -> None:
        super().__init__(
            f"order {order_id} cannot go from {current} to {target}", code="invalid_transition"
        )
        self.order_id = order_id
        self.current = current
        self.target = target


class PaymentRejected(OrderError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


class InvalidAmount(PaymentRejected):
    def __init__(self, message: str) -> None:
        super().__init__("invalid_amount", message)


class InvoiceNotFound(OrderError):
    def __init__(self, invoice_id: str) -> None:
        super().__init__(f"no invoice {invoice_id}", code="not_found")
        self.invoice_id = invoice_id


class DiscountRejected(OrderError):
    """A discount code that does not exist, expired, is used up or does not fit."""


class CatalogNotConnected(OrderError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="catalog_not_connected")


class BadSignature(OrderError):
    def __init__(self) -> None:
        super().__init__(
            "the payment webhook's signature is missing or wrong", code="bad_signature"
        )


class NoPaymentProvider(OrderError):
    def __init__(self) -> None:
        super().__init__("no payment provider is configured", code="no_payment_provider")


class NoHandoff(OrderError):
    def __init__(self, customer_wa_id: str) -> None:
        super().__init__(f"no open hand-off with customer {customer_wa_id}", code="no_handoff")
        self.customer_wa_id = customer_wa_id


# ---------------------------------------------------------------- outreach


class OutreachError(ConversationError):
    """A contacts, campaigns or reminders request refused, with the reason."""

    def __init__(self, message: str, *, code: str, details: list[Any] | None = None) -> None:
        super().__init__(message, code=code, details=details)


class ContactCsvError(OutreachError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_csv")


class OutreachNotFound(OutreachError):
    def __init__(self, what: str, item_id: object) -> None:
        super().__init__(f"no {what} {item_id}", code="not_found")


class InvalidState(OutreachError):
    def __init__(self, message: str, *, details: list[Any] | None = None) -> None:
        super().__init__(message, code="invalid_state", details=details)


class ProviderError(OutreachError):
    """The template lookup at the provider failed (a campaign may resume anyway)."""


class ProviderUnavailable(ProviderError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="provider_unavailable")


class ProviderRefused(ProviderError):
    def __init__(self, message: str, *, details: list[Any] | None = None) -> None:
        super().__init__(message, code="provider_error", details=details)
