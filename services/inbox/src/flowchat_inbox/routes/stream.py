"""Live updates: ``GET /v1/stream``, server-sent events of the caller's tenant (new
messages, status changes, conversations opened, claimed, assigned, resolved).

The caller is checked again every ``reauth_s`` while the stream is open: a deleted
user, an ended session or a revoked key gets ``event: revoked`` and the stream ends
(a tenant service that cannot answer just now leaves it open)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from flowchat_inbox.deps import Caller, RuntimeDep
from flowchat_inbox.live import OVERFLOW
from flowchat_platform.http import ApiError

REVOKED = b'event: revoked\ndata: {"type":"revoked"}\n\n'

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
    headers = request.headers

    async def still_allowed() -> bool:
        try:
            again = await runtime.authoriser.principal(
                headers.get("authorization"),
                tenant_header=headers.get("x-tenant-id"),
                agent_header=headers.get("x-agent-id"),
            )
        except ApiError as exc:
            return exc.status >= 500  # unverifiable now: keep; refused: end
        return again.tenant_id == tenant_id

    async def events() -> AsyncIterator[bytes]:
        async with runtime.live.subscribe(tenant_id) as queue:
            yield b": connected\n\n"
            checked = time.monotonic()
            wait_s = min(runtime.keepalive_s, runtime.reauth_s)
            while not await request.is_disconnected():
                if time.monotonic() - checked >= runtime.reauth_s:
                    if not await still_allowed():
                        yield REVOKED
                        return
                    checked = time.monotonic()
                try:
                    event = await asyncio.wait_for(queue.get(), wait_s)
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
