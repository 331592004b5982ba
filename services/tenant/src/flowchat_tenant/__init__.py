"""FlowChat tenant service: tenants, business accounts, encrypted credentials, API keys."""

SERVICE = "tenant"

__all__ = ["SERVICE"]
