"""Prometheus metrics of the inbox. Labels are bounded: no customer or agent ids; a
tenant label only on the per-tenant wait gauges, which hold the ``GAUGE_TOP_TENANTS``
tenants whose customers have waited longest (cleared and refilled each refresh)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INGESTED = Counter(
    "flowchat_inbox_ingested_total",
    "History items handled, by kind (inbound, outbound, status, handoff) and outcome "
    "(recorded, duplicate)",
    ["kind", "outcome"],
)
PURGED = Counter(
    "flowchat_inbox_purged_total",
    "Rows removed by retention, by kind (messages, statuses)",
    ["kind"],
)
SEALED = Counter(
    "flowchat_inbox_sealed_total",
    "Rows the background encryption pass changed, by table (threads, aliases, messages) "
    "and action (sealed: stored in clear before; rotated: re-encrypted under the newest key)",
    ["table", "action"],
)
BATCH_SIZE = Histogram(
    "flowchat_inbox_ingest_batch_size",
    "Queue messages written per transaction",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
WAITING = Gauge(
    "flowchat_inbox_customers_waiting",
    "Open hand-offs no agent has answered yet (all tenants)",
)
OLDEST_WAIT = Gauge(
    "flowchat_inbox_oldest_wait_seconds",
    "Age of the oldest open hand-off no agent has answered yet (all tenants)",
)
TENANT_WAITING = Gauge(
    "flowchat_inbox_tenant_customers_waiting",
    "Open hand-offs no agent has answered yet, of the tenants waiting longest (top N)",
    ["tenant"],
)
TENANT_OLDEST_WAIT = Gauge(
    "flowchat_inbox_tenant_oldest_wait_seconds",
    "Age of the tenant's oldest unanswered hand-off, of the tenants waiting longest (top N)",
    ["tenant"],
)
WAIT_ALERT = Gauge(
    "flowchat_inbox_wait_alert_seconds",
    "The wait after which FlowchatCustomerWaitingTooLong fires (FLOWCHAT_INBOX_WAIT_ALERT_S)",
)
FIRST_RESPONSE = Histogram(
    "flowchat_inbox_first_response_seconds",
    "From a hand-off to the first agent reply",
    buckets=(5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600),
)
ACTIONS = Counter(
    "flowchat_inbox_actions_total",
    "Agents' actions, by action and outcome (ok, refused)",
    ["action", "outcome"],
)
STREAMS = Gauge("flowchat_inbox_live_streams", "Open live-update streams")
LIVE_DROPPED = Counter(
    "flowchat_inbox_live_dropped_total",
    "Live updates dropped, by reason (buffer_full, publish_failed, invalid)",
    ["reason"],
)
