"""Write FlowChat's Grafana dashboards (deploy/grafana/dashboards/*.json).

The dashboards are plain provisioned JSON; this script is how they are written, so
that every panel has the same shape and every query names real metrics. Edit the
panels below, then run ``uv run python deploy/grafana/generate.py``;
``make test-ops`` checks that the JSON is current and that a real Prometheus scraping
a running stack returns data for every query.

Template variables: ``$tenant`` and ``$account`` (regex matchers, "All" is ``.*``).
Rows (``row()``) are section headers: the panels after one belong to it.
Queries over series that only exist once something happened (a DLQ reason, a
signature failure) add ``or … * 0`` so an idle system shows 0 rather than "No data".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
DS = {"type": "prometheus", "uid": "prometheus"}
RI = "$__rate_interval"
TN = 'tenant=~"$tenant"'
AC = 'account=~"$account"'
WORK_QUEUES = r"whatsapp\\.outbound|conversation\\.inbound|state-manager\\.status"
PARKING_QUEUES = r"whatsapp\\.outbound\\.dlq|flowchat\\.poison"


def panel(
    title: str,
    *targets: tuple[str, str],
    kind: str = "timeseries",
    unit: str = "short",
    description: str = "",
    width: int = 12,
) -> dict[str, Any]:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"w": width, "h": 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "right"}}
        if kind == "timeseries"
        else {},
        "targets": [
            {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": chr(65 + i)}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def row(title: str) -> dict[str, Any]:
    """A row header: a section of the panels that follow it (no query of its own)."""
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"w": 24, "h": 1}}


def variable(name: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": name},
        "definition": query,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"text": "All", "value": "$__all"},
        "refresh": 2,
        "sort": 1,
    }


def dashboard(
    uid: str, title: str, panels: list[dict[str, Any]], variables: list[dict[str, Any]]
) -> dict[str, Any]:
    x = y = height = 0
    laid = []
    for i, p in enumerate(panels, start=1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24 or p["type"] == "row":
            x, y, height = 0, y + height, 0
        laid.append({**p, "id": i, "gridPos": {**p["gridPos"], "x": x, "y": y}})
        x, height = x + w, max(height, h)
        if p["type"] == "row":
            x = 24  # the next panel starts a line below it
    return {
        "uid": uid,
        "title": title,
        "tags": ["flowchat"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [
            {"title": "FlowChat", "type": "dashboards", "tags": ["flowchat"], "asDropdown": True}
        ],
        "panels": laid,
    }


def zero_if_none(expr: str, by: str, base: str) -> str:
    """``expr``, or 0 for every group of ``base`` (so quiet series read as 0, not no data)."""
    return f"(({expr}) or (sum by ({by}) ({base}) * 0))"


TENANT_VARS = [
    variable("tenant", "label_values(flowchat_sender_sends_total, tenant)"),
    variable("account", 'label_values(flowchat_sender_sends_total{tenant=~"$tenant"}, account)'),
]


def overview() -> dict[str, Any]:
    http = f"rate(flowchat_http_requests_total[{RI}])"
    return dashboard(
        "flowchat-overview",
        "FlowChat / Overview",
        [
            panel(
                "Ready (1) per service",
                ("min by (service) (flowchat_ready)", "{{service}}"),
                ("min by (service) (flowchat_amqp_connected)", "{{service}} broker"),
                kind="stat",
                width=24,
            ),
            panel("HTTP requests / s", (f"sum by (service) ({http})", "{{service}}"), unit="reqps"),
            panel(
                "HTTP 5xx ratio",
                (
                    zero_if_none(
                        "sum by (service) (rate(flowchat_http_requests_total"
                        f'{{status=~"5.."}}[{RI}]))',
                        "service",
                        http,
                    )
                    + f" / sum by (service) ({http})",
                    "{{service}}",
                ),
                unit="percentunit",
            ),
            panel(
                "HTTP p95 latency",
                (
                    "histogram_quantile(0.95, sum by (service, le) "
                    f"(rate(flowchat_http_request_duration_seconds_bucket[{RI}])))",
                    "{{service}}",
                ),
                unit="s",
            ),
            panel(
                "Webhooks / s by outcome",
                (
                    f"sum by (provider, outcome) (rate(flowchat_gateway_webhooks_total[{RI}]))",
                    "{{provider}} {{outcome}}",
                ),
                unit="reqps",
            ),
            panel(
                "Queue depth (ready messages)",
                (
                    f'max by (queue) (flowchat_amqp_queue_messages{{queue=~"{WORK_QUEUES}"}})',
                    "{{queue}}",
                ),
                description="Read by every consumer with a passive declare; max over replicas.",
            ),
            panel(
                "Parked messages (DLQ, poison)",
                (
                    f'max by (queue) (flowchat_amqp_queue_messages{{queue=~"{PARKING_QUEUES}"}})',
                    "{{queue}}",
                ),
            ),
            panel(
                "Consumed / s by fate",
                (
                    f"sum by (queue, fate) (rate(flowchat_amqp_consumed_total[{RI}]))",
                    "{{queue}} {{fate}}",
                ),
                unit="ops",
            ),
            panel(
                "Handle p95 by queue",
                (
                    "histogram_quantile(0.95, sum by (queue, le) "
                    f"(rate(flowchat_amqp_handle_duration_seconds_bucket[{RI}])))",
                    "{{queue}}",
                ),
                unit="s",
            ),
            panel(
                "Sends / s by outcome",
                (
                    f"sum by (outcome) (rate(flowchat_sender_sends_total[{RI}]))",
                    "{{outcome}}",
                ),
                unit="ops",
            ),
            panel(
                "Message statuses applied / s",
                (
                    "sum by (status) (rate(flowchat_state_manager_statuses_total"
                    f'{{outcome="applied"}}[{RI}]))',
                    "{{status}}",
                ),
                unit="ops",
            ),
            panel(
                "Inbound customer messages / s",
                (
                    f"sum by (outcome) (rate(flowchat_conversation_inbound_total[{RI}]))",
                    "{{outcome}}",
                ),
                unit="ops",
            ),
            panel(
                "Broker publishes / s by outcome",
                (
                    f"sum by (service, outcome) (rate(flowchat_amqp_published_total[{RI}]))",
                    "{{service}} {{outcome}}",
                ),
                unit="ops",
            ),
            # per pod (the instance label: host:port under compose, the pod's address on
            # Kubernetes; the ServiceMonitor adds a pod label too)
            panel(
                "Ready (1) per pod",
                ("min by (service, instance) (flowchat_ready)", "{{service}} {{instance}}"),
                description="One line per replica: a pod that reports not ready reads 0.",
            ),
            panel(
                "HTTP requests / s per pod",
                (f"sum by (service, instance) ({http})", "{{service}} {{instance}}"),
                unit="reqps",
            ),
            panel(
                "Consumed / s per pod",
                (
                    f"sum by (service, instance) (rate(flowchat_amqp_consumed_total[{RI}]))",
                    "{{service}} {{instance}}",
                ),
                unit="ops",
                description="Uneven lines: one replica holds the work (prefetch, a stuck pod).",
            ),
            panel(
                "Handle p95 per pod",
                (
                    "histogram_quantile(0.95, sum by (service, instance, le) "
                    f"(rate(flowchat_amqp_handle_duration_seconds_bucket[{RI}])))",
                    "{{service}} {{instance}}",
                ),
                unit="s",
            ),
            *relay_row(),
            *inbox_row(),
        ],
        [],
    )


def relay_row() -> list[dict[str, Any]]:
    """Tenants' webhooks (services/relay, issue 22)."""
    deliveries = f"rate(flowchat_relay_deliveries_total[{RI}])"
    latency = f"rate(flowchat_relay_delivery_seconds_bucket[{RI}])"
    return [
        row("Relay: tenants' webhooks"),
        panel(
            "Webhook deliveries / s by outcome",
            (f"sum by (outcome) ({deliveries})", "{{outcome}}"),
            unit="ops",
            description=(
                "Attempts: delivered (2xx), retry (3xx/4xx/5xx, no answer, timeout; retried "
                "with backoff), failed (out of retries), gone (410: endpoint disabled), "
                "unsafe (the endpoint's address is private at delivery)."
            ),
            width=8,
        ),
        panel(
            "Webhook delivery latency",
            *[
                (
                    f"histogram_quantile({q}, sum by (le) ({latency}))",
                    f"p{int(q * 100)}",
                )
                for q in (0.5, 0.95)
            ],
            unit="s",
            description="One attempt, from connect to the answer read (all endpoints).",
            width=8,
        ),
        panel(
            "Oldest undelivered event per endpoint",
            ("max by (endpoint) (flowchat_relay_oldest_undelivered_seconds)", "{{endpoint}}"),
            unit="s",
            description=(
                "Age of each endpoint's oldest event not yet delivered (0: caught up). "
                "Growing: the endpoint is down, slow or refusing; its delivery log "
                "(GET /v1/endpoints/{id}/deliveries) says why."
            ),
            width=8,
        ),
        panel(
            "Endpoints disabled (last 24 h) by reason",
            (
                zero_if_none(
                    "sum by (reason) (increase(flowchat_relay_endpoints_disabled_total[24h]))",
                    "reason",
                    "flowchat_relay_deliveries_total",
                ),
                "{{reason}}",
            ),
            kind="stat",
            description="gone: the endpoint answered 410; failing: every delivery failed for "
            "DISABLE_AFTER_S. A tenant re-enables it with PATCH enabled=true.",
            width=8,
        ),
        panel(
            "Events stored for delivery / s by type",
            (
                f"sum by (type) (rate(flowchat_relay_events_stored_total[{RI}]))",
                "{{type}}",
            ),
            unit="ops",
            description="Only events some enabled endpoint subscribes to are stored.",
            width=8,
        ),
        panel(
            "Relay intake queues (ready messages)",
            (
                'max by (queue) (flowchat_amqp_queue_messages{queue=~"relay\\\\..*"})',
                "{{queue}}",
            ),
            width=8,
        ),
    ]


