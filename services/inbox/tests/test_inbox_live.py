"""Live updates: a tenant's event stream carries its new messages, status changes and
conversation changes, and nothing of another tenant."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from inbox_testkit import Kit, running

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@contextlib.asynccontextmanager
async def stream(
    kit: Kit, tenant: str, base_url: str | None = None
) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    """The tenant's events as they arrive (a task reads the SSE stream)."""
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    connected = asyncio.Event()

    async def read() -> None:
        async with (
            httpx.AsyncClient(base_url=base_url or kit.base_url, timeout=None) as client,
            client.stream("GET", "/v1/stream", headers=kit.key(tenant, "read")) as r,
        ):
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            async for line in r.aiter_lines():
                if line.startswith(": connected"):
                    connected.set()
                if line.startswith("data: "):
                    events.put_nowait(orjson.loads(line[6:]))

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(connected.wait(), 10)
        yield events
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def next_of(events: asyncio.Queue[dict[str, Any]], kind: str) -> dict[str, Any]:
    while True:
        event = await asyncio.wait_for(events.get(), 10)
        if event["type"] == kind:
            return event


async def test_the_stream_carries_messages_and_assignments_of_the_tenant_only(kit: Kit) -> None:
    a, b = kit.new_tenant(), kit.new_tenant()
    wa = kit.phone()
    async with stream(kit, a) as mine, stream(kit, b) as theirs:
        await kit.publish(kit.inbound(a, wa_id=wa, text="live one"))
        event = await next_of(mine, "message")
        assert (event["direction"], event["author"]) == ("inbound", "customer")
        thread = await kit.thread_of(a)
        assert event["thread_id"] == thread["id"]
        cmd = kit.outbound(a, wa, text="bot says")
        await kit.publish(cmd)
        assert (await next_of(mine, "message"))["author"] == "api"
        await kit.publish(kit.status(a, cmd.message_id, "delivered"))
        status = await next_of(mine, "status")
        assert (status["message_id"], status["status"]) == (cmd.message_id, "delivered")
        await kit.publish(kit.handoff(a, wa_id=wa))
        opened = await next_of(mine, "conversation")
        assert (opened["status"], opened["assignee"]) == ("waiting", None)
        r = await kit.http.post(
            f"/v1/conversations/{opened['conversation_id']}/claim",
            headers={**kit.key(a), "X-Agent-ID": "ann"},
        )
        assert r.status_code == 200
        claimed = await next_of(mine, "conversation")
        assert (claimed["status"], claimed["assignee"]) == ("assigned", "ann")
        await asyncio.sleep(0.3)
        assert theirs.empty()


async def test_the_stream_needs_a_key(kit: Kit) -> None:
    r = await kit.http.get("/v1/stream")
    assert r.status_code == 401


async def test_streams_see_what_another_replica_did(kit: Kit) -> None:
    """Two inbox replicas (one database, one broker): each one's streams carry the
    claims and assignments made on the other and every message, whichever replica
    ingested it (live updates fan out through the broker)."""
    assert kit.settings is not None
    a = kit.new_tenant()
    wa = kit.phone()
    async with (
        running(kit.settings) as replica,
        stream(kit, a) as one,
        stream(kit, a, replica.base_url) as two,
    ):
        await kit.publish(kit.inbound(a, wa_id=wa, text="hello"))
        for events in (one, two):
            assert (await next_of(events, "message"))["direction"] == "inbound"
        await kit.publish(kit.handoff(a, wa_id=wa))
        opened = await next_of(one, "conversation")
        assert (await next_of(two, "conversation"))["conversation_id"] == opened["conversation_id"]
        cid = opened["conversation_id"]
        r = await replica.http.post(
            f"/v1/conversations/{cid}/claim", headers={**kit.key(a), "X-Agent-ID": "ann"}
        )
        assert r.status_code == 200
        claimed = await next_of(one, "conversation")  # made on the other replica
        assert (claimed["status"], claimed["assignee"]) == ("assigned", "ann")
        r = await kit.http.post(
            f"/v1/conversations/{cid}/assign",
            headers={**kit.key(a), "X-Agent-ID": "ann"},
            json={"agent_id": "bob"},
        )
        assert r.status_code == 200
        for events in (one, two):
            seen = await next_of(events, "conversation")
            while seen["assignee"] != "bob":
                seen = await next_of(events, "conversation")
        assert one.empty()  # each update once per stream
        assert two.empty()
