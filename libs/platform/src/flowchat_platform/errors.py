"""Exceptions shared by every service.

::

    FlowchatError
    ├── ConfigurationError          bad or missing settings: the process exits at once
    ├── MessageFate                 decides what happens to a queue message (not bugs)
    │   ├── RetryLater(delay_s)     publish to a retry tier, ack the original
    │   ├── DeadLetter(reason, headers)
    │   │                           park in the DLQ with the reason and the headers it
    │   │                           names (parked_headers), ack the original
    │   └── Discard(reason)         already handled (duplicate, stale): ack and drop
    ├── MigrationFailed             a service's migrations failed (``db``: their child
    │                               process's error)
    ├── PublishError                the broker did not confirm a publish in time
    ├── StoreUnavailable(store)     Redis or PostgreSQL did not answer (in time)
    └── UpstreamError               another FlowChat service answered badly or not at all

Anything else raised while handling a queue message is a bug: the message is
rejected back to its queue, and the queue's delivery limit parks it eventually.

A fate carries all the consumer needs to carry it out: a :class:`DeadLetter` names
the parked copy's headers (:meth:`DeadLetter.parked_headers`), so a service's own
bookkeeping (error codes, attempts, failure times) goes through the same one
handler (:mod:`flowchat_platform.amqp`) as every other fate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Headers FlowChat sets on messages it moves between queues (re-exported by
#: :mod:`flowchat_platform.amqp`).
HEADER_REASON = "x-flowchat-reason"
HEADER_ORIGIN_QUEUE = "x-flowchat-origin-queue"
HEADER_ATTEMPT = "x-flowchat-attempt"


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
    """Park the message in the consumer's dead-letter queue with ``reason``.

    ``headers`` are set on the parked copy over the message's own. A subclass that
    needs more (keep fewer of the message's headers, derive some from them) overrides
    :meth:`parked_headers`.
    """

    def __init__(self, reason: str, *, headers: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.headers: dict[str, Any] = dict(headers) if headers else {}

    def parked_headers(
        self, own: Mapping[str, Any], *, queue: str, routing_key: str
    ) -> dict[str, Any]:
        """The parked copy's headers: the message's ``own``, then :attr:`headers`, the
        reason, and the routing key the message came with as its origin.

        ``queue`` is the queue the message was consumed from (for subclasses that
        record it instead).
        """
        headers = {**own, **self.headers}
        headers[HEADER_REASON] = self.reason[:1000]
        headers[HEADER_ORIGIN_QUEUE] = routing_key
        return headers


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