def inbox_row() -> list[dict[str, Any]]:
    """People answering customers (services/inbox, issue 23). The inbox's gauges are
    across tenants today; ``by (tenant)`` splits them once they carry a tenant label."""
    first = "flowchat_inbox_first_response_seconds_bucket"
    return [
        row("Inbox: hand-offs to people"),
        panel(
            "Customers waiting for a person",
            ("max by (tenant) (flowchat_inbox_customers_waiting)", "waiting {{tenant}}"),
            description="Open hand-offs no agent has answered yet.",
            width=8,
        ),
        panel(
            "Oldest wait",
            ("max by (tenant) (flowchat_inbox_oldest_wait_seconds)", "oldest {{tenant}}"),
            unit="s",
            description="How long the longest-waiting customer has waited for a first reply.",
            width=8,
        ),
        panel(
            "First response time (last hour)",
            *[
                (
                    f"histogram_quantile({q}, sum by (le) (increase({first}[1h])))",
                    f"p{int(q * 100)}",
                )
                for q in (0.5, 0.95)
            ],
            unit="s",
            description="From a hand-off to the first agent reply.",
            width=8,
        ),
        panel(
            "History ingest / s by kind",
            (
                f"sum by (kind, outcome) (rate(flowchat_inbox_ingested_total[{RI}]))",
                "{{kind}} {{outcome}}",
            ),
            unit="ops",
            description="Inbound, outbound, statuses and hand-offs copied from the queues.",
            width=8,
        ),
        panel(
            "Agents' actions (last hour)",
            (
                "sum by (action, outcome) (increase(flowchat_inbox_actions_total[1h]))",
                "{{action}} {{outcome}}",
            ),
            kind="bargauge",
            width=8,
        ),
        panel(
            "Live-update streams open",
            ("sum(flowchat_inbox_live_streams)", "streams"),
            width=8,
        ),
    ]


