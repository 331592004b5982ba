"""The provider session never reuses a connection the server may be closing.

A server drops a keep-alive connection once it has been idle for its own timeout; a
request sent on it just then gets no answer, and the sender must park that send as
"outcome unknown". The stub below plays the worst case of that race: a request on a
connection idle past ``IDLE_LIMIT_S`` is read and never answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from flowchat_sender.app import provider_session

IDLE_LIMIT_S = 0.3
ANSWER = b'{"messages": [{"id": "wamid.1"}]}'


@asynccontextmanager
async def closing_server() -> AsyncIterator[str]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered_at: float | None = None
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                if answered_at is not None and time.monotonic() - answered_at > IDLE_LIMIT_S:
                    return  # idle too long: closed without an answer
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)
                )
                await writer.drain()
                answered_at = time.monotonic()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/messages"
    finally:
        server.close()
        await server.wait_closed()


async def two_posts_apart(session: aiohttp.ClientSession, url: str) -> list[int]:
    statuses = []
    for _ in range(2):
        async with session.post(url, data=b"{}") as response:
            await response.read()
            statuses.append(response.status)
        await asyncio.sleep(IDLE_LIMIT_S + 0.2)
    return statuses


async def test_an_idle_connection_past_the_keepalive_is_not_reused() -> None:
    async with closing_server() as url:
        session = provider_session(4, keepalive_s=IDLE_LIMIT_S / 3)
        try:
            assert await two_posts_apart(session, url) == [200, 200]
        finally:
            await session.close()


async def test_the_stub_does_catch_a_reused_connection() -> None:
    """Without the short keep-alive (aiohttp's 15 s), the second request is lost."""
    async with closing_server() as url:
        session = provider_session(4, keepalive_s=15)
        try:
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await two_posts_apart(session, url)
        finally:
            await session.close()
