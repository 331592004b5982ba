"""Prometheus metrics shared by every service (the infrastructure's own).

Service-specific metrics live in each service's ``metrics.py``. Labels are
bounded: exchange and queue names come from the topology, outcomes from a fixed set.

Importing this module switches off the ``*_created`` series of every family (counters,
histograms and summaries of every service import it through ``flowchat_platform``): they
double the series count and no rule or dashboard reads them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # type: ignore[no-untyped-call]

AMQP_PUBLISHED = Counter(
    "flowchat_amqp_published_total",
    "Messages published and confirmed by the broker, or failed",
    ["service", "exchange", "outcome"],
)
AMQP_PUBLISH_SECONDS = Histogram(
    "flowchat_amqp_publish_duration_seconds",
    "Time from publish to broker confirm",
    ["service", "exchange"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
AMQP_CONSUMED = Counter(
    "flowchat_amqp_consumed_total",
    "Messages consumed, by fate (ack, retry, dead_letter, discard, poison, requeue)",
    ["service", "queue", "fate"],
)
AMQP_HANDLER_RETRIES = Counter(
    "flowchat_amqp_handler_retries_total",
    "Handler runs that failed because a dependency was unavailable and run again in place",
    ["service", "queue"],
)
AMQP_HANDLE_SECONDS = Histogram(
    "flowchat_amqp_handle_duration_seconds",
    "Time to handle one consumed message",
    ["service", "queue"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
AMQP_QUEUE_MESSAGES = Gauge(
    "flowchat_amqp_queue_messages",
    "Messages ready in a queue this service consumes or parks into (passive declare)",
    ["service", "queue"],
)
AMQP_QUEUE_CONSUMERS = Gauge(
    "flowchat_amqp_queue_consumers",
    "Consumers attached to a queue this service consumes or parks into (passive declare)",
    ["service", "queue"],
)
AMQP_CONNECTED = Gauge(
    "flowchat_amqp_connected", "1 while the broker connections are open", ["service"]
)
HTTP_REQUESTS = Counter(
    "flowchat_http_requests_total",
    "HTTP requests served",
    ["service", "method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "flowchat_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
READY = Gauge("flowchat_ready", "1 when the service reports ready", ["service"])
PARTITIONS_HELD = Gauge(
    "flowchat_amqp_partitions_held",
    "Partition queues this process consumes (flowchat_platform.partitions), by group",
    ["service", "group"],
)
PARTITION_MEMBERS = Gauge(
    "flowchat_amqp_partition_members",
    "Live members of a partition group as this process last saw them",
    ["service", "group"],
)
PARTITION_REBALANCES = Counter(
    "flowchat_amqp_partition_rebalances_total",
    "Partition queues taken up or released by this process",
    ["service", "group", "change"],
)
