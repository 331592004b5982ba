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

router = APIRouter(tags=["cloud-api"])

MESSAGES_PATH = "/{version}/{phone_number_id}/messages"
MEDIA_PATH = "/{version}/{phone_number_id}/media"
TEMPLATES_PATH = "/{version}/{waba_id}/message_templates"
#: Meta's largest media (documents) is 100 MB.
MAX_UPLOAD_BYTES = 100 * 1024 * 1024


async def _json(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid("The request body is not valid JSON.") from exc


@router.post(MESSAGES_PATH, summary="Send a message or mark one as read (Meta's Cloud API)")
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


@router.post(MEDIA_PATH, summary="Upload media (Meta's Cloud API)")
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


@router.get(TEMPLATES_PATH, summary="List message templates (Meta's Cloud API)")
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
