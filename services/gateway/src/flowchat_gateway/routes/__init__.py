"""HTTP edges of the gateway: provider webhooks and the tenants' send API."""
