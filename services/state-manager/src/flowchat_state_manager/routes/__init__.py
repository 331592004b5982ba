"""HTTP routes of the state-manager (the query API, the tenant's retention)."""

from fastapi import APIRouter

from flowchat_state_manager.routes.messages import router as messages_router
from flowchat_state_manager.routes.retention import router as retention_router

router = APIRouter()
router.include_router(messages_router)
router.include_router(retention_router)

__all__ = ["router"]
