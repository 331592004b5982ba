"""Live updates: ``GET /v1/stream``, server-sent events of the caller's tenant (new
messages, status changes, conversations opened, claimed, assigned, resolved)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from flowchat_inbox.deps import Caller, RuntimeDep
from flowchat_inbox.live import OVERFLOW

router = APIRouter(prefix="/v1", tags=["live"])


@router.get(
    "/stream",
    summary="Server-sent events of the tenant",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "example": ": connected\n\nevent: conversation.opened\n"
                    'data: {"type": "conversation.opened", "conversation_id": 7}\n\n'
                }
            }
        }
    },
)
async def stream(request: Request, caller: Caller, runtime: RuntimeDep) -> StreamingResponse:
    tenant_id = caller.tenant_id

    async def events() -> AsyncIterator[bytes]:
        async with runtime.live.subscribe(tenant_id) as queue:
            yield b": connected\n\n"
            while not await request.is_disconnected():
                try:
                    event = await asyncio.wait_for(queue.get(), runtime.keepalive_s)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield (
                    b"event: "
                    + str(event["type"]).encode()
                    + b"\ndata: "
                    + orjson.dumps(event)
                    + b"\n\n"
                )
                if event is OVERFLOW:
                    return

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
