"""The sandbox's own Prometheus metrics (``flowchat_sandbox_…``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prometheus_client import Counter

from flowchat_sandbox.errors import GraphError, TwilioError

SENDS = Counter(
    "flowchat_sandbox_sends_total",
    "Send requests answered, by provider and outcome (accepted or the error code)",
    ["provider", "outcome"],
)
WEBHOOKS = Counter(
    "flowchat_sandbox_webhook_attempts_total",
    "Webhook delivery attempts, by kind and result",
    ["kind", "result"],
)
INBOUND = Counter(
    "flowchat_sandbox_customer_messages_total",
    "Messages written by simulated customers, by provider",
    ["provider"],
)
MEDIA = Counter(
    "flowchat_sandbox_media_total",
    "Media API calls, by operation (upload, retrieve, delete, download) and outcome",
    ["operation", "outcome"],
)


@contextlib.contextmanager
def counted_send(provider: str) -> Iterator[None]:
    """Count one send request in :data:`SENDS`: ``accepted``, or the code that refused it."""
    try:
        yield
    except (GraphError, TwilioError) as exc:
        SENDS.labels(provider, str(exc.code)).inc()
        raise
    SENDS.labels(provider, "accepted").inc()
