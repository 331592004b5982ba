"""Exceptions shared by every service.

::

    FlowchatError
    ├── ConfigurationError          bad or missing settings: the process exits at once
    ├── MessageFate                 decides what happens to a queue message (not bugs)
    │   ├── RetryLater(delay_s)     publish to a retry tier, ack the original
    │   ├── DeadLetter(reason)      park in the DLQ with the reason, ack the original
    │   └── Discard(reason)         already handled (duplicate, stale): ack and drop
    ├── PublishError                the broker did not confirm a publish in time
    ├── StoreUnavailable(store)     Redis or PostgreSQL did not answer (in time)
    └── UpstreamError               another FlowChat service answered badly or not at all

Anything else raised while handling a queue message is a bug: the message is
rejected back to its queue, and the queue's delivery limit parks it eventually.
"""

from __future__ import annotations


class FlowchatError(Exception):
    """Base of FlowChat's own exceptions."""


class ConfigurationError(FlowchatError):
    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


class MessageFate(FlowchatError):
    """Raised by a handler to choose a message's fate; not an error in the code."""


class RetryLater(MessageFate):
    def __init__(self, reason: str, *, delay_s: float, counts_as_attempt: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_s = delay_s
        self.counts_as_attempt = counts_as_attempt


class DeadLetter(MessageFate):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Discard(MessageFate):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PublishError(FlowchatError):
    def __init__(self, message: str, *, exchange: str, routing_key: str) -> None:
        super().__init__(message)
        self.exchange = exchange
        self.routing_key = routing_key


class StoreUnavailable(FlowchatError):
    """A data store (Redis, PostgreSQL) failed or did not answer in time.

    ``store`` names which one (``"redis"``, ``"idempotency"``, ``"database"``, …) for
    logs and metrics; the caller decides whether to degrade, retry or refuse.
    """

    def __init__(self, message: str, *, store: str | None = None) -> None:
        super().__init__(message)
        self.store = store


class UpstreamError(FlowchatError):
    def __init__(self, message: str, *, service: str, status: int | None = None) -> None:
        super().__init__(message)
        self.service = service
        self.status = status
