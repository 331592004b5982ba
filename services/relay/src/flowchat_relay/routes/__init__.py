"""HTTP routes of the relay (the endpoints API)."""

from fastapi import APIRouter

from flowchat_relay.routes.customers import router as customers_router
from flowchat_relay.routes.endpoints import router as endpoints_router
from flowchat_relay.routes.retention import router as retention_router

router = APIRouter()
router.include_router(endpoints_router)
router.include_router(retention_router)
router.include_router(customers_router)

__all__ = ["router"]
