"""The admin and operator pages' pure parts: the campaign funnel's bars and the health
page's reading of the services' /metrics."""

from __future__ import annotations

from flowchat_console.pages.campaigns import funnel
from flowchat_console.pages.operator import read_health


def test_funnel_bars_scale_to_the_targeted_and_split_failures_by_code() -> None:
    metrics = {
        "targeted": 200,
        "queued": 150,
        "sent": 120,
        "delivered": 100,
        "read": 50,
        "replied": 5,
        "failed": 7,
        "failed_by_code": {"131026": 4, "131049": 3},
    }
    chart = funnel(metrics)
    rows = {r["label"]: (r["count"], r["pct"], r["kind"]) for r in chart["rows"]}
    assert rows["queued"] == (150, 75.0, "queued")
    assert rows["replied"] == (5, 2.5, "replied")
    assert rows["failed 131026"] == (4, 2.0, "failed")
    assert rows["failed 131049"] == (3, 1.5, "failed")
    assert "failed" not in rows
    assert chart["height"] == 28 * 7


def test_funnel_of_a_new_campaign_is_empty_with_one_failed_bar() -> None:
    chart = funnel({"targeted": 0, "queued": 0, "failed": 0, "failed_by_code": {}})
    assert [(r["label"], r["count"], r["pct"]) for r in chart["rows"]][-1] == ("failed", 0, 0.0)
    assert all(r["pct"] == 0 for r in chart["rows"])
    # failures without a code still show
    assert funnel({"targeted": 2, "failed": 2})["rows"][-1]["label"] == "failed unknown"


METRICS = """\
# HELP flowchat_amqp_queue_messages Messages ready
# TYPE flowchat_amqp_queue_messages gauge
flowchat_amqp_queue_messages{service="sender",queue="whatsapp.outbound"} 12.0
flowchat_amqp_queue_messages{service="sender",queue="whatsapp.outbound.dlq"} 2.0
# HELP flowchat_amqp_queue_consumers Consumers
# TYPE flowchat_amqp_queue_consumers gauge
flowchat_amqp_queue_consumers{service="sender",queue="whatsapp.outbound"} 3.0
# HELP flowchat_sender_breaker_state Breaker
# TYPE flowchat_sender_breaker_state gauge
flowchat_sender_breaker_state{account="acc_open"} 2.0
flowchat_sender_breaker_state{account="acc_half"} 1.0
# HELP flowchat_sender_limiter_waits_total Waits
# TYPE flowchat_sender_limiter_waits_total counter
flowchat_sender_limiter_waits_total{tenant="t",account="a",limit="number",where="inline"} 4.0
flowchat_sender_limiter_waits_total{tenant="t",account="b",limit="number",where="tier"} 1.0
flowchat_sender_limiter_waits_total{tenant="t",account="a",limit="pair",where="inline"} 2.0
"""


def test_health_reads_queues_open_breakers_and_limiter_waits() -> None:
    health = read_health({"sender": METRICS, "relay": None})
    assert health["queues"] == [
        {"queue": "whatsapp.outbound", "messages": 12, "consumers": 3},
        {"queue": "whatsapp.outbound.dlq", "messages": 2},
    ]
    assert health["breakers"] == [{"account": "acc_open", "service": "sender"}]
    assert health["waits"] == [("number", 5.0), ("pair", 2.0)]
    assert health["services"] == [
        {"name": "sender", "up": True},
        {"name": "relay", "up": False},
    ]
