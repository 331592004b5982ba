"""Exceptions of the conversation service.

::

    ConversationError
    ├── NotReady                 database / broker / Redis not connected yet (HTTP 503)
    ├── SessionConflict          the session changed under us despite the lock (retried)
    ├── CatalogError             a product request the catalog refuses (HTTP 4xx)
    │   └── UnknownTenant        no settings / products for that tenant
    └── OutreachError            a contacts / campaign / reminder request refused (HTTP 4xx)

Queue-message fates (duplicate → ``Discard``) come from :mod:`flowchat_platform.errors`.
"""

from __future__ import annotations

from typing import Any


class ConversationError(Exception):
    """Base of the conversation service's own exceptions."""


class NotReady(ConversationError):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is not connected yet")
        self.what = what


class SessionConflict(ConversationError):
    def __init__(self, key: str, *, expected_version: int) -> None:
        super().__init__(f"session {key} changed concurrently (expected v{expected_version})")
        self.key = key
        self.expected_version = expected_version


class CatalogError(ConversationError):
    def __init__(self, message: str, *, code: str = "invalid_product") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UnknownTenant(CatalogError):
    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"unknown tenant {tenant_id}", code="unknown_tenant")
        self.tenant_id = tenant_id


class OutreachError(ConversationError):
    """A contacts, campaigns or reminders request refused, with the reason."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int = 422,
        details: list[Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = details or []


class OrderError(ConversationError):
    def __init__(self, message: str, *, code: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class OrderNotFound(OrderError):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"no order {order_id}", code="not_found", status=404)
        self.order_id = order_id


class InvalidTransition(OrderError):
    def __init__(self, order_id: str, *, current: str, target: str) -> None:
        super().__init__(
            f"order {order_id} cannot go from {current} to {target}",
            code="invalid_transition",
            status=409,
        )
        self.order_id = order_id
        self.current = current
        self.target = target


class PaymentRejected(OrderError):
    def __init__(self, code: str, message: str, *, status: int = 409) -> None:
        super().__init__(message, code=code, status=status)


class NoHandoff(OrderError):
    def __init__(self, customer_wa_id: str) -> None:
        super().__init__(
            f"no open hand-off with customer {customer_wa_id}", code="no_handoff", status=404
        )
        self.customer_wa_id = customer_wa_id
