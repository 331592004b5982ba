"""Exceptions of the conversation service.

::

    ConversationError
    ├── NotReady                 database / broker / Redis not connected yet (HTTP 503)
    ├── SessionConflict          the session changed under us despite the lock (retried)
    └── CatalogError             a product request the catalog refuses (HTTP 4xx)
        └── UnknownTenant        no settings / products for that tenant

Queue-message fates (duplicate → ``Discard``) come from :mod:`flowchat_platform.errors`.
"""

from __future__ import annotations


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
