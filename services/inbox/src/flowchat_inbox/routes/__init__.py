"""HTTP routes of the inbox: history (:mod:`.threads`), the inbox (:mod:`.conversations`)
and live updates (:mod:`.stream`)."""

from flowchat_inbox.routes.conversations import router as conversations_router
from flowchat_inbox.routes.retention import router as retention_router
from flowchat_inbox.routes.stream import router as stream_router
from flowchat_inbox.routes.threads import router as threads_router

__all__ = ["conversations_router", "retention_router", "stream_router", "threads_router"]
