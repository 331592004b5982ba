"""Twilio's Messages API: ``https://api.twilio.com/2010-04-01/Accounts/{sid}/Messages.json``."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, RedirectResponse

from flowchat_sandbox.deps import SandboxDep
from flowchat_sandbox.errors import TWILIO_ERROR_SCHEMA, error_responses
from flowchat_sandbox.service import Sandbox

router = APIRouter(
    prefix="/2010-04-01/Accounts/{account_sid}",
    tags=["twilio"],
    responses=error_responses(TWILIO_ERROR_SCHEMA, 400, 401, 404, 429, 500, 504),
)
Authorization = Annotated[str | None, Header()]


#: The send's path, whole (the router's prefix and the route): served by the lean lane.
MESSAGES_PATH = "/2010-04-01/Accounts/{account_sid}/Messages.json"


@router.post("/Messages.json", status_code=201)
async def create_message(
    account_sid: str,
    request: Request,
    sandbox: SandboxDep,
    authorization: Authorization = None,
) -> JSONResponse:
    """Form-encoded ``To``, ``From``, ``Body`` / ``ContentSid`` / ``MediaUrl``,
    ``StatusCallback`` → the message resource; served by the lean lane (:mod:`.hot`),
    this route documents it."""
    return await send(sandbox, account_sid, authorization, await request.body())


async def send(
    sandbox: Sandbox, account_sid: str, authorization: str | None, raw: bytes
) -> JSONResponse:
    """A send's answer: the form read as Twilio reads it, then its checks and resource."""
    form = parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
    resource = await sandbox.twilio.send(account_sid, authorization, form)
    return JSONResponse(resource, status_code=201)


@router.get("/Messages/{message_sid}.json")
async def fetch_message(
    account_sid: str,
    message_sid: str,
    sandbox: SandboxDep,
    authorization: Authorization = None,
) -> dict[str, Any]:
    return sandbox.twilio.message(account_sid, authorization, message_sid)


@router.get(
    "/Messages/{message_sid}/Media/{media_sid}",
    status_code=307,
    summary="A received message's media: 307 to its CDN URL (basic auth required)",
    response_class=RedirectResponse,
)
async def fetch_media(
    account_sid: str,
    message_sid: str,
    media_sid: str,
    request: Request,
    sandbox: SandboxDep,
    authorization: Authorization = None,
) -> RedirectResponse:
    location = sandbox.twilio.media_redirect(
        account_sid, authorization, message_sid, media_sid, str(request.base_url)
    )
    return RedirectResponse(location, status_code=307)
