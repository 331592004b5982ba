"""HTTP routes of the state-manager (the query API)."""

from flowchat_state_manager.routes.messages import router

__all__ = ["router"]
