"""FlowChat state-manager: the record of every outbound message's fate."""

SERVICE = "state-manager"
SCHEMA = "state_manager"

__all__ = ["SCHEMA", "SERVICE"]
