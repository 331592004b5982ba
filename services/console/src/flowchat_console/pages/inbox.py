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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import FormData

from flowchat_console import live, service
from flowchat_console.auth import SESSION_COOKIE, ConsoleUser
from flowchat_console.deps import CurrentUser, Runtime, RuntimeDep, UpstreamDep, require
from flowchat_console.errors import UpstreamError
from flowchat_console.nav import can
from flowchat_console.pages import _kit
from flowchat_console.render import is_htmx, render
from flowchat_console.upstream import Upstream

router = APIRouter()

LIST_LIMIT = 30
THREAD_LIMIT = 50
THREAD_CACHE_S = 30.0
#: How long a thread's customer (name, number) shown beside a search result may be old.
CUSTOMER_CACHE_S = 600.0
#: How long a number's approved templates (the reply box's picker) are kept.
TEMPLATES_CACHE_S = 60.0
TEMPLATES_CACHE_SIZE = 5_000
THREAD_CACHE_SIZE = 20_000

ViewQuery = Annotated[str | None, Query(max_length=20)]
ConversationQuery = Annotated[int | None, Query(alias="c", ge=1)]


async def thread_of(
    runtime: Runtime,
    up: Upstream,
    user: ConsoleUser,
    thread_id: int,
    *,
    fresh: bool = False,
    max_age_s: float = THREAD_CACHE_S,
) -> dict[str, Any]:
    """A thread (customer, window), cached briefly for the lists (``max_age_s``)."""
    key = (user.tenant_id or "", thread_id)
    hit = runtime.threads.get(key)
    if not fresh and hit is not None and time.monotonic() - hit[0] < max_age_s:
        return dict(hit[1])
    body: dict[str, Any] = await up.get("inbox", f"/v1/threads/{thread_id}")
    if len(runtime.threads) >= THREAD_CACHE_SIZE:
        runtime.threads.clear()
    runtime.threads[key] = (time.monotonic(), body)
    return body


async def customers_of(
    runtime: Runtime, up: Upstream, user: ConsoleUser, thread_ids: list[int]
) -> dict[int, dict[str, Any]]:
    """Threads by id, each once, for the customer shown beside a row (cached
    ``CUSTOMER_CACHE_S``; those not cached in one call, ``/v1/threads?ids=``); a thread
    that cannot be read is left out (the row shows "Customer")."""
    key = user.tenant_id or ""
    now = time.monotonic()
    found: dict[int, dict[str, Any]] = {}
    missing: list[int] = []
    for thread_id in dict.fromkeys(thread_ids):
        hit = runtime.threads.get((key, thread_id))
        if hit is not None and now - hit[0] < CUSTOMER_CACHE_S:
            found[thread_id] = dict(hit[1])
        else:
            missing.append(thread_id)
    if not missing:
        return found
    try:
        page = await up.get(
            "inbox",
            "/v1/threads",
            {"ids": ",".join(map(str, missing)), "limit": len(missing)},
        )
    except UpstreamError as exc:
        if exc.status == 401:
            raise
        return found
    if len(runtime.threads) + len(missing) > THREAD_CACHE_SIZE:
        runtime.threads.clear()
    for body in page.get("items", []):
        thread_id = int(body["id"])
        runtime.threads[(key, thread_id)] = (now, body)
        found[thread_id] = dict(body)
    return found


async def templates_for(
    runtime: Runtime, up: Upstream, user: ConsoleUser, account_id: str
) -> list[service.TemplateChoice]:
    """The approved templates of the number (the template picker), cached a minute; none
    when the catalog cannot be read (the picker falls back to typing the name).

    The conversation service lists them for a tenant's owners and admins; an agent, who
    sends templates but may not read the tenant's set-up, gets them through the console's
    service token after the console's own check (``inbox.act``), read-only."""
    tenant = user.tenant_id or ""
    key = (tenant, account_id)
    hit = runtime.templates.get(key)
    if hit is not None and time.monotonic() - hit[0] < TEMPLATES_CACHE_S:
        return list(hit[1])
    if not can(user, "inbox.act"):
        return []
    client = (
        up if can(user, "campaigns.write") else _kit.service_with(runtime.clients, user, tenant)
    )
    try:
        page = await client.get(
            "conversation",
            f"/v1/tenants/{tenant}/accounts/{account_id}/templates",
            {"limit": 100},
        )
        choices = service.template_choices(_kit.items(page))
    except UpstreamError as exc:
        if exc.status == 401 and client is up:
            raise
        choices = []
    if len(runtime.templates) >= TEMPLATES_CACHE_SIZE:
        runtime.templates.clear()
    runtime.templates[key] = (time.monotonic(), choices)
    return choices


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
    threads = await customers_of(runtime, up, user, [int(c["thread_id"]) for c in items])
    now = datetime.now(UTC)
    rows = [
        service.conversation_row(
            c, threads.get(int(c["thread_id"])), me=user.user_id, people=people, now=now
        )
        for c in items
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
    # The people (authors, assignees) do not depend on the conversation: read alongside it.
    conversation, (people, agents) = await asyncio.gather(
        up.get("inbox", f"/v1/conversations/{conversation_id}"),
        runtime.people.labels_and_agents(up, user),
    )
    thread_id = int(conversation["thread_id"])
    may_reply = (
        can(user, "inbox.act")
        and conversation.get("status") != "resolved"
        and conversation.get("assignee") == user.user_id
    )
    account = str(conversation.get("account_id") or "")
    thread, messages, choices = await asyncio.gather(
        thread_of(runtime, up, user, thread_id, fresh=True),
        up.get("inbox", f"/v1/threads/{thread_id}/messages", {"limit": THREAD_LIMIT}),
        templates_for(runtime, up, user, account) if may_reply and account else _none_listed(),
    )
    sources = runtime.media_links.sources(user.tenant_id or "", account)
    views = [service.message_view(m, people, sources) for m in reversed(messages.get("items", []))]
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
        "templates": choices,
        "template": service.choose_template(choices, None),
        "idempotency_key": secrets.token_urlsafe(12),
    }


