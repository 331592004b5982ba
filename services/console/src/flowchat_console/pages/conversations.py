"""Conversations: search across the tenant's whole history (the inbox's full-text search),
recent threads, and one thread's history page by page, with "take over" for a thread
the bot is handling."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from flowchat_console import service
from flowchat_console.deps import CurrentUser, RuntimeDep, UpstreamDep, require
from flowchat_console.pages._kit import tenant_of
from flowchat_console.pages.inbox import customers_of, thread_of
from flowchat_console.render import render

router = APIRouter()

PAGE = 20
Cursor = Annotated[str | None, Query(max_length=500)]


@router.get("/conversations", include_in_schema=False, dependencies=[require("conversations.read")])
async def conversations(
    request: Request,
    user: CurrentUser,
    up: UpstreamDep,
    runtime: RuntimeDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Cursor = None,
) -> HTMLResponse:
    query = (q or "").strip()
    if query:
        page, people = await asyncio.gather(
            up.get("inbox", "/v1/search", {"q": query, "limit": PAGE, "cursor": cursor}),
            runtime.people.labels(up, user),
        )
        items = page.get("items", [])
        threads = await customers_of(runtime, up, user, [int(m["thread_id"]) for m in items])
        results = [
            {
                "message": service.message_view(m, people),
                "thread_id": int(m["thread_id"]),
                "customer": service.Customer.of(threads.get(int(m["thread_id"]))),
                "pieces": service.highlight(m.get("text"), query),
            }
            for m in items
        ]
        ctx: dict[str, Any] = {"results": results, "threads": None}
    else:
        page = await up.get("inbox", "/v1/threads", {"limit": PAGE, "cursor": cursor})
        ctx = {
            "results": None,
            "threads": [
                {"thread": t, "customer": service.Customer.of(t)} for t in page.get("items", [])
            ],
        }
    template = "conversations/_results.html" if request.headers.get("hx-request") else None
    return render(
        request,
        template or "conversations/index.html",
        {**ctx, "q": query, "next_cursor": page.get("next_cursor")},
    )


@router.get(
    "/conversations/threads/{thread_id}",
    include_in_schema=False,
    dependencies=[require("conversations.read")],
)
async def thread_page(
    request: Request,
    thread_id: int,
    user: CurrentUser,
    up: UpstreamDep,
    runtime: RuntimeDep,
    cursor: Cursor = None,
) -> HTMLResponse:
    thread, messages, people = await asyncio.gather(
        thread_of(runtime, up, user, thread_id, fresh=True),
        up.get("inbox", f"/v1/threads/{thread_id}/messages", {"limit": 50, "cursor": cursor}),
        runtime.people.labels(up, user),
    )
    sources = runtime.media_links.sources(
        tenant_of(request, user), str(thread.get("account_id") or "")
    )
    views = [service.message_view(m, people, sources) for m in reversed(messages.get("items", []))]
    return render(
        request,
        "conversations/thread.html",
        {
            "thread": thread,
            "customer": service.Customer.of(thread),
            "messages": views,
            "older": messages.get("next_cursor"),
            "window": service.window_of(thread),
        },
    )
