"""Errors of the inbox.

::

    FlowchatError                       (flowchat_platform.errors)
    ├── StoreUnavailable(store)         the platform's: the database is unreachable; a
    │                                   queue message is handled again later
    └── InboxError                      base of the inbox's own errors
        └── Refused(code, status)       a request the API refuses; app.py answers each
            ├── NotFound                no such thread/conversation for this tenant (404;
            │                           another tenant's answers the same)
            ├── InvalidCursor           a pagination cursor we did not issue (400)
            ├── AlreadyClaimed(holder)  another agent holds the conversation (409)
            ├── NotHolder(holder)       only the holder may reply/resolve (409)
            ├── ConversationClosed      the conversation is resolved (409)
            ├── ConversationOpen(id)    the thread already has an open conversation (409)
            ├── OutsideWindow           free text after the 24 h window (422, names the rule)
            ├── TooManyTags             more tags than a conversation holds (422)
            └── Forbidden               the caller's role may not do this (403)

Every :class:`Refused` carries its HTTP status and machine-readable code, so the app
has one handler for all of them.
"""

from __future__ import annotations

from typing import Any

from flowchat_platform.errors import FlowchatError


class InboxError(FlowchatError):
    """Base of the inbox's own errors."""


class Refused(InboxError):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class NotFound(Refused):
    status = 404
    code = "not_found"


class InvalidCursor(Refused):
    status = 400
    code = "invalid_cursor"


class AlreadyClaimed(Refused):
    status = 409
    code = "already_claimed"

    def __init__(self, holder: str) -> None:
        super().__init__(f"the conversation is held by {holder}", details={"holder": holder})
        self.holder = holder


class NotHolder(Refused):
    status = 409
    code = "not_holder"

    def __init__(self, holder: str | None) -> None:
        who = holder or "nobody (claim it first)"
        super().__init__(f"the conversation is held by {who}", details={"holder": holder})
        self.holder = holder


class ConversationClosed(Refused):
    status = 409
    code = "conversation_resolved"


class ConversationOpen(Refused):
    status = 409
    code = "conversation_open"

    def __init__(self, conversation_id: int, holder: str | None) -> None:
        super().__init__(
            "the thread already has an open conversation",
            details={"conversation_id": conversation_id, "holder": holder},
        )


class OutsideWindow(Refused):
    status = 422
    code = "outside_customer_service_window"


class Forbidden(Refused):
    status = 403
    code = "forbidden"


class TooManyTags(Refused):
    status = 422
    code = "too_many_tags"