#: The broker's own per-queue series (rabbitmq_prometheus, /metrics/detailed with the
#: queue_coarse_metrics and queue_consumer_count families): they outlive every consumer.
FLOWCHAT_QUEUES = (
    r"whatsapp\\..*|conversation\\..*|state-manager\\..*|flowchat\\..*|relay\\..*|inbox\\..*"
)
BQ = f'queue=~"{FLOWCHAT_QUEUES}"'


def rabbitmq() -> dict[str, Any]:
    return dashboard(
        "flowchat-rabbitmq",
        "FlowChat / RabbitMQ",
        [
            panel(
                "Ready messages by queue (broker)",
                (f"sum by (queue) (rabbitmq_detailed_queue_messages_ready{{{BQ}}})", "{{queue}}"),
                description="From the broker itself: still there when every consumer is gone.",
            ),
            panel(
                "Unacknowledged messages by queue",
                (
                    f"sum by (queue) (rabbitmq_detailed_queue_messages_unacked{{{BQ}}})",
                    "{{queue}}",
                ),
                description="Delivered to a consumer and not yet acked (in-flight work).",
            ),
            panel(
                "Consumers by queue (broker)",
                (f"sum by (queue) (rabbitmq_detailed_queue_consumers{{{BQ}}})", "{{queue}}"),
                description="0 on a work queue pages: FlowchatQueueWithoutConsumers.",
            ),
            panel(
                "Backlog growth / s by queue",
                (
                    f"sum by (queue) (deriv(rabbitmq_detailed_queue_messages{{{BQ}}}[5m]))",
                    "{{queue}}",
                ),
                unit="ops",
                description="Above 0 for long: producers outpace consumers (FlowchatQueueLag).",
            ),
            panel(
                "Estimated wait in queue (ready / consumed per second)",
                (
                    "sum by (queue) (rabbitmq_detailed_queue_messages_ready"
                    f'{{queue=~"{WORK_QUEUES}"}})'
                    " / sum by (queue) "
                    f'(rate(flowchat_amqp_consumed_total{{queue=~"{WORK_QUEUES}"}}[5m]))',
                    "{{queue}}",
                ),
                unit="s",
                description=(
                    "How long a message arriving now waits: ready messages over the rate they "
                    "are consumed. RabbitMQ reports a head-message timestamp for classic "
                    "queues only; FlowChat's work queues are quorum queues, so message age "
                    "is estimated. No consumption at all: +Inf."
                ),
            ),
            panel(
                "Consumers seen by the broker vs by the services",
                (
                    f'sum by (queue) (rabbitmq_detailed_queue_consumers{{queue=~"{WORK_QUEUES}"}})',
                    "broker {{queue}}",
                ),
                (
                    f'max by (queue) (flowchat_amqp_queue_consumers{{queue=~"{WORK_QUEUES}"}})',
                    "services {{queue}}",
                ),
                description="The services' line vanishes with the services; the broker's stays.",
            ),
        ],
        [],
    )


