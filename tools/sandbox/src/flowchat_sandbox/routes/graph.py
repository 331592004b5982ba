"""The Cloud API face: ``https://graph.facebook.com/{version}/...`` as Meta answers it.

Bodies are parsed here (not by FastAPI models) so that every malformed request
gets Meta's error shape with code 100, never FastAPI's 422.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query, Request, Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.routing import Match, Route
from starlette.types import Scope

from flowchat_sandbox.deps import SandboxDep
from flowchat_sandbox.errors import GraphError
from flowchat_sandbox.media import DOWNLOAD_PATH, MAX_UPLOAD_BYTES, normalize_mime
from flowchat_sandbox.service import Sandbox, bearer

router = APIRouter(tags=["graph"])
#: The send route alone, included before every other router: it is the hot path, and
#: routes are matched in order (no other route has the shape ``/{a}/{b}/messages``).
send_router = APIRouter(tags=["graph"])
VERSION = re.compile(r"^v\d{1,2}\.\d$")
Authorization = Annotated[str | None, Header()]


def _version(version: str) -> None:
    if not VERSION.match(version):
        raise GraphError(100, f"Unknown path components: /{version}", subcode=2500)


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise GraphError(100, "The request body is empty.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise GraphError(100, "The request body is not valid JSON.") from None


def _token(request: Request, authorization: str | None) -> str | None:
    return bearer(authorization, request.query_params.get("access_token"))


@router.get(DOWNLOAD_PATH, include_in_schema=True, summary="Download media (URL from GET /{id})")
async def download_media(
    request: Request,
    sandbox: SandboxDep,
    authorization: Authorization = None,
    mid: str = "",
    ext: str = "",
    mac: Annotated[str, Query(alias="hash")] = "",
) -> Response:
    """The bytes of a media URL: valid 5 minutes, and only with the bearer token."""
    data, mime_type = sandbox.download_media(_token(request, authorization), mid, ext, mac)
    return Response(data, media_type=mime_type)


SEND_PATH = "/{version}/{phone_number_id}/messages"


class HotRoute(Route):
    """A plain Starlette route (no dependency solving) that still names itself in the
    scope, so request metrics label it by its path like every FastAPI route."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child


@send_router.post(SEND_PATH)
async def send_message(request: Request) -> Response:
    """The hot path: no FastAPI parameter solving, the answer serialized by orjson."""
    params = request.path_params
    _version(params["version"])
    sandbox: Sandbox = request.app.state.sandbox
    token = _token(request, request.headers.get("authorization"))
    raw = await _json(request)
    out = await sandbox.send_message(params["phone_number_id"], token, raw)
    return Response(orjson.dumps(out), media_type="application/json")


@router.post("/{version}/{phone_number_id}/media")
async def upload_media(
    version: str,
    phone_number_id: str,
    request: Request,
    sandbox: SandboxDep,
    authorization: Authorization = None,
) -> dict[str, Any]:
    """Multipart ``file`` + ``type`` + ``messaging_product=whatsapp`` → ``{"id"}``."""
    _version(version)
    token = _token(request, authorization)
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
    return sandbox.upload_media(
        phone_number_id,
        token,
        messaging_product=product if isinstance(product, str) else None,
        mime_type=normalize_mime(mime) if mime else None,
        data=data,
        filename=filename,
    )


@router.get("/{version}/{phone_number_id}/whatsapp_business_profile")
async def get_profile(
    version: str,
    phone_number_id: str,
    request: Request,
    sandbox: SandboxDep,
    authorization: Authorization = None,
    fields: str | None = None,
) -> dict[str, Any]:
    _version(version)
    return sandbox.get_profile(phone_number_id, _token(request, authorization), fields)


@router.post("/{version}/{phone_number_id}/whatsapp_business_profile")
async def update_profile(
    version: str,
    phone_number_id: str,
    request: Request,
    sandbox: SandboxDep,
    authorization: Authorization = None,
) -> dict[str, Any]:
    _version(version)
    token = _token(request, authorization)
    return sandbox.update_profile(phone_number_id, token, await _json(request))


@router.get("/{version}/{waba_id}/message_templates")
async def list_templates(
    version: str,
    waba_id: str,
    request: Request,
    sandbox: SandboxDep,
    authorization: Authorization = None,
) -> dict[str, Any]:
    _version(version)
    params = dict(request.query_params)
    return sandbox.list_templates(waba_id, _token(request, authorization), params)


@router.post("/{version}/{waba_id}/message_templates")
async def create_template(
    version: str,
    waba_id: str,
    request: Request,
    sandbox: SandboxDep,
    authorization: Authorization = None,
) -> dict[str, Any]:
    _version(version)
    token = _token(request, authorization)
    return await sandbox.create_template_graph(waba_id, token, await _json(request))


@router.get("/{version}/{object_id}")
async def get_object(
    version: str,
    object_id: str,
    request: Request,
    sandbox: SandboxDep,
    authorization: Authorization = None,
    fields: str | None = None,
) -> dict[str, Any]:
    _version(version)
    token = _token(request, authorization)
    if object_id in sandbox.templates:
        return sandbox.get_template(object_id, token)
    if object_id in sandbox.media:
        base = str(request.base_url)
        return sandbox.media_url(
            object_id, token, base, request.query_params.get("phone_number_id")
        )
    return sandbox.get_number(object_id, token, fields)


@router.delete("/{version}/{object_id}")
async def delete_object(
    version: str,
    object_id: str,
    request: Request,
    sandbox: SandboxDep,
    authorization: Authorization = None,
) -> dict[str, Any]:
    """``DELETE /{media_id}`` (the only deletable object here)."""
    _version(version)
    token = _token(request, authorization)
    return sandbox.delete_media(object_id, token, request.query_params.get("phone_number_id"))
