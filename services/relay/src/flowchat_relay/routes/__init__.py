"""HTTP routes of the relay (the endpoints API)."""

from flowchat_relay.routes.endpoints import router

__all__ = ["router"]
