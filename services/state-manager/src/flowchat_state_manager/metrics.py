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
PARTITIONS_DROPPED = Counter(
    "flowchat_state_manager_partitions_dropped_total",
    "Week partitions dropped by retention (messages with their history)",
)
PARTITION_ROWS_DROPPED = Counter(
    "flowchat_state_manager_partition_rows_dropped_total",
    "Messages in the partitions retention dropped (PostgreSQL's row estimate)",
)
PARTITION_DROP_SECONDS = Histogram(
    "flowchat_state_manager_partition_drop_seconds",
    "Time to detach and drop one week partition of both tables",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PARTITIONS_CREATED = Counter(
    "flowchat_state_manager_partitions_created_total",
    "Week partitions created ahead of time",
)
PARTITIONS = Gauge(
    "flowchat_state_manager_partitions",
    "Week partitions of the messages table",
)
UNPARTITIONED = Gauge(
    "flowchat_state_manager_default_partition_messages",
    "Messages in the DEFAULT partition (outside every week created: should stay 0)",
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
RETENTION_LONGEST_SECONDS = Gauge(
    "flowchat_state_manager_retention_longest_seconds",
    "Seconds the longest-kept tenant keeps its message records (the default or a tenant's "
    "own): a week partition is dropped once older than this",
)
