"""FlowChat gateway: the public edge (Meta and Twilio webhooks in, the tenants' send API)."""

SERVICE = "gateway"

__all__ = ["SERVICE"]
