"""FlowChat conversation service: the commerce bot customers talk to on WhatsApp."""

SERVICE = "conversation"
