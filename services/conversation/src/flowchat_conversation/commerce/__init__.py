"""Commerce: the bot customers talk to (catalog, cart, orders, invoices, payments,
hand-off). May use :mod:`flowchat_conversation.outreach`; never the other way round."""
