"""The gateway's Prometheus metrics. Every label comes from a fixed, small set."""

from __future__ import annotations

import functools

from prometheus_client import Counter, Histogram

#: provider: meta | twilio; kind: verification | webhook;
#: outcome: accepted | duplicate | parked | invalid_signature | unavailable | too_large |
#: unsupported_media_type | not_found | forbidden.
WEBHOOKS = Counter(
    "flowchat_gateway_webhooks_total",
    "Webhook requests answered, by provider, kind and outcome",
    ["provider", "kind", "outcome"],
)
SIGNATURE_FAILURES = Counter(
    "flowchat_gateway_signature_failures_total",
    "Webhooks refused because their signature matched no known secret",
    ["provider"],
)
#: kind: inbound_message | status_update | business_event;
#: type: the inbound type, the status, or the business field (all enumerated);
#: outcome: published | duplicate.
EVENTS = Counter(
    "flowchat_gateway_events_total",
    "Normalized webhook events, by outcome",
    ["provider", "kind", "type", "outcome"],
)
PARKED = Counter(
    "flowchat_gateway_parked_total",
    "Webhook parts parked on the poison queue for inspection, by reason",
    ["provider", "reason"],
)
IGNORED = Counter(
    "flowchat_gateway_ignored_total",
    "Webhook changes ignored (fields FlowChat does not handle)",
    ["provider", "reason"],
)
DEDUPE_UNAVAILABLE = Counter(
    "flowchat_gateway_dedupe_unavailable_total",
    "Webhook requests published without a dedupe check because Redis failed",
    ["provider", "step"],
)
PUBLISH_SECONDS = Histogram(
    "flowchat_gateway_publish_duration_seconds",
    "Time to publish and confirm every event of one request",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
#: outcome: accepted | replayed | unauthorized | forbidden | invalid | not_found |
#: conflict | rate_limited | unavailable.
SEND_REQUESTS = Counter(
    "flowchat_gateway_send_requests_total",
    "Send API requests, by outcome",
    ["outcome"],
)
#: outcome: found | not_found | unauthorized | forbidden | rate_limited | unavailable.
QUERY_REQUESTS = Counter(
    "flowchat_gateway_query_requests_total",
    "Message query API requests (GET /v1/messages/{id}), by outcome",
    ["outcome"],
)
#: tenant: the caller's, from its authenticated API key (a registered tenant, never a
#: value from the request).
RATE_LIMITED = Counter(
    "flowchat_gateway_rate_limited_total",
    "Send and query API requests refused with 429 (per-key rate limit), by the caller's tenant",
    ["tenant"],
)
#: route: messages | read | media | templates (the Cloud-API-compatible routes);
#: outcome: accepted | replayed | unauthorized | forbidden | invalid | rate_limited |
#: conflict | unavailable | refused (Meta's own error, passed through).
CLOUD_API_REQUESTS = Counter(
    "flowchat_gateway_cloud_api_requests_total",
    "Cloud-API-compatible requests, by route and outcome",
    ["route", "outcome"],
)


# The webhook path's children by their labels (all from fixed sets), looked up once:
# ``labels()`` takes a lock and checks every label on each call.
webhooks = functools.lru_cache(maxsize=256)(WEBHOOKS.labels)
events = functools.lru_cache(maxsize=1024)(EVENTS.labels)
publish_seconds = functools.lru_cache(maxsize=16)(PUBLISH_SECONDS.labels)
