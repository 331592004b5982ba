"""The Cloud API face: ``https://graph.facebook.com/{version}/...`` as Meta answers it.

Bodies are parsed here (not by FastAPI models) so that every malformed request
gets Meta's error shape with code 100, never FastAPI's 422. The version and the
access token of every ``/{version}/…`` call come from one dependency
(:data:`~flowchat_sandbox.deps.GraphDep`).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from flowchat_sandbox.deps import GraphDep, SandboxDep, TokenDep, bearer, check_version
from flowchat_sandbox.errors import GRAPH_ERROR_SCHEMA, GraphError, error_responses
from flowchat_sandbox.media import DOWNLOAD_PATH, MAX_UPLOAD_BYTES, normalize_mime
from flowchat_sandbox.service import Sandbox

_ERRORS = error_responses(GRAPH_ERROR_SCHEMA, 400, 401, 403, 404, 413, 429, 500, 503)
router = APIRouter(tags=["graph"], responses=_ERRORS)
#: The send route alone, included before every other router: it is the hot path, and
#: routes are matched in order (no other route has the shape ``/{a}/{b}/messages``).
send_router = APIRouter(tags=["graph"], responses=_ERRORS)


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise GraphError(100, "The request body is empty.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise GraphError(100, "The request body is not valid JSON.") from None


@router.get(
    DOWNLOAD_PATH,
    include_in_schema=True,
    summary="Download media (URL from GET /{id})",
    responses={
        404: {
            "description": "Invalid, expired or deleted media URL (FlowChat's error shape)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    },
)
async def download_media(
    sandbox: SandboxDep,
    token: TokenDep,
    mid: str = "",
    ext: str = "",
    mac: Annotated[str, Query(alias="hash")] = "",
) -> Response:
    """The bytes of a media URL: valid 5 minutes, and only with the bearer token."""
    data, mime_type = sandbox.cloud.download_media(token, mid, ext, mac)
    return Response(data, media_type=mime_type)


SEND_PATH = "/{version}/{phone_number_id}/messages"


@send_router.post(SEND_PATH)
async def send_message(request: Request) -> Response:
    """The hot path: no FastAPI parameter solving, the answer serialized by orjson;
    served by the lean lane (:mod:`.hot`), this route documents it."""
    params = request.path_params
    check_version(params["version"])
    sandbox: Sandbox = request.app.state.sandbox
    token = bearer(request.headers.get("authorization"), request.query_params.get("access_token"))
    raw = await _json(request)
    out = await sandbox.cloud.send_message(params["phone_number_id"], token, raw)
    return Response(orjson.dumps(out), media_type="application/json")


@router.post("/{version}/{phone_number_id}/media")
async def upload_media(phone_number_id: str, request: Request, graph: GraphDep) -> dict[str, Any]:
    """Multipart ``file`` + ``type`` + ``messaging_product=whatsapp`` → ``{"id"}``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES + 64 * 1024:
        raise GraphError(131053, f"The upload is larger than {MAX_UPLOAD_BYTES} bytes.")
    try:
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get("file")
            data = await upload.read() if isinstance(upload, UploadFile) else None
            declared_type = form.get("type")
            mime = declared_type if isinstance(declared_type, str) else None
            if mime is None and isinstance(upload, UploadFile):
                mime = upload.content_type
            filename = upload.filename if isinstance(upload, UploadFile) else None
            product = form.get("messaging_product")
    except MultiPartException as exc:
        raise GraphError(100, f"The multipart body is malformed: {exc.message}") from None
    return graph.sandbox.cloud.upload_media(
        phone_number_id,
        graph.token,
        messaging_product=product if isinstance(product, str) else None,
        mime_type=normalize_mime(mime) if mime else None,
        data=data,
        filename=filename,
    )


@router.get("/{version}/{phone_number_id}/whatsapp_business_profile")
async def get_profile(
    phone_number_id: str, graph: GraphDep, fields: str | None = None
) -> dict[str, Any]:
    return graph.sandbox.cloud.get_profile(phone_number_id, graph.token, fields)


@router.post("/{version}/{phone_number_id}/whatsapp_business_profile")
async def update_profile(phone_number_id: str, request: Request, graph: GraphDep) -> dict[str, Any]:
    return graph.sandbox.cloud.update_profile(phone_number_id, graph.token, await _json(request))


@router.get("/{version}/{waba_id}/message_templates")
async def list_templates(waba_id: str, request: Request, graph: GraphDep) -> dict[str, Any]:
    params = dict(request.query_params)
    return graph.sandbox.cloud.list_templates(waba_id, graph.token, params)


@router.post("/{version}/{waba_id}/message_templates")
async def create_template(waba_id: str, request: Request, graph: GraphDep) -> dict[str, Any]:
    return await graph.sandbox.cloud.create_template_graph(
        waba_id, graph.token, await _json(request)
    )


@router.get("/{version}/{object_id}")
async def get_object(
    object_id: str, request: Request, graph: GraphDep, fields: str | None = None
) -> dict[str, Any]:
    sandbox, token = graph.sandbox, graph.token
    if object_id in sandbox.templates:
        return sandbox.cloud.get_template(object_id, token)
    if object_id in sandbox.media:
        base = str(request.base_url)
        return sandbox.cloud.media_url(
            object_id, token, base, request.query_params.get("phone_number_id")
        )
    return sandbox.cloud.get_number(object_id, token, fields)


@router.delete("/{version}/{object_id}")
async def delete_object(object_id: str, request: Request, graph: GraphDep) -> dict[str, Any]:
    """``DELETE /{media_id}`` (the only deletable object here)."""
    phone_number_id = request.query_params.get("phone_number_id")
    return graph.sandbox.cloud.delete_media(object_id, graph.token, phone_number_id)
