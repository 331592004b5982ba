"""The sandbox's own Prometheus metrics (``flowchat_sandbox_…``)."""

from __future__ import annotations

from prometheus_client import Counter

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
