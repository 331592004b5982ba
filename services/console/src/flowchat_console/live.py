"""Live updates for browsers: the console's own server-sent-event stream, fed by a
service's stream (the inbox's ``GET /v1/stream``) opened as the signed-in user.

The browser's ``EventSource`` connects to the console (same origin, the session cookie);
the console opens the service's stream with the user's access token and forwards each
event as ``data: {type, conversation_id, thread_id, status}`` (what changed, never
message text). When the service ends the stream (``revoked``: the access token expired,
or the session ended) the console resolves the session again: a refreshed token reopens
the upstream stream; a dead session sends ``event: signin`` and ends. An upstream that
cannot be reached is retried; the browser sees keep-alive comments meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from flowchat_console import metrics
from flowchat_console.auth import Sessions
from flowchat_console.errors import SignInRequired, UpstreamError
from flowchat_console.upstream import ServiceClients, Upstream

FORWARDED = ("type", "conversation_id", "thread_id", "status", "assignee", "direction")
SIGN_IN = b'event: signin\ndata: {"type":"signin"}\n\n'


async def sse_events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event name, data) of a server-sent-event stream, comments skipped."""
    name: str = "message"
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data:
                try:
                    payload = orjson.loads("\n".join(data))
                except orjson.JSONDecodeError:
                    payload = {}
                yield name, payload if isinstance(payload, dict) else {}
            name, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def browser_event(payload: dict[str, Any]) -> bytes:
    slim = {k: payload[k] for k in FORWARDED if k in payload}
    return b"data: " + orjson.dumps(slim) + b"\n\n"


async def relay(
    *,
    sessions: Sessions,
    clients: ServiceClients,
    session_token: str | None,
    service: str,
    path: str,
    keepalive_s: float,
    gone: Callable[[], Any],
) -> AsyncIterator[bytes]:
    """The browser's stream (see the module's doc). ``gone``: awaitable, true once the
    browser has disconnected."""
    metrics.LIVE_STREAMS.inc()
    try:
        yield b"retry: 3000\n: connected\n\n"
        while not await gone():
            try:
                signed = await sessions.resolve(session_token)
            except SignInRequired:
                yield SIGN_IN
                return
            except UpstreamError:
                yield b": tenant service unavailable\n\n"
                await asyncio.sleep(2)
                continue
            up = Upstream(clients, signed.access_token)
            try:
                async with up.stream(service, path, read_timeout_s=keepalive_s * 3) as response:
                    yield b'data: {"type":"connected"}\n\n'
                    async for name, payload in sse_events(response.aiter_lines()):
                        if name in ("revoked", "overflow"):
                            break
                        yield browser_event({"type": name, **payload})
                    else:
                        await asyncio.sleep(0.5)
            except UpstreamError as exc:
                if exc.status in (401, 403):
                    if session_token:
                        sessions.forget(session_token)
                else:
                    yield b": upstream unavailable\n\n"
                await asyncio.sleep(1)
                continue
            # the service ended the stream (revoked: the token expired or was ended)
            if session_token:
                sessions.forget(session_token)
            await asyncio.sleep(0.2)
    finally:
        metrics.LIVE_STREAMS.dec()
