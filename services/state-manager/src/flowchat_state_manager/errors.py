"""Errors of the state-manager.

::

    FlowchatError                      (flowchat_platform.errors)
    ├── StoreUnavailable(store)        the platform's: the database is unreachable during a
    │                                  status transaction, so the event is retried later
    └── StateManagerError              base of the state-manager's own errors
        ├── RejectedEvent(reason)      a status event that can never apply (tenant mismatch,
        │                              a WAMID claimed by another message): parked with the reason
        └── QueryError                 a query the API refuses (app.py maps each to HTTP)
            └── MessageNotFound        no such message for this tenant (→ 404; another
                                       tenant's message answers the same)

The consumer turns :class:`RejectedEvent` into ``DeadLetter`` and ``StoreUnavailable``
into ``RetryLater``; the app's one handler turns a :class:`QueryError` into the error body.
A cursor this API did not issue is the platform's ``InvalidCursor`` (→ 400
``invalid_cursor``, :mod:`flowchat_platform.pagination`).
"""

from __future__ import annotations

from flowchat_platform.errors import FlowchatError


class StateManagerError(FlowchatError):
    """Base of the state-manager's own errors."""


class RejectedEvent(StateManagerError):
    def __init__(self, reason: str, *, message_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message_id = message_id


class QueryError(StateManagerError):
    """A query the API refuses; the message is the answer's."""


class MessageNotFound(QueryError):
    pass
