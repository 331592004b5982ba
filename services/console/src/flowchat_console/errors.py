"""Errors of the console.

::

    FlowchatError                     (flowchat_platform.errors)
    └── ConsoleError                  base of the console's own errors
        ├── UpstreamError(service, status, code, message, details)
        │                             a service answered an error (its own code), or did
        │                             not answer at all (status 502/504, code
        │                             ``upstream_unavailable``)
        ├── SignInRequired            no (or a dead) session: pages redirect to /sign-in
        ├── Forbidden(action)         the user's role may not do this (403 page)
        └── CsrfRejected              a POST without the session's CSRF token (403)
"""

from __future__ import annotations

from typing import Any

from flowchat_platform.errors import FlowchatError


class ConsoleError(FlowchatError):
    """Base of the console's own errors."""


class UpstreamError(ConsoleError):
    def __init__(
        self,
        service: str,
        status: int,
        code: str,
        message: str,
        details: Any = None,
    ) -> None:
        super().__init__(f"{service}: {status} {code}: {message}")
        self.service = service
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class SignInRequired(ConsoleError):
    """No session cookie, or the tenant service no longer knows the session."""


class Forbidden(ConsoleError):
    def __init__(self, action: str) -> None:
        super().__init__(f"not allowed: {action}")
        self.action = action


class CsrfRejected(ConsoleError):
    """A state-changing request without the matching CSRF token."""
