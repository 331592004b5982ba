"""Prometheus metrics of the conversation service (labels bounded: no tenant ids)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

INBOUND = Counter(
    "flowchat_conversation_inbound_total",
    "Inbound customer messages, by outcome (handled, duplicate, replayed, handoff)",
    ["outcome"],
)
INBOUND_LIMITED = Counter(
    "flowchat_conversation_inbound_limited_total",
    "Customer messages past the tenant's per-customer inbound limit, by what the bot did "
    "(noticed: said once it will reply shortly; dropped: not processed by the bot)",
    ["action"],
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
ORDER_STATUS = Counter(
    "flowchat_conversation_order_status_total",
    "Order status changes through the tenant API, by new status and notification fate",
    ["status", "notification"],
)
PAYMENT_WEBHOOKS = Counter(
    "flowchat_conversation_payment_webhooks_total",
    "Payment-provider webhook events that recorded a payment, by result (added, duplicate)",
    ["result"],
)
FLOW_ANSWERS = Counter(
    "flowchat_conversation_flow_answers_total",
    "WhatsApp Flow answers (nfm_reply), by fate (stored on an order, no open order)",
    ["fate"],
)
DRAFTS = Counter(
    "flowchat_conversation_draft_orders_total",
    "Draft orders mirrored from carts, by change (synced, dropped)",
    ["change"],
)
PAYMENTS = Counter(
    "flowchat_conversation_payments_total",
    "Payments recorded, by effect (paid, partial)",
    ["effect"],
)
HANDOFFS = Counter(
    "flowchat_conversation_handoffs_total",
    "Operator hand-offs, by event (started, released, taken_over)",
    ["event"],
)
HANDLED_PURGED = Counter(
    "flowchat_conversation_handled_purged_total", "Dedupe rows of old inbound messages deleted"
)
CAMPAIGN_MESSAGES = Counter(
    "flowchat_conversation_campaign_messages_total",
    "Campaign recipients handled by the runner, by outcome (queued, excluded)",
    ["outcome"],
)
CAMPAIGN_EVENTS = Counter(
    "flowchat_conversation_campaign_events_total",
    "Events consumed from flowchat.events, by kind and outcome",
    ["kind", "outcome"],
)
REMINDERS = Counter(
    "flowchat_conversation_reminders_total",
    "Reminders scheduled by the bot, fired or skipped, by kind and outcome "
    "(scheduled, session, template, skipped)",
    ["kind", "outcome"],
)
CONTACT_ROWS = Counter(
    "flowchat_conversation_contact_rows_total", "Contact CSV rows, by outcome", ["outcome"]
)
FACTS = Counter(
    "flowchat_conversation_relay_facts_total",
    "Order and campaign facts for the relay, by subject and outcome (published, unsubscribed)",
    ["subject", "outcome"],
)
SEALED = Counter(
    "flowchat_conversation_sealed_total",
    "Customer identities encrypted at rest by the background pass: customers and inbound "
    "dedupe rows stored in clear before, sealed (failed: a customer left in clear, tried "
    "again at the next start); tokens re-encrypted under the newest key (rotated)",
    ["action"],
)