async def _nothing() -> None:
    return None


async def _none_listed() -> list[service.TemplateChoice]:
    return []


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
    lists, stats, panel = await asyncio.gather(
        list_context(runtime, up, user, chosen, c),
        up.get("inbox", "/v1/conversations/stats"),
        thread_context(runtime, up, user, c) if c else _nothing(),
    )
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


def _words(value: str) -> list[str]:
    return [t.strip().lower() for t in value.replace(",", " ").split() if t.strip()]


class _Form(BaseModel):
    model_config = ConfigDict(extra="ignore", str_max_length=4096)

    view: str | None = Field(default=None, max_length=20)

    def body(self) -> dict[str, Any] | None:
        """The inbox API's request body (None: none)."""
        return None


class _Assign(_Form):
    agent_id: str = Field(min_length=1, max_length=128)

    def body(self) -> dict[str, Any]:
        return {"agent_id": self.agent_id}


class _Note(_Form):
    text: str = Field(min_length=1, max_length=4096)

    def body(self) -> dict[str, Any]:
        return {"text": self.text}


class _Tags(_Form):
    add: str = Field(default="", max_length=400)
    remove: str = Field(default="", max_length=400)

    def body(self) -> dict[str, Any]:
        return {"add": _words(self.add), "remove": _words(self.remove)}


class _Reply(_Form):
    idempotency_key: str = Field(min_length=1, max_length=100)
    mode: Literal["text", "template"] = "text"
    body_: str = Field(default="", max_length=4096, alias="body")
    #: The picker's choice (``name|language``); else the typed name and language.
    template: str = Field(default="", max_length=600)
    template_name: str = Field(default="", max_length=512)
    template_language: str = Field(default="en", max_length=15)
    params: list[str] = Field(default_factory=list)
    #: A named template's placeholders, in the order of ``params``.
    param_names: list[str] = Field(default_factory=list)

    def body(self) -> dict[str, Any]:
        if self.mode == "template":
            name, _, language = self.template.partition("|")
            if not name.strip():
                name, language = self.template_name, self.template_language
            if not name.strip():
                raise UpstreamError("console", 422, "template_required", "choose a template")
            names = [n for n in self.param_names if n]
            content = service.template_reply(name, language, self.params, names or None)
        else:
            if not self.body_.strip():
                raise UpstreamError("console", 422, "empty_reply", "write a reply first")
            content = service.text_reply(self.body_)
        return {"content": content, "idempotency_key": self.idempotency_key}


@dataclass(frozen=True)
class Action:
    """One thread action: its form, the inbox API it posts to (under the conversation),
    and the notice shown after it."""

    form: type[_Form]
    api: str
    notice: str


#: The thread's actions (``POST /inbox/conversations/{id}/{action}``), table-driven.
ACTIONS: dict[str, Action] = {
    "claim": Action(_Form, "claim", "Claimed."),
    "resolve": Action(_Form, "resolve", "Resolved: the bot answers again."),
    "assign": Action(_Assign, "assign", "Assigned."),
    "notes": Action(_Note, "notes", "Note added."),
    "tags": Action(_Tags, "tags", "Tags saved."),
    "reply": Action(_Reply, "messages", "Sent."),
}
ActionName = Literal["claim", "resolve", "assign", "notes", "tags", "reply"]


def _fields(form: FormData) -> dict[str, Any]:
    fields: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    numbers = range(1, service.MAX_TEMPLATE_PARAMS + 1)
    fields["params"] = [str(form.get(f"param_{i}") or "") for i in numbers]
    fields["param_names"] = [str(form.get(f"param_name_{i}") or "") for i in numbers]
    return fields


@router.post(
    "/inbox/conversations/{conversation_id}/{action}",
    include_in_schema=False,
    dependencies=[require("inbox.act")],
)
async def act(
    request: Request,
    conversation_id: int,
    action: ActionName,
    user: CurrentUser,
    up: UpstreamDep,
    runtime: RuntimeDep,
) -> Response:
    """Claim, resolve, assign, note, tag or reply: the form checked, posted to the inbox
    as the user, the thread shown again."""
    spec = ACTIONS[action]
    try:
        form = spec.form.model_validate(_fields(await request.form()))
    except ValidationError as exc:
        fields = sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]})
        raise UpstreamError(
            "console", 422, "invalid_form", f"check the form's fields: {', '.join(fields)}"
        ) from None
    await up.post("inbox", f"/v1/conversations/{conversation_id}/{spec.api}", form.body())
    return await _after_action(request, runtime, up, user, conversation_id, form.view, spec.notice)


@router.get(
    "/inbox/accounts/{account_id}/template-fields",
    include_in_schema=False,
    dependencies=[require("inbox.act")],
)
async def template_fields(
    request: Request,
    account_id: str,
    user: CurrentUser,
    up: UpstreamDep,
    runtime: RuntimeDep,
    template: Annotated[str | None, Query(max_length=600)] = None,
) -> HTMLResponse:
    """The picked template's body and its parameters' fields (htmx swaps them in when the
    picker changes)."""
    choices = await templates_for(runtime, up, user, account_id)
    return render(
        request,
        "inbox/_template_fields.html",
        {"template": service.choose_template(choices, template)},
    )


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
