"""FlowChat inbox: every conversation's history, hand-offs, and agents' replies and notes."""

SERVICE = "inbox"
SCHEMA = "inbox"

__all__ = ["SCHEMA", "SERVICE"]
