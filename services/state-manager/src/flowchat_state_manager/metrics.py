"""Prometheus metrics of the state-manager (labels are bounded: no ids)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STATUSES = Counter(
    "flowchat_state_manager_statuses_total",
    "Status events handled, by status and outcome "
    "(applied, duplicate, out_of_order, pending, rejected)",
    ["status", "outcome"],
)
PENDING = Gauge(
    "flowchat_state_manager_pending_statuses",
    "Statuses held because their provider message id is not mapped yet",
)
OUTBOX_BACKLOG = Gauge(
    "flowchat_state_manager_outbox_backlog",
    "Status-change events written but not yet confirmed by the broker",
)
EVENTS_PUBLISHED = Counter(
    "flowchat_state_manager_events_published_total",
    "Status-change events relayed from the outbox to flowchat.events",
    ["outcome"],
)
PURGED = Counter(
    "flowchat_state_manager_purged_total",
    "Rows removed by retention, by table",
    ["table"],
)
SEALED = Counter(
    "flowchat_state_manager_sealed_total",
    "Messages whose recipient ids the background pass encrypted (sealed: stored in clear "
    "before; rotated: re-encrypted under the newest key)",
    ["action"],
)
BATCH_SIZE = Histogram(
    "flowchat_state_manager_batch_size",
    "Status events applied per write transaction",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
