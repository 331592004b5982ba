"""Prometheus metrics of the console (HTTP request metrics come from the platform's
middleware). Labels are bounded: service names, outcomes; never a user or tenant."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

UPSTREAM_SECONDS = Histogram(
    "flowchat_console_upstream_seconds",
    "Calls to other services' APIs, by service and outcome (ok, error, unavailable)",
    ["service", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10),
)
SIGN_INS = Counter(
    "flowchat_console_sign_ins_total",
    "Sign-in attempts by outcome (ok, refused, locked, error)",
    ["outcome"],
)
CSRF_REJECTED = Counter(
    "flowchat_console_csrf_rejected_total",
    "State-changing requests refused for a missing or wrong CSRF token",
)
LIVE_STREAMS = Gauge(
    "flowchat_console_live_streams",
    "Open server-sent-event streams to browsers",
)
