"""Prometheus metrics of the relay (the endpoint label is bounded by registered
endpoints: a deleted endpoint's series are removed)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter(
    "flowchat_relay_deliveries_total",
    "Delivery attempts by outcome (delivered, retry, failed, gone, unsafe)",
    ["outcome"],
)
DELIVERY_SECONDS = Histogram(
    "flowchat_relay_delivery_seconds",
    "Time of one delivery attempt, from connect to the answer read",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PURGED = Counter(
    "flowchat_relay_purged_total",
    "Rows removed by retention, by kind (attempts, events: their deliveries go with them)",
    ["kind"],
)
EVENTS_STORED = Counter(
    "flowchat_relay_events_stored_total",
    "Events stored for delivery (at least one endpoint subscribed), by type",
    ["type"],
)
EVENTS_SKIPPED = Counter(
    "flowchat_relay_events_skipped_total",
    "Events no endpoint subscribes to (not stored), by type",
    ["type"],
)
ENDPOINTS_DISABLED = Counter(
    "flowchat_relay_endpoints_disabled_total",
    "Endpoints the relay disabled, by reason (gone: 410, failing: failed for too long)",
    ["reason"],
)
for _reason in ("gone", "failing"):  # at 0 from the start: an alert sees the first one
    ENDPOINTS_DISABLED.labels(_reason)
NOTICES_UNPUBLISHED = Counter(
    "flowchat_relay_notices_unpublished_total",
    "The relay's own events (endpoint_disabled) it could not publish on flowchat.events",
    ["kind"],
)
NOTICES_UNPUBLISHED.labels("endpoint_disabled")
OLDEST_UNDELIVERED = Gauge(
    "flowchat_relay_oldest_undelivered_seconds",
    "Age of the oldest event not yet delivered, per endpoint",
    ["endpoint"],
)
SEALED = Counter(
    "flowchat_relay_sealed_total",
    "Rows encrypted at rest by the background pass (sealed: stored in clear before; "
    "rotated: re-encrypted under the newest key), by table",
    ["table", "action"],
)
