"""History: threads, thread pages and search (newest first, by cursor). A thread of
another tenant answers 404 exactly like one that does not exist."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from flowchat_inbox.deps import Caller, HistoryDep, InboxDep
from flowchat_inbox.routes.schemas import MessageOut, MessagePage, ThreadOut, ThreadPage
from flowchat_platform.http import PageCursor, PageLimit

router = APIRouter(prefix="/v1", tags=["history"])

Limit = PageLimit
Cursor = PageCursor
MAX_IDS = 100
IDS_PATTERN = rf"^[0-9]{{1,18}}(,[0-9]{{1,18}}){{0,{MAX_IDS - 1}}}$"


@router.get("/threads", response_model=ThreadPage, summary="Threads, most recent first")
async def threads(
    caller: Caller,
    history: HistoryDep,
    inbox: InboxDep,
    account_id: Annotated[str | None, Query(max_length=128)] = None,
    customer: Annotated[
        str | None,
        Query(
            max_length=128,
            description="Only this customer's threads: a phone number (digits, `+` allowed) "
            "or a BSUID, any id of the customer",
        ),
    ] = None,
    ids: Annotated[
        str | None,
        Query(
            pattern=IDS_PATTERN,
            description=f"Only these threads: up to {MAX_IDS} ids, comma-separated (a list "
            "page's customers in one call; another tenant's are left out)",
        ),
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> ThreadPage:
    page = await history.threads(
        caller.tenant_id,
        account_id=account_id,
        cursor=cursor,
        limit=limit,
        customer=customer.strip().lstrip("+") if customer else None,
        ids=[int(i) for i in ids.split(",")] if ids else None,
    )
    return ThreadPage(
        items=[ThreadOut.of(t, inbox.in_window(t), inbox.window_closes_at(t)) for t in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/threads/{thread_id}", response_model=ThreadOut, summary="One thread")
async def thread(thread_id: int, caller: Caller, history: HistoryDep, inbox: InboxDep) -> ThreadOut:
    t = await history.thread(caller.tenant_id, thread_id)
    return ThreadOut.of(t, inbox.in_window(t), inbox.window_closes_at(t))


@router.get(
    "/threads/{thread_id}/messages",
    response_model=MessagePage,
    summary="A thread's messages, newest first",
)
async def thread_messages(
    thread_id: int, caller: Caller, history: HistoryDep, cursor: Cursor = None, limit: Limit = 50
) -> MessagePage:
    page = await history.messages(caller.tenant_id, thread_id, cursor=cursor, limit=limit)
    return MessagePage(items=[MessageOut.of(m) for m in page.items], next_cursor=page.next_cursor)


@router.get(
    "/search",
    response_model=MessagePage,
    summary="Search the tenant's messages: every word of q, in any order",
)
async def search(
    caller: Caller,
    history: HistoryDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            description="Words, all required (any case, any order); the text is stored "
            "encrypted, so no phrases, prefixes, `or` nor `-word`",
        ),
    ],
    cursor: Cursor = None,
    limit: Limit = 50,
) -> MessagePage:
    page = await history.search(caller.tenant_id, q, cursor=cursor, limit=limit)
    return MessagePage(items=[MessageOut.of(m) for m in page.items], next_cursor=page.next_cursor)
