"""The Cloud-API-compatible routes: Meta's paths, bodies and answers, a FlowChat API
key as the bearer token (:mod:`flowchat_gateway.cloud_api_service`).

Bodies are read here (not by FastAPI's validation) so that every refusal, a malformed
body included, is answered in Meta's error shape by ``app.py``'s one handler."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from flowchat_gateway import metrics
from flowchat_gateway.cloud_api import invalid
from flowchat_gateway.deps import CloudApiDep, CloudReaderDep, CloudSenderDep, CorrelationDep
from flowchat_gateway.ports import Upload
from flowchat_gateway.schemas import ErrorBody, MetaErrorBody

router = APIRouter(tags=["cloud-api"])

MESSAGES_PATH = "/{version}/{phone_number_id}/messages"
MEDIA_PATH = "/{version}/{phone_number_id}/media"
TEMPLATES_PATH = "/{version}/{waba_id}/message_templates"
#: Meta's largest media (documents) is 100 MB.
MAX_UPLOAD_BYTES = 100 * 1024 * 1024

#: Every refusal of these routes is in Meta's error shape; only the shared layer's own
#: guards (an unreadable or oversized body) answer 400/413 in FlowChat's.
META_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": MetaErrorBody | ErrorBody,
        "description": "Invalid parameter (Meta's code 100, 131009, 131051, ...)",
    },
    401: {"model": MetaErrorBody, "description": "Missing or unknown API key (Meta's 190)"},
    403: {
        "model": MetaErrorBody,
        "description": "A number or WABA of another tenant, or a key without the scope "
        "(Meta's 10 / 200); nothing queued",
    },
    404: {"model": MetaErrorBody, "description": "Meta's own error, passed through"},
    409: {"model": MetaErrorBody, "description": "Idempotency-Key reused with another body"},
    413: {"model": MetaErrorBody | ErrorBody, "description": "Body or file over the limit"},
    422: {"model": MetaErrorBody, "description": "Meta's own error, passed through"},
    429: {"model": MetaErrorBody, "description": "Rate limited (Meta's 4; see Retry-After)"},
    500: {"model": MetaErrorBody, "description": "Meta's own error, passed through"},
    502: {"model": MetaErrorBody, "description": "Meta's own error, passed through"},
    503: {"model": MetaErrorBody, "description": "A dependency is down (Meta's 2); retry"},
}


async def _json(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid("The request body is not valid JSON.") from exc


@router.post(
    MESSAGES_PATH,
    summary="Send a message or mark one as read (Meta's Cloud API)",
    responses=META_ERRORS,
)
async def cloud_messages(
    request: Request,
    version: str,
    phone_number_id: str,
    caller: CloudSenderDep,
    service: CloudApiDep,
    correlation_id: CorrelationDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Meta's ``sendMessage`` body → Meta's success answer; ``messages[0].id`` is the id
    FlowChat's ``meta``-format statuses carry (``flowchat_contracts.meta_ids``)."""
    body = await _json(request)
    await service.send.check_rate(caller)
    answer = await service.message(
        caller,
        version,
        phone_number_id,
        body,
        idempotency_key_header=idempotency_key,
        correlation_id=correlation_id,
    )
    route = "read" if "success" in answer else "messages"
    metrics.CLOUD_API_REQUESTS.labels(route, "accepted").inc()
    return JSONResponse(answer)


@router.post(MEDIA_PATH, summary="Upload media (Meta's Cloud API)", responses=META_ERRORS)
async def cloud_media(
    request: Request,
    version: str,
    phone_number_id: str,
    caller: CloudSenderDep,
    service: CloudApiDep,
) -> JSONResponse:
    """Multipart ``file``, ``type`` (MIME), ``messaging_product=whatsapp`` → ``{"id"}``
    (uploaded through the sender's media API)."""
    await service.send.check_rate(caller)
    account = await service.media_account(caller, version, phone_number_id)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        raise invalid(f"The file may be at most {MAX_UPLOAD_BYTES} bytes.")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise invalid("The request must be multipart/form-data with a file.")
    try:
        form = await request.form(max_files=1, max_fields=10)
    except Exception as exc:
        raise invalid(f"The multipart body could not be read: {type(exc).__name__}") from exc
    try:
        if form.get("messaging_product") != "whatsapp":
            raise invalid("The parameter messaging_product is required.")
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise invalid("The parameter file is required.")
        mime = form.get("type")
        mime_type = mime if isinstance(mime, str) and mime else (file.content_type or "")
        if not mime_type:
            raise invalid("The parameter type is required.")
        content = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(content) > MAX_UPLOAD_BYTES:
            raise invalid(f"The file may be at most {MAX_UPLOAD_BYTES} bytes.")
        upload = Upload(content, mime_type, file.filename or None)
    finally:
        await form.close()
    answer = await service.upload(account, upload)
    metrics.CLOUD_API_REQUESTS.labels("media", "accepted").inc()
    return JSONResponse(answer)


@router.get(
    TEMPLATES_PATH, summary="List message templates (Meta's Cloud API)", responses=META_ERRORS
)
async def cloud_templates(
    request: Request,
    version: str,
    waba_id: str,
    caller: CloudReaderDep,
    service: CloudApiDep,
) -> JSONResponse:
    """Meta's template list of the WABA (fields, filters and paging passed through)."""
    await service.send.check_rate(caller)
    params = list(request.query_params.multi_items())
    answer = await service.templates(caller, version, waba_id, params)
    metrics.CLOUD_API_REQUESTS.labels("templates", "accepted").inc()
    return JSONResponse(answer)
