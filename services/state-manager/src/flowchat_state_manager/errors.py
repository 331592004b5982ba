"""Errors of the state-manager.

::

    StateManagerError
    ├── RejectedEvent(reason)     a status event that can never apply (tenant mismatch,
    │                             a WAMID claimed by another message): parked with the reason
    ├── StoreUnavailable          the database is unreachable: the event is retried later
    └── InvalidCursor             a query's pagination cursor is not one we issued
"""

from __future__ import annotations


class StateManagerError(Exception):
    """Base of the state-manager's own errors."""


class RejectedEvent(StateManagerError):
    def __init__(self, reason: str, *, message_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message_id = message_id


class StoreUnavailable(StateManagerError):
    pass


class InvalidCursor(StateManagerError):
    pass
