"""Errors of the relay.

::

    FlowchatError                      (flowchat_platform.errors)
    └── RelayError                     base of the relay's own errors
        ├── InvalidEndpoint(field)     an endpoint the API refuses: bad or unsafe URL,
        │                              unknown event type (→ 422 naming the field)
        ├── UnsafeTarget(reason)       a URL whose host resolves to an address the relay
        │                              never calls (loopback, private, metadata…);
        │                              at registration an InvalidEndpoint, at delivery a
        │                              failed attempt
        ├── EndpointNotFound           no such endpoint for this tenant (→ 404; another
        │                              tenant's answers the same)
        ├── DeliveryNotFound           no such delivery of this endpoint (→ 404)
        └── InvalidCursor              a pagination cursor we did not issue (→ 400)

The app's one handler turns each into the error body (``app.py``).
"""

from __future__ import annotations

from flowchat_platform.errors import FlowchatError


class RelayError(FlowchatError):
    """Base of the relay's own errors."""


class InvalidEndpoint(RelayError):
    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class UnsafeTarget(RelayError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EndpointNotFound(RelayError):
    pass


class DeliveryNotFound(RelayError):
    pass


class InvalidCursor(RelayError):
    pass
