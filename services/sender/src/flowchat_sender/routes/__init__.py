"""HTTP edges of the sender: its internal API (FlowChat's service token only).

- :mod:`~flowchat_sender.routes.dlq`: ``GET /internal/v1/dlq``,
  ``POST /internal/v1/dlq/replay`` — the parking lot;
- :mod:`~flowchat_sender.routes.media`: ``POST /internal/v1/media``,
  ``POST /internal/v1/media/link`` — uploads to the provider, and
  ``GET /internal/v1/media/content`` — what customers sent, as bytes.

Routes raise the sender's own errors (:mod:`flowchat_sender.errors`); one exception
handler (:func:`error_response`, registered in :mod:`flowchat_sender.app`) turns them
into FlowChat's error body.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from flowchat_platform.errors import StoreUnavailable
from flowchat_platform.http import error_body
from flowchat_sender.errors import (
    MediaDownloadFailed,
    MediaNotFound,
    MediaRefused,
    MediaUploadFailed,
)

#: A refused upload's HTTP status and error code, by its reason.
_MEDIA_REFUSED: dict[str, tuple[int, str]] = {
    "account": (404, "not_found"),
    "provider": (409, "provider_unsupported"),
    "size": (413, "too_large"),
    "type": (415, "unsupported_media_type"),
    "kind": (415, "unsupported_media_type"),
    "empty": (400, "invalid_request"),
}

#: A failed download's error code, by its reason (all 502: not the caller's to fix).
_MEDIA_DOWNLOAD: dict[str, str] = {
    "provider": "provider_error",
    "unavailable": "upstream_unavailable",
    "corrupt": "media_corrupt",
}


async def error_response(_: Request, exc: Exception) -> JSONResponse:
    """The one answer of every sender error raised while handling a request."""
    details = None
    if isinstance(exc, StoreUnavailable):
        status, code, message = 503, "redis_unavailable", "the idempotency store did not answer"
    elif isinstance(exc, MediaRefused):
        status, code = _MEDIA_REFUSED[exc.reason]
        message = str(exc)
    elif isinstance(exc, MediaUploadFailed):
        details = [exc.error.model_dump()] if exc.error is not None else None
        status, code = (502, "upstream_unavailable") if exc.retryable else (422, "provider_refused")
        message = str(exc)
    elif isinstance(exc, MediaNotFound):
        status, code, message = 404, "media_not_found", str(exc)
    elif isinstance(exc, MediaDownloadFailed):
        details = [exc.error.model_dump()] if exc.error is not None else None
        status, code = 502, _MEDIA_DOWNLOAD[exc.reason]
        message = str(exc)
    else:  # pragma: no cover - registered for HANDLED only
        raise exc
    return JSONResponse(error_body(code, message, details), status_code=status)


#: What :func:`error_response` answers for.
HANDLED: tuple[type[Exception], ...] = (
    StoreUnavailable,
    MediaRefused,
    MediaUploadFailed,
    MediaNotFound,
    MediaDownloadFailed,
)
