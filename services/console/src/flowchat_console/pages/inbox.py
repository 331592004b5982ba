"""The inbox: the agent's main screen (filled in after the skeleton)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from flowchat_console.deps import CurrentUser, UpstreamDep, require
from flowchat_console.render import render

router = APIRouter()


@router.get("/inbox", include_in_schema=False, dependencies=[require("inbox.read")])
async def inbox(request: Request, user: CurrentUser, up: UpstreamDep) -> HTMLResponse:
    page = await up.get("inbox", "/v1/conversations", {"view": "open", "limit": 50})
    return render(request, "inbox/index.html", {"items": page["items"]})
