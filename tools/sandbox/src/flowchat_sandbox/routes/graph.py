"""The Cloud API face: ``https://graph.facebook.com/{version}/...`` as Meta answers it.

Bodies are parsed here (not by FastAPI models) so that every malformed request
gets Meta's error shape with code 100, never FastAPI's 422.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Request, Response

from flowchat_sandbox.deps import SandboxDep
from flowchat_sandbox.errors import GraphError
from flowchat_sandbox.service import Sandbox, bearer

router = APIRouter(tags=["graph"])
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


@router.post("/{version}/{phone_number_id}/messages")
async def send_message(request: Request) -> Response:
    """The hot path: no FastAPI parameter solving, the answer serialized by orjson."""
    params = request.path_params
    _version(params["version"])
    sandbox: Sandbox = request.app.state.sandbox
    token = _token(request, request.headers.get("authorization"))
    raw = await _json(request)
    out = await sandbox.send_message(params["phone_number_id"], token, raw)
    return Response(orjson.dumps(out), media_type="application/json")


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
    return sandbox.get_number(object_id, token, fields)
