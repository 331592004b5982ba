"""FlowChat relay: tenants' events, signed and delivered to their own endpoints."""

SERVICE = "relay"
SCHEMA = "relay"

__all__ = ["SCHEMA", "SERVICE"]
