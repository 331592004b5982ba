"""Prometheus metrics of the conversation service (labels bounded: no tenant ids)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

INBOUND = Counter(
    "flowchat_conversation_inbound_total",
    "Inbound customer messages, by outcome (handled, duplicate, replayed, handoff)",
    ["outcome"],
)
REPLIES = Counter(
    "flowchat_conversation_replies_total", "Replies published, by content type", ["type"]
)
TRANSITIONS = Counter(
    "flowchat_conversation_transitions_total",
    "Bot state transitions",
    ["from_state", "to_state"],
)
ORDERS = Counter(
    "flowchat_conversation_orders_total", "Orders placed by the bot, by outcome", ["outcome"]
)
HANDLE_SECONDS = Histogram(
    "flowchat_conversation_handle_seconds",
    "Time to handle one inbound message (lock, state machine, publish, commit)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
IMPORT_ROWS = Counter(
    "flowchat_conversation_import_rows_total", "Catalog CSV rows, by outcome", ["outcome"]
)
