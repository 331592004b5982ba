"""Where a page's server time goes, in its ``Server-Timing`` header (a pure ASGI
middleware): the whole answer (``total``), the upstream calls (``upstream``: their summed
time, and how many; calls made concurrently overlap, so the sum may exceed the wall time
they took) and the template rendering (``render``). Browsers' developer tools show it;
``bench/console.py`` records it beside each page's time.

    Server-Timing: total;dur=41.2, upstream;dur=55.0;desc="3 calls", render;dur=6.1
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowchat_console.upstream import CALLS


@dataclass
class _Render:
    seconds: float = 0.0


RENDER: ContextVar[_Render | None] = ContextVar("console_render", default=None)


@dataclass
class Rendering:
    """``with Rendering():`` around a template's rendering adds its time to the request's."""

    started: float = field(default=0.0)

    def __enter__(self) -> Rendering:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        spent = RENDER.get()
        if spent is not None:
            spent.seconds += time.perf_counter() - self.started


def header(total_s: float, calls: list[tuple[str, float]], render_s: float) -> bytes:
    upstream_ms = 1000 * sum(s for _, s in calls)
    return (
        f"total;dur={1000 * total_s:.1f}, "
        f'upstream;dur={upstream_ms:.1f};desc="{len(calls)} calls", '
        f"render;dur={1000 * render_s:.1f}"
    ).encode()


class ServerTiming:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        calls: list[tuple[str, float]] = []
        rendering = _Render()
        calls_token, render_token = CALLS.set(calls), RENDER.set(rendering)

        async def send_timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                value = header(time.perf_counter() - started, calls, rendering.seconds)
                message["headers"] = [*message.get("headers", []), (b"server-timing", value)]
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        finally:
            CALLS.reset(calls_token)
            RENDER.reset(render_token)
