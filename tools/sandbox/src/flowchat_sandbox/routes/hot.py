"""The routes a conversation turn takes, served by the platform's lean lane
(:func:`~flowchat_platform.http.include_lean`): the Cloud API send, Twilio's send and
a customer's message. Each is documented by its ordinary FastAPI route (:mod:`.graph`,
:mod:`.twilio`, :mod:`.control`); the lane answers their requests before the router
walk, FastAPI's dependency solving and body parsing, and
:class:`~flowchat_platform.http.GuardJsonBody` (#26: together about a third of the
sandbox's CPU per turn). What those layers did is done here the same way, so the
answers do not change: a JSON body over the app's limit is 413 ``payload_too_large``
(the guard's answer), a customer message's body is validated as FastAPI validates it
(a 422 with the same details), and Twilio's form is read from the same bytes.
"""

from __future__ import annotations

import email.message
import json
from typing import Any

import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from flowchat_platform.http import ApiError, LeanRoute, read_bounded
from flowchat_sandbox.routes import control, graph, twilio

#: The JSON body limit the app's guard applies (``create_app``'s ``max_json_bytes``).
MAX_JSON_BYTES = 9 * 1024 * 1024

lean = APIRouter(route_class=LeanRoute)


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _too_large() -> ApiError:
    return ApiError(413, "payload_too_large", f"the JSON body exceeds {MAX_JSON_BYTES} bytes")


async def _body(request: Request) -> bytes:
    """The body, bounded as :class:`~flowchat_platform.http.GuardJsonBody` bounds a JSON
    one: a declared length over the limit refused before reading, a longer stream once
    it has grown past it."""
    if not _is_json(request.headers.get("content-type")):
        return await request.body()
    return await read_bounded(request, MAX_JSON_BYTES, _too_large)


@lean.post(graph.SEND_PATH, include_in_schema=False)
async def send_message(request: Request) -> Response:
    await _body(request)
    return await graph.send_message(request)


def _is_json_body(content_type: str | None) -> bool:
    """FastAPI's test of a body parameter's media type (strict: no header, no JSON)."""
    if content_type is None:
        return False
    if content_type == "application/json":
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def _customer_message(request: Request, raw: bytes) -> control.CustomerMessageIn:
    """The body as FastAPI reads a JSON body parameter: JSON when its media type says
    so, else the bytes (which the model refuses); no body at all is a missing one."""
    if not raw:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    data: Any = raw
    if _is_json_body(request.headers.get("content-type")):
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = _json_as_fastapi_reads_it(raw)
    try:
        return control.CustomerMessageIn.model_validate(data, from_attributes=True)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from None


def _json_as_fastapi_reads_it(raw: bytes) -> Any:
    """What orjson refused, read by :func:`json.loads` as FastAPI reads it (which takes
    a few texts orjson does not, and words its errors its own way)."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        error = {
            "type": "json_invalid",
            "loc": ("body", exc.pos),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise RequestValidationError([error]) from None
    except Exception:  # noqa: BLE001 - FastAPI's answer to a body it cannot read at all
        raise HTTPException(400, "There was an error parsing the body") from None


@lean.post("/sandbox/customers/{wa_id}/messages", include_in_schema=False)
async def customer_writes(request: Request) -> Response:
    body = _customer_message(request, await _body(request))
    out = await control.customer_writes(
        request.path_params["wa_id"], body, request.app.state.sandbox, request
    )
    return Response(orjson.dumps(out), media_type="application/json")


@lean.post(twilio.MESSAGES_PATH, include_in_schema=False)
async def twilio_send(request: Request) -> Response:
    return await twilio.send(
        request.app.state.sandbox,
        request.path_params["account_sid"],
        request.headers.get("authorization"),
        await _body(request),
    )