def tenant_and_number() -> dict[str, Any]:
    sends = f"flowchat_sender_sends_total{{{TN},{AC}}}"
    return dashboard(
        "flowchat-tenant-number",
        "FlowChat / Tenant and number",
        [
            panel(
                "Sends / s by account and outcome",
                (f"sum by (account, outcome) (rate({sends}[{RI}]))", "{{account}} {{outcome}}"),
                unit="ops",
            ),
            panel(
                "Sends / s by message type",
                (f"sum by (type) (rate({sends}[{RI}]))", "{{type}}"),
                unit="ops",
            ),
            panel(
                "Errors in the last hour by account and code",
                (
                    zero_if_none(
                        "sum by (account, code) (increase(flowchat_sender_sends_total"
                        f'{{{TN},{AC},outcome!~"accepted|duplicate"}}[1h]))',
                        "account",
                        f"increase({sends}[1h])",
                    ),
                    "{{account}} {{code}}",
                ),
                kind="table",
            ),
            panel(
                "Quality (3 green, 2 yellow, 1 red)",
                (
                    f"max by (account) (flowchat_tenant_number_quality{{{TN},{AC}}})",
                    "{{account}}",
                ),
                kind="stat",
            ),
            panel(
                "Access token works (1) at the last health check",
                (
                    f"min by (account) (flowchat_tenant_number_token_valid{{{TN},{AC}}})",
                    "{{account}}",
                ),
                kind="stat",
            ),
            panel(
                "Circuit breaker (0 closed, 1 half-open, 2 open)",
                (
                    zero_if_none(
                        f"max by (account) (flowchat_sender_breaker_state{{{AC}}})",
                        "account",
                        f"{sends}",
                    ),
                    "{{account}}",
                ),
                description="A breaker reports once it changes state; others read 0 (closed).",
            ),
            panel(
                "Limiter waits / s by account",
                (
                    "sum by (account, limit, where) (rate(flowchat_sender_limiter_waits_total"
                    f"{{{TN},{AC}}}[{RI}]))",
                    "{{account}} {{limit}} {{where}}",
                ),
                unit="ops",
                description="Throttling per number: inline sleeps, retry tiers, bulk pacing.",
            ),
            panel(
                "Send API 429s / s by tenant",
                (
                    zero_if_none(
                        "sum by (tenant) "
                        f"(rate(flowchat_gateway_rate_limited_total{{{TN}}}[{RI}]))",
                        "tenant",
                        sends,
                    ),
                    "{{tenant}}",
                ),
                unit="reqps",
                description="The gateway's per-key limit refusing a tenant's API calls.",
            ),
        ],
        TENANT_VARS,
    )


def sender_internals() -> dict[str, Any]:
    return dashboard(
        "flowchat-sender",
        "FlowChat / Sender internals",
        [
            panel(
                "Provider call latency",
                *[
                    (
                        f"histogram_quantile({q}, sum by (provider, le) "
                        f"(rate(flowchat_sender_send_duration_seconds_bucket[{RI}])))",
                        f"p{int(q * 100)} {{{{provider}}}}",
                    )
                    for q in (0.5, 0.95, 0.99)
                ],
                unit="s",
            ),
            panel(
                "Limiter waits / s",
                (
                    f"sum by (limit, where) (rate(flowchat_sender_limiter_waits_total[{RI}]))",
                    "{{limit}} {{where}}",
                ),
                unit="ops",
            ),
            panel(
                "Limiter in-process wait p95",
                (
                    "histogram_quantile(0.95, sum by (le) "
                    f"(rate(flowchat_sender_limiter_wait_seconds_bucket[{RI}])))",
                    "p95",
                ),
                unit="s",
            ),
            panel(
                "Outbound and retry-tier depth",
                (
                    "max by (queue) (flowchat_amqp_queue_messages"
                    '{queue=~"whatsapp\\\\.outbound.*"})',
                    "{{queue}}",
                ),
            ),
            panel(
                "Retries / s by tier",
                (
                    zero_if_none(
                        f"sum by (tier) (rate(flowchat_sender_retries_total[{RI}]))",
                        "tier",
                        f"rate(flowchat_sender_sends_total[{RI}])",
                    ),
                    "{{tier}}",
                ),
                unit="ops",
            ),
            panel(
                "Parked in the DLQ (last hour) by reason",
                (
                    zero_if_none(
                        "sum by (reason) (increase(flowchat_sender_dlq_total[1h]))",
                        "reason",
                        "increase(flowchat_sender_sends_total[1h])",
                    ),
                    "{{reason}}",
                ),
            ),
            panel(
                "Open or half-open breakers",
                (
                    "count(max by (account) (flowchat_sender_breaker_state) > 0) or vector(0)",
                    "breakers not closed",
                ),
                kind="stat",
            ),
            panel(
                "whatsapp.outbound fates / s",
                (
                    "sum by (fate) (rate(flowchat_amqp_consumed_total"
                    f'{{queue="whatsapp.outbound"}}[{RI}]))',
                    "{{fate}}",
                ),
                unit="ops",
            ),
        ],
        [],
    )


def campaigns() -> dict[str, Any]:
    camp = f"flowchat_sender_campaign_sends_total{{{TN}}}"
    return dashboard(
        "flowchat-campaigns",
        "FlowChat / Campaigns",
        [
            panel(
                "Campaign sends / s by tenant and outcome",
                (f"sum by (tenant, outcome) (rate({camp}[{RI}]))", "{{tenant}} {{outcome}}"),
                unit="ops",
            ),
            panel(
                "Campaign sends in the last hour by category",
                (f"sum by (category) (increase({camp}[1h]))", "{{category}}"),
                kind="bargauge",
            ),
            panel(
                "Campaign send success ratio",
                (
                    zero_if_none(
                        "sum by (tenant) (rate(flowchat_sender_campaign_sends_total"
                        f'{{{TN},outcome="accepted"}}[{RI}]))',
                        "tenant",
                        f"rate({camp}[{RI}])",
                    )
                    + f" / sum by (tenant) (rate({camp}[{RI}]))",
                    "{{tenant}}",
                ),
                unit="percentunit",
            ),
            panel(
                "Sends / s by tenant and message type (campaigns send templates)",
                (
                    f"sum by (tenant, type) (rate(flowchat_sender_sends_total{{{TN}}}[{RI}]))",
                    "{{tenant}} {{type}}",
                ),
                unit="ops",
            ),
            panel(
                "Delivery funnel (statuses applied / s)",
                (
                    "sum by (status) (rate(flowchat_state_manager_statuses_total"
                    f'{{outcome="applied"}}[{RI}]))',
                    "{{status}}",
                ),
                unit="ops",
                description="All messages; one campaign: state-manager GET /v1/stats?campaign_id=",
            ),
            panel(
                "Orders by outcome (last hour)",
                (
                    "sum by (outcome) (increase(flowchat_conversation_orders_total[1h]))",
                    "{{outcome}}",
                ),
                kind="bargauge",
            ),
        ],
        [variable("tenant", "label_values(flowchat_sender_campaign_sends_total, tenant)")],
    )


DASHBOARDS = {
    "overview.json": overview,
    "tenant-number.json": tenant_and_number,
    "sender.json": sender_internals,
    "campaigns.json": campaigns,
    "rabbitmq.json": rabbitmq,
}


def render() -> dict[str, str]:
    return {
        name: json.dumps(build(), indent=2, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
