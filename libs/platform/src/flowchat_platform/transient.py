"""Which failures mean "a dependency is unavailable right now", not "this input is bad".

A queue consumer whose handler fails this way handles the message again in place
(:mod:`flowchat_platform.amqp`) instead of rejecting it at once: Redis restarting,
PostgreSQL terminating a backend, another FlowChat service or the broker not
answering are over in seconds, and a reject-redeliver loop would spend the queue's
delivery limit in that time and park a good message.

The exception and its explicit causes (``raise ... from exc``) are checked, so a
service's own wrapper (``StoreUnavailable(...) from redis_error``) counts too.
"""

from __future__ import annotations

import asyncpg
import redis.exceptions

from flowchat_platform.errors import PublishError, UpstreamError

#: Redis or PostgreSQL unavailable: an HTTP request failing on one answers 503.
DEPENDENCY_DOWN: tuple[type[Exception], ...] = (
    # Redis: connection refused or lost, a socket timeout, loading after a restart
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    # PostgreSQL: connection lost or refused (class 08), terminated or shutting down
    # (class 57: pg_terminate_backend, restarts), too many connections
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    # what asyncpg raises instead, now and then, on a connection whose backend was
    # terminated mid-operation ("cannot switch to state 15; another operation (2) is in
    # progress", MagicStack/asyncpg#784, #1069); the pool closes that connection
    asyncpg.InternalClientError,
)

TRANSIENT: tuple[type[BaseException], ...] = (
    *DEPENDENCY_DOWN,
    # a serialization failure or deadlock (class 40): the transaction can run again
    asyncpg.exceptions.TransactionRollbackError,
    # another FlowChat service, the broker, the network
    UpstreamError,
    PublishError,
    ConnectionError,
    TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or an explicit cause of it) says a dependency is unavailable."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, TRANSIENT):
            return True
        seen.add(id(current))
        current = current.__cause__
    return False
