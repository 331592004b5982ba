"""The sender's internal media API (service token only; :mod:`flowchat_sender.media`).

- ``POST /internal/v1/media?tenant_id=&account_id=[&filename=&kind=]`` — the file's
  bytes as the body, its MIME type as ``Content-Type`` → ``{media_id, sha256,
  mime_type, kind, file_size, cached, uploaded_at, expires_at}``.
- ``POST /internal/v1/media/link`` ``{tenant_id, account_id, link, mime_type?,
  filename?, kind?}`` — the sender downloads the link once and uploads it.

Send the answer's ``media_id`` in ``MediaContent`` (or a template's media parameter).

- ``GET /internal/v1/media/content?tenant_id=&account_id=&media_id=`` (Cloud API) or
  ``…&url=`` (a Twilio MediaUrl) — the bytes of media a customer sent, fetched with the
  account's credentials (:mod:`flowchat_sender.media_service`): ``Content-Type`` the
  provider's, ``X-FlowChat-Media-Sha256`` (hex), ``ETag``. Errors: 404
  ``not_found`` (unknown account) or ``media_not_found`` (the provider knows no such
  media, or a MediaUrl that is not the account's), 409 the wrong name for the provider,
  413 over ``MEDIA_DOWNLOAD_MAX_BYTES``, 502 ``provider_error`` / ``media_corrupt`` /
  ``upstream_unavailable``.
Errors: 400 an empty body, 404 unknown account, 409 a Twilio account (send the link), 413 too large,
415 a type WhatsApp does not take (or not of ``kind``), 422 refused by the provider,
502 the provider or the link did not answer (the sender's errors, answered by
:func:`flowchat_sender.routes.error_response`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from flowchat_contracts.whatsapp import MAX_MEDIA_BYTES
from flowchat_platform.http import ApiError, read_bounded
from flowchat_sender.deps import MediaResolverDep, MediaStoreDep, ServiceOnly
from flowchat_sender.media import max_bytes

router = APIRouter(prefix="/internal/v1", tags=["internal"])
#: What the media routes answer besides the shared errors (documented in the OpenAPI).
_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown account"},
    409: {"description": "The account's provider takes no uploads"},
    413: {"description": "File over the type's size limit"},
    415: {"description": "Media type or kind the provider does not take"},
    502: {"description": "The provider could not be reached; retry"},
}

Kind = Annotated[str | None, Query(pattern="^(image|video|audio|document|sticker)$")]


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str = Field(min_length=1, max_length=128)
    account_id: str = Field(min_length=1, max_length=128)
    link: str = Field(pattern=r"^https?://", max_length=2048)
    mime_type: str | None = Field(default=None, max_length=200)
    filename: str | None = Field(default=None, max_length=240)
    kind: str | None = Field(default=None, pattern="^(image|video|audio|document|sticker)$")


@router.post("/media", dependencies=[ServiceOnly], responses=_RESPONSES)
async def upload(
    request: Request,
    store: MediaStoreDep,
    tenant_id: Annotated[str, Query(min_length=1, max_length=128)],
    account_id: Annotated[str, Query(min_length=1, max_length=128)],
    filename: Annotated[str | None, Query(max_length=240)] = None,
    kind: Kind = None,
) -> dict[str, Any]:
    mime = request.headers.get("content-type", "")
    limit = max_bytes(mime) if mime else MAX_MEDIA_BYTES

    def too_large() -> ApiError:
        return ApiError(413, "too_large", f"{mime or 'the file'} may be at most {limit} bytes")

    content = await read_bounded(request, limit, too_large)
    stored = await store.put(tenant_id, account_id, content, mime, filename=filename, kind=kind)
    return stored.public()


@router.post("/media/link", dependencies=[ServiceOnly], responses=_RESPONSES)
async def upload_link(body: LinkIn, store: MediaStoreDep) -> dict[str, Any]:
    stored = await store.put_link(
        body.tenant_id,
        body.account_id,
        body.link,
        mime_type=body.mime_type,
        filename=body.filename,
        kind=body.kind,
    )
    return stored.public()


_CONTENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file's bytes, typed as the provider typed them",
        "content": {
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "example": "\\xff\\xd8\\xff\\xe0 ... (a JPEG)",
            }
        },
    },
    404: {"description": "Unknown account, or the provider knows no such media"},
    409: {"description": "media_id for a Twilio account, or url for a Cloud API one"},
    413: {"description": "Larger than the sender serves (MEDIA_DOWNLOAD_MAX_BYTES)"},
    502: {"description": "The provider refused or did not answer, or the file is corrupt"},
}


@router.get(
    "/media/content",
    dependencies=[ServiceOnly],
    responses=_CONTENT_RESPONSES,
    response_class=Response,
)
async def content(
    resolver: MediaResolverDep,
    tenant_id: Annotated[str, Query(min_length=1, max_length=128)],
    account_id: Annotated[str, Query(min_length=1, max_length=128)],
    media_id: Annotated[
        str | None, Query(min_length=1, max_length=128, pattern=r"^[\w.-]+$")
    ] = None,
    url: Annotated[str | None, Query(pattern=r"^https?://", max_length=2048)] = None,
) -> Response:
    """The bytes of media a customer sent (``media_id``: Cloud API; ``url``: Twilio)."""
    if (media_id is None) == (url is None):
        raise ApiError(400, "invalid_request", "give exactly one of media_id and url")
    got = await resolver.resolve(tenant_id, account_id, media_id=media_id, url=url)
    return Response(
        got.data,
        media_type=got.content_type,
        headers={
            "ETag": f'"{got.sha256}"',
            "X-FlowChat-Media-Sha256": got.sha256,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )
