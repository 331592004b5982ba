"""The inbox: the agent's main screen.

``/inbox?view=waiting&c=<conversation>``: the lists (waiting, mine, unassigned, all
open, resolved) with each customer's waiting time beside the selected conversation's
thread (its whole history, newest at the bottom: media, interactive choices, status
ticks, internal notes), the reply box (free text inside the 24 h window; outside it a
template with its parameter fields) and the actions (claim, assign, note, tag, resolve).
Each action is a form: with htmx it swaps the thread panel in place; without JavaScript
it posts and redirects back. ``/inbox/events`` streams live updates (:mod:`..live`):
the list and the open thread reload when something changes.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from flowchat_console import live, service
from flowchat_console.auth import SESSION_COOKIE, ConsoleUser
from flowchat_console.deps import CurrentUser, Runtime, RuntimeDep, UpstreamDep, require
from flowchat_console.errors import UpstreamError
from flowchat_console.nav import can
from flowchat_console.render import is_htmx, render
from flowchat_console.upstream import Upstream

router = APIRouter()

LIST_LIMIT = 30
THREAD_LIMIT = 50
THREAD_CACHE_S = 30.0
THREAD_CACHE_SIZE = 20_000

ViewQuery = Annotated[str | None, Query(max_length=20)]
ConversationQuery = Annotated[int | None, Query(alias="c", ge=1)]


async def thread_of(
    runtime: Runtime, up: Upstream, user: ConsoleUser, thread_id: int, *, fresh: bool = False
) -> dict[str, Any]:
    """A thread (customer, window), cached briefly for the lists."""
    key = (user.tenant_id or "", thread_id)
    hit = runtime.threads.get(key)
    if not fresh and hit is not None and time.monotonic() - hit[0] < THREAD_CACHE_S:
        return dict(hit[1])
    body: dict[str, Any] = await up.get("inbox", f"/v1/threads/{thread_id}")
    if len(runtime.threads) >= THREAD_CACHE_SIZE:
        runtime.threads.clear()
    runtime.threads[key] = (time.monotonic(), body)
    return body


async def list_context(
    runtime: Runtime,
    up: Upstream,
    user: ConsoleUser,
    view: str,
    selected: int | None,
    cursor: str | None = None,
) -> dict[str, Any]:
    page, people = await asyncio.gather(
        up.get(
            "inbox",
            "/v1/conversations",
            {"view": view, "limit": LIST_LIMIT, "cursor": cursor},
        ),
        runtime.people.labels(up, user),
    )
    items = page.get("items", [])
    threads = await asyncio.gather(
        *(thread_of(runtime, up, user, int(c["thread_id"])) for c in items),
        return_exceptions=True,
    )
    now = datetime.now(UTC)
    rows = [
        service.conversation_row(
            c, t if isinstance(t, dict) else None, me=user.user_id, people=people, now=now
        )
        for c, t in zip(items, threads, strict=True)
    ]
    return {
        "view": view,
        "views": service.VIEWS,
        "rows": rows,
        "selected": selected,
        "next_cursor": page.get("next_cursor"),
    }


async def thread_context(
    runtime: Runtime, up: Upstream, user: ConsoleUser, conversation_id: int
) -> dict[str, Any]:
    conversation = await up.get("inbox", f"/v1/conversations/{conversation_id}")
    thread_id = int(conversation["thread_id"])
    thread, messages, people, agents = await asyncio.gather(
        thread_of(runtime, up, user, thread_id, fresh=True),
        up.get("inbox", f"/v1/threads/{thread_id}/messages", {"limit": THREAD_LIMIT}),
        runtime.people.labels(up, user),
        runtime.people.agents(up, user),
    )
    views = [service.message_view(m, people) for m in reversed(messages.get("items", []))]
    window = service.window_of(conversation)
    now = datetime.now(UTC)
    assignee = conversation.get("assignee")
    status = conversation.get("status")
    open_ = status != "resolved"
    mine = assignee == user.user_id
    manage = can(user, "inbox.manage")
    act = can(user, "inbox.act")
    return {
        "conversation": conversation,
        "thread": thread,
        "customer": service.Customer.of(thread),
        "messages": views,
        "older": messages.get("next_cursor"),
        "window": window,
        "window_left_s": window.seconds_left(now),
        "assignee_label": people.get(assignee, assignee) if assignee else None,
        "agents": agents,
        "may": {
            "claim": act and open_ and status == "waiting",
            "reply": act and open_ and mine,
            "note": act and open_,
            "assign": open_ and (manage or (act and mine)),
            "resolve": open_ and (manage or (act and mine)),
            "tag": act and open_,
        },
        "waiting_s": service.seconds_since(conversation.get("opened_at"), now),
        "idempotency_key": secrets.token_urlsafe(12),
    }


@router.get("/inbox", include_in_schema=False, dependencies=[require("inbox.read")])
async def inbox(
    request: Request,
    user: CurrentUser,
    up: UpstreamDep,
    runtime: RuntimeDep,
    view: ViewQuery = None,
    c: ConversationQuery = None,
) -> HTMLResponse:
    chosen = service.view_of(view)
    lists, stats = await asyncio.gather(
        list_context(runtime, up, user, chosen, c),
        up.get("inbox", "/v1/conversations/stats"),
    )
    panel = await thread_context(runtime, up, user, c) if c else None
    return render(
        request,
        "inbox/index.html",
        {**lists, "panel": panel, "stats": stats, "title": "Inbox"},
    )


@router.get("/inbox/list", include_in_schema=False, dependencies=[require("inbox.read")])
async def inbox_list(
    request: Request,
    user: CurrentUser,
    up: UpstreamDep,
    runtime: RuntimeDep,
    view: ViewQuery = None,
    c: ConversationQuery = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> HTMLResponse:
    ctx = await list_context(runtime, up, user, service.view_of(view), c, cursor)
    return render(request, "inbox/_list.html", ctx)


@router.get(
    "/inbox/conversations/{conversation_id}/panel",
    include_in_schema=False,
    dependencies=[require("inbox.read")],
)
async def panel(
    request: Request,
    conversation_id: int,
    user: CurrentUser,
    up: UpstreamDep,
    runtime: RuntimeDep,
    view: ViewQuery = None,
) -> HTMLResponse:
    ctx = await thread_context(runtime, up, user, conversation_id)
    return render(request, "inbox/_thread.html", {"panel": ctx, "view": service.view_of(view)})


async def _after_action(
    request: Request,
    runtime: Runtime,
    up: Upstream,
    user: ConsoleUser,
    conversation_id: int,
    view: str | None,
    notice: str,
) -> Response:
    chosen = service.view_of(view)
    if not is_htmx(request):
        return RedirectResponse(f"/inbox?view={chosen}&c={conversation_id}", status_code=303)
    ctx = await thread_context(runtime, up, user, conversation_id)
    return render(
        request,
        "inbox/_thread.html",
        {"panel": ctx, "view": chosen, "notice": notice},
        headers={"HX-Trigger": "inbox-changed"},
    )


ViewForm = Annotated[str | None, Form(max_length=20)]


@router.post(
    "/inbox/conversations/{conversation_id}/claim",
    include_in_schema=False,
    dependencies=[require("inbox.act")],
)
async def claim(
    request: Request,
    conversation_id: int,
    user: CurrentUser,
    up: UpstreamDep,
    runtime: RuntimeDep,
    view: ViewForm = None,
) -> Response:
    await up.post("inbox", f"/v1/conversations/{conversation_id}/claim")
    return await _after_action(request, runtime, up, user, conversation_id, view, "Claimed.")


@router.post(
    "/inbox/conversations/{conversation_id}/resolve",
    include_in_schema=False,
    dependencies=[require("inbox.act")],
)
async def resolve(
    request: Request,
    conversation_id: int,
    user: CurrentUser,
    up: UpstreamDep,
    runtime: RuntimeDep,
    view: ViewForm = None,
) -> Response:
    await up.post("inbox", f"/v1/conversations/{conversation_id}/resolve")
    return await _after_action(
        request, runtime, up, user, conversation_id, view, "Resolved: the bot answers again."
    )


@router.post(
    "/inbox/conversations/{conversation_id}/assign",
    include_in_schema=False,
    dependencies=[require("inbox.act")],
)
async def assign(
    request: Request,
    conversation_id: int,
    user: CurrentUser,
    up: UpstreamDep,
    runtime: RuntimeDep,
    agent_id: Annotated[str, Form(min_length=1, max_length=128)],
    view: ViewForm = None,
) -> Response:
    await up.post("inbox", f"/v1/conversations/{conversation_id}/assign", {"agent_id": agent_id})
    return await _after_action(request, runtime, up, user, conversation_id, view, "Assigned.")


@router.post(
    "/inbox/conversations/{conversation_id}/notes",
    include_in_schema=False,
    dependencies=[require("inbox.act")],
)
async def note(
    request: Request,
    conversation_id: int,
    user: CurrentUser,
    up: UpstreamDep,
    runtime: RuntimeDep,
    text: Annotated[str, Form(min_length=1, max_length=4096)],
    view: ViewForm = None,
) -> Response:
    await up.post("inbox", f"/v1/conversations/{conversation_id}/notes", {"text": text})
    return await _after_action(request, runtime, up, user, conversation_id, view, "Note added.")


@router.post(
    "/inbox/conversations/{conversation_id}/tags",
    include_in_schema=False,
    dependencies=[require("inbox.act")],
)
async def tags(
    request: Request,
    conversation_id: int,
    user: CurrentUser,
    up: UpstreamDep,
    runtime: RuntimeDep,
    add: Annotated[str, Form(max_length=400)] = "",
    remove: Annotated[str, Form(max_length=400)] = "",
    view: ViewForm = None,
) -> Response:
    body = {
        "add": [t.strip().lower() for t in add.replace(",", " ").split() if t.strip()],
        "remove": [t.strip().lower() for t in remove.replace(",", " ").split() if t.strip()],
    }
    await up.post("inbox", f"/v1/conversations/{conversation_id}/tags", body)
    return await _after_action(request, runtime, up, user, conversation_id, view, "Tags saved.")


@router.post(
    "/inbox/conversations/{conversation_id}/reply",
    include_in_schema=False,
    dependencies=[require("inbox.act")],
)
async def reply(
    request: Request,
    conversation_id: int,
    user: CurrentUser,
    up: UpstreamDep,
    runtime: RuntimeDep,
    idempotency_key: Annotated[str, Form(min_length=1, max_length=100)],
    mode: Annotated[str, Form(pattern="^(text|template)$")] = "text",
    body: Annotated[str, Form(max_length=4096)] = "",
    template_name: Annotated[str, Form(max_length=512)] = "",
    template_language: Annotated[str, Form(max_length=15)] = "en",
    view: ViewForm = None,
) -> Response:
    if mode == "template":
        form = await request.form()
        params = [
            str(form.get(f"param_{i}") or "") for i in range(1, service.MAX_TEMPLATE_PARAMS + 1)
        ]
        if not template_name.strip():
            raise UpstreamError("console", 422, "template_required", "choose a template")
        content = service.template_reply(template_name, template_language, params)
    else:
        if not body.strip():
            raise UpstreamError("console", 422, "empty_reply", "write a reply first")
        content = service.text_reply(body)
    await up.post(
        "inbox",
        f"/v1/conversations/{conversation_id}/messages",
        {"content": content, "idempotency_key": idempotency_key},
    )
    return await _after_action(request, runtime, up, user, conversation_id, view, "Sent.")


@router.post(
    "/inbox/threads/{thread_id}/takeover",
    include_in_schema=False,
    dependencies=[require("inbox.act")],
)
async def take_over(thread_id: int, up: UpstreamDep) -> Response:
    """Take a conversation over from the bot (from a search result or a thread)."""
    try:
        conversation = await up.post("inbox", f"/v1/threads/{thread_id}/takeover")
        cid = conversation["id"]
    except UpstreamError as exc:
        details = exc.details[0] if isinstance(exc.details, list) and exc.details else None
        if exc.status != 409 or not isinstance(details, dict):
            raise
        cid = details.get("conversation_id")
        if cid is None:
            raise
    return RedirectResponse(f"/inbox?view=mine&c={int(cid)}", status_code=303)


@router.get("/inbox/events", include_in_schema=False, dependencies=[require("inbox.read")])
async def events(request: Request, runtime: RuntimeDep) -> StreamingResponse:
    stream = live.relay(
        sessions=runtime.sessions,
        clients=runtime.clients,
        session_token=request.cookies.get(SESSION_COOKIE),
        service="inbox",
        path="/v1/stream",
        keepalive_s=runtime.settings.live_keepalive_s,
        gone=request.is_disconnected,
    )
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
