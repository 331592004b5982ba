"""The inbox: hand-offs as conversations; list, claim, assign, reply, note, resolve.
Rules live in :mod:`flowchat_inbox.inbox_service`; refusals are answered by the app's
one handler."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from flowchat_inbox.deps import Caller, InboxDep
from flowchat_inbox.ports import ConversationFilter
from flowchat_inbox.routes.schemas import (
    AssignIn,
    ConversationOut,
    ConversationPage,
    NoteIn,
    NoteOut,
    ReplyIn,
    ReplyOut,
    StatsOut,
    Tag,
    TagsIn,
)
from flowchat_platform.http import PageCursor, PageLimit

router = APIRouter(prefix="/v1", tags=["inbox"])

View = Literal["open", "waiting", "mine", "unassigned", "resolved"]


@router.get(
    "/conversations", response_model=ConversationPage, summary="Conversations, oldest first"
)
async def conversations(
    caller: Caller,
    inbox: InboxDep,
    view: View = "open",
    account_id: Annotated[str | None, Query(max_length=128, description="By number")] = None,
    tag: Annotated[Tag | None, Query(description="Only conversations with this tag")] = None,
    cursor: PageCursor = None,
    limit: PageLimit = 50,
) -> ConversationPage:
    flt = ConversationFilter(view=view, account_id=account_id, agent_id=caller.agent_id, tag=tag)
    page = await inbox.list(caller.tenant_id, flt, cursor=cursor, limit=limit)
    return ConversationPage(
        items=[ConversationOut.of(c) for c in page.items], next_cursor=page.next_cursor
    )


@router.get("/conversations/stats", response_model=StatsOut, summary="Customers waiting")
async def stats(caller: Caller, inbox: InboxDep) -> StatsOut:
    s = await inbox.stats(caller.tenant_id)
    return StatsOut(waiting=s.waiting, oldest_wait_s=s.oldest_wait_s)


@router.get("/conversations/{conversation_id}", response_model=ConversationOut)
async def conversation(conversation_id: int, caller: Caller, inbox: InboxDep) -> ConversationOut:
    c = await inbox.get(caller.tenant_id, conversation_id)
    thread = await inbox.history.thread(caller.tenant_id, c.thread_id)
    return ConversationOut.of(
        c, window_open=inbox.in_window(thread), closes_at=inbox.window_closes_at(thread)
    )


@router.post(
    "/conversations/{conversation_id}/tags",
    response_model=ConversationOut,
    summary="Add and remove tags",
)
async def tags(
    conversation_id: int, body: TagsIn, caller: Caller, inbox: InboxDep
) -> ConversationOut:
    caller.require_act()
    return ConversationOut.of(
        await inbox.tag(caller.tenant_id, conversation_id, add=body.add, remove=body.remove)
    )


@router.post(
    "/conversations/{conversation_id}/claim",
    response_model=ConversationOut,
    responses={409: {"description": "Held by another agent (the holder in details)"}},
)
async def claim(conversation_id: int, caller: Caller, inbox: InboxDep) -> ConversationOut:
    caller.require_act()
    return ConversationOut.of(await inbox.claim(caller.tenant_id, conversation_id, caller.agent_id))


@router.post(
    "/conversations/{conversation_id}/assign",
    response_model=ConversationOut,
    responses={409: {"description": "The conversation is resolved"}},
)
async def assign(
    conversation_id: int, body: AssignIn, caller: Caller, inbox: InboxDep
) -> ConversationOut:
    caller.require_act()
    return ConversationOut.of(
        await inbox.assign(
            caller.tenant_id,
            conversation_id,
            agent_id=caller.agent_id,
            to_agent=body.agent_id,
            can_manage=caller.can_manage,
        )
    )


@router.post(
    "/conversations/{conversation_id}/messages",
    response_model=ReplyOut,
    status_code=202,
    responses={
        409: {"description": "Resolved, or held by another agent (the holder in details)"},
        422: {"description": "Free text outside the 24 h window, or a bad body"},
    },
)
async def reply(conversation_id: int, body: ReplyIn, caller: Caller, inbox: InboxDep) -> ReplyOut:
    caller.require_act()
    updated, message_id = await inbox.reply(
        caller.tenant_id,
        conversation_id,
        agent_id=caller.agent_id,
        content=body.content,
        idempotency_key=body.idempotency_key,
    )
    return ReplyOut(message_id=message_id, conversation=ConversationOut.of(updated))


@router.post(
    "/conversations/{conversation_id}/notes",
    response_model=NoteOut,
    status_code=201,
    responses={413: {"description": "The body is too large"}},
)
async def note(conversation_id: int, body: NoteIn, caller: Caller, inbox: InboxDep) -> NoteOut:
    caller.require_act()
    thread_id = await inbox.note(
        caller.tenant_id, conversation_id, agent_id=caller.agent_id, body=body.text
    )
    return NoteOut(thread_id=thread_id)


@router.post(
    "/conversations/{conversation_id}/resolve",
    response_model=ConversationOut,
    responses={409: {"description": "Resolved already, or held by another agent"}},
)
async def resolve(conversation_id: int, caller: Caller, inbox: InboxDep) -> ConversationOut:
    caller.require_act()
    return ConversationOut.of(
        await inbox.resolve(
            caller.tenant_id,
            conversation_id,
            agent_id=caller.agent_id,
            can_manage=caller.can_manage,
        )
    )


@router.post(
    "/threads/{thread_id}/takeover",
    response_model=ConversationOut,
    status_code=201,
    responses={409: {"description": "The thread has an open conversation (its id in details)"}},
    summary="Take over a conversation the bot is handling",
)
async def take_over(thread_id: int, caller: Caller, inbox: InboxDep) -> ConversationOut:
    caller.require_act()
    return ConversationOut.of(
        await inbox.take_over(caller.tenant_id, thread_id, agent_id=caller.agent_id)
    )
