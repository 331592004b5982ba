"""Prometheus metrics of the sender. Labels are bounded: tenant and account ids, codes, fixed
words."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SENDS = Counter(
    "flowchat_sender_sends_total",
    "Commands finished, by outcome (accepted, failed, duplicate, parked) and error code",
    ["provider", "tenant", "account", "type", "outcome", "code"],
)
CAMPAIGN_SENDS = Counter(
    "flowchat_sender_campaign_sends_total",
    "Commands of a campaign finished, by tenant, category and outcome (no campaign id: "
    "per-campaign figures come from the state-manager's /v1/stats)",
    ["tenant", "category", "outcome"],
)
SEND_SECONDS = Histogram(
    "flowchat_sender_send_duration_seconds",
    "Provider call latency",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LIMITER_WAITS = Counter(
    "flowchat_sender_limiter_waits_total",
    "Limiter decisions that made a message wait: inline sleep or a retry tier, by the "
    "tenant and account (validated: only a registered account reaches the limiter)",
    ["tenant", "account", "limit", "where"],
)
LIMITER_WAIT_SECONDS = Histogram(
    "flowchat_sender_limiter_wait_seconds",
    "Seconds slept in-process for a rate-limit slot",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
BREAKER_STATE = Gauge(
    "flowchat_sender_breaker_state",
    "Circuit breaker state per account: 0 closed, 1 half-open, 2 open",
    ["account"],
)
RETRIES = Counter(
    "flowchat_sender_retries_total",
    "Commands sent to a retry tier, by tier and whether it used up an attempt",
    ["tier", "counted"],
)
DLQ = Counter("flowchat_sender_dlq_total", "Commands parked in the DLQ, by reason", ["reason"])
REJECTED = Counter(
    "flowchat_sender_rejected_total",
    "Invalid commands parked in flowchat.poison (a command_rejected event published)",
)
TEMPLATE_CATALOG = Counter(
    "flowchat_sender_template_catalog_loads_total",
    "Template catalog loads by source: redis, graph (a sync of every page), graph_error, "
    "redis_error (the check is skipped then); template misses: miss_sync (a sync asked "
    "for), miss_wait (too soon for one: the command went to a retry tier)",
    ["source"],
)
TEMPLATE_REFUSALS = Counter(
    "flowchat_sender_template_refusals_total",
    "Template commands refused before the provider call, by FlowChat's own code",
    ["code"],
)
TEMPLATE_EVENTS = Counter(
    "flowchat_sender_template_events_total",
    "Template webhooks handled: synced (catalog refreshed), no_account, ignored",
    ["outcome"],
)
MEDIA_UPLOADS = Counter(
    "flowchat_sender_media_uploads_total",
    "Media upload requests by kind and outcome: uploaded, cached (id reused), refused "
    "(type or size), failed (provider or link)",
    ["kind", "outcome"],
)
