"""FlowChat conversation service: the commerce bot customers talk to on WhatsApp, and
the tenants' outreach (contacts, campaigns, reminders).

Two packages of one service (they share the ``contacts`` table, and the bot writes
reminders in the order's own transaction):

- :mod:`flowchat_conversation.commerce`: the bot, catalog, orders, invoices, payments;
- :mod:`flowchat_conversation.outreach`: contacts, opt-outs, campaigns, reminders.

Rule (``tests/test_architecture.py``): ``outreach`` never imports ``commerce``;
commerce uses outreach (the opt-out mirror, the reminders the bot schedules). The
top-level modules (app, settings, errors, metrics, deps, outbox, CLI, migrations) are
shared by both.
"""

SERVICE = "conversation"
