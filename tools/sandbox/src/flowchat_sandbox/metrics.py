"""The sandbox's own Prometheus metrics (``flowchat_sandbox_…``)."""

from __future__ import annotations

from types import TracebackType

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


class CountedSend:
    """``with CountedSend(provider):`` around one send request counts it in :data:`SENDS`:
    ``accepted``, or the code of the error that refused it. (A class, not a generator
    context manager: it is on the send path, and this costs a third as much.)"""

    __slots__ = ("provider",)

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            SENDS.labels(self.provider, "accepted").inc()
        elif isinstance(exc, GraphError | TwilioError):
            SENDS.labels(self.provider, str(exc.code)).inc()
