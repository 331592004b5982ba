"""Conversations: search across the tenant's history (filled in after the skeleton)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from flowchat_console.deps import CurrentUser, require
from flowchat_console.render import render

router = APIRouter()


@router.get("/conversations", include_in_schema=False, dependencies=[require("conversations.read")])
async def conversations(request: Request, user: CurrentUser) -> HTMLResponse:
    return render(request, "conversations/index.html", {"items": []})
