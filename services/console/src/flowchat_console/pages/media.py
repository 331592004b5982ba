"""Media previews: the files customers send, streamed to the browser through the console.

``GET /media/{account_id}?id=<media id>|url=<Twilio MediaUrl>&sig=…[&name=…]`` — the
URL a thread page made (:class:`~flowchat_console.service.MediaLinks`): its signature
must be the one for the session's tenant (a user's own; an operator's chosen one), else
404, as for media that does not exist. The console then asks the sender
(``GET /internal/v1/media/content``, FlowChat's service token, the tenant named: the
sender checks the number is the tenant's and fetches the file with its credentials) and
streams the answer on:

- images (JPEG, PNG, WebP), audio and video of WhatsApp's types inline (``<img>``,
  ``<audio>``, ``<video>``); anything else as an attachment (``Content-Disposition:
  attachment``), never rendered by the browser;
- ``Cache-Control: private, max-age=86400`` and an ``ETag`` (a media id names one file:
  the browser keeps it a day, never a shared cache), ``Vary: Cookie``; a revalidation
  with the same ETag is answered 304 without asking the sender;
- a policy of its own (``default-src 'none'; sandbox``): a file opened on its own runs
  nothing.

Who: anyone who may read the inbox or the history (``inbox.read``, ``conversations.read``).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from flowchat_console.deps import CurrentUser, RuntimeDep
from flowchat_console.errors import Forbidden, UpstreamError
from flowchat_console.pages._kit import allowed, service, tenant_of
from flowchat_console.service import served_as
from flowchat_console.upstream import error_of

router = APIRouter()

#: The browser keeps a file a day (Meta keeps a customer's media 7 days).
MAX_AGE_S = 86_400
#: A file's answer runs nothing, whatever it holds.
MEDIA_CSP = "default-src 'none'; sandbox"


def _not_found() -> UpstreamError:
    return UpstreamError("console", 404, "media_not_found", "no such media")


@router.get("/media/{account_id}", include_in_schema=False)
async def media(
    request: Request,
    account_id: str,
    user: CurrentUser,
    runtime: RuntimeDep,
    sig: Annotated[str, Query(min_length=1, max_length=64)],
    media_id: Annotated[str | None, Query(alias="id", max_length=128)] = None,
    url: Annotated[str | None, Query(max_length=2048)] = None,
    name: Annotated[str | None, Query(max_length=240)] = None,
) -> Response:
    if not (allowed(user, "inbox.read") or allowed(user, "conversations.read")):
        raise Forbidden("inbox.read")
    tenant = tenant_of(request, user)
    by, ref = ("id", media_id) if media_id else ("url", url)
    if not ref or (media_id and url):
        raise _not_found()
    if not runtime.media_links.valid(tenant, account_id, by, ref, sig):
        raise _not_found()
    etag = f'"{sig}"'
    cache = {"Cache-Control": f"private, max-age={MAX_AGE_S}", "ETag": etag, "Vary": "Cookie"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=cache)
    params = {"tenant_id": tenant, "account_id": account_id, "media_id": media_id, "url": url}
    upstream = await service(request, user, tenant).open(
        "sender", "/internal/v1/media/content", params
    )
    if upstream.status_code != 200:
        await upstream.aread()
        await upstream.aclose()
        error = error_of("sender", upstream)
        # never 401/403 (that would end the user's session): the sender's own refusal
        status = error.status if error.status in (404, 413) else 502
        raise UpstreamError("sender", status, error.code, error.message)
    content_type, inline = served_as(upstream.headers.get("content-type", ""))
    disposition = "inline"
    if not inline:
        filename = quote((name or "file").replace("/", "_"), safe="")
        disposition = f"attachment; filename*=UTF-8''{filename}"
    headers = {
        **cache,
        "Content-Disposition": disposition,
        "Content-Security-Policy": MEDIA_CSP,
        "X-Content-Type-Options": "nosniff",
    }
    if upstream.headers.get("content-length") and not upstream.headers.get("content-encoding"):
        headers["Content-Length"] = upstream.headers["content-length"]
    return StreamingResponse(
        upstream.aiter_bytes(),
        media_type=content_type,
        headers=headers,
        background=BackgroundTask(upstream.aclose),
    )
