"""Provider webhooks: translate HTTP into :class:`WebhookService` calls and back.

Status codes Meta and Twilio see: 200 once every event is confirmed by the broker
(or was a duplicate, or was parked for inspection); 401 bad or missing signature;
413 body over the limit; 415 wrong content type; 503 when the broker or the tenant
service cannot confirm (the provider retries). Never 200 for an unconfirmed publish.
The services' refusals (401, 404, 503) are answered by ``app.py``'s one handler.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response

from flowchat_gateway import metrics
from flowchat_gateway.deps import WebhooksDep
from flowchat_gateway.schemas import ErrorBody
from flowchat_gateway.service import WebhookResult, WebhookService
from flowchat_gateway.settings import Settings
from flowchat_platform.http import ApiError, LeanRoute, read_bounded

router = APIRouter(tags=["webhooks"])
#: The providers' POSTs: the hottest path of the platform (every message and status of
#: every tenant), so no dependency solving (:class:`LeanRoute`): the endpoints read what
#: they need from the app's state and the request themselves.
lean = APIRouter(tags=["webhooks"], route_class=LeanRoute)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid signature; nothing published"},
    413: {"model": ErrorBody, "description": "Body larger than the limit (3 MB)"},
    415: {"model": ErrorBody, "description": "Wrong content type"},
    503: {"model": ErrorBody, "description": "Not confirmed by the broker; retry"},
}


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _read_body(request: Request, limit: int, provider: str) -> bytes:
    def too_large() -> ApiError:
        metrics.WEBHOOKS.labels(provider, "webhook", "too_large").inc()
        return ApiError(413, "payload_too_large", f"the body exceeds {limit} bytes")

    return await read_bounded(request, limit, too_large)


def _require_media_type(request: Request, expected: str, provider: str) -> None:
    if _media_type(request) != expected:
        metrics.WEBHOOKS.labels(provider, "webhook", "unsupported_media_type").inc()
        raise ApiError(415, "unsupported_media_type", f"Content-Type must be {expected}")


def _accepted(provider: str, result: WebhookResult) -> None:
    metrics.webhooks(provider, "webhook", result.outcome).inc()


def _wired(request: Request) -> tuple[WebhookService, Settings, str]:
    """The webhook service and settings (set by ``create_app``) and the correlation id
    (set by ``ObserveRequests``)."""
    state = request.app.state
    correlation_id: str = request.state.correlation_id
    return state.webhooks, state.settings, correlation_id[:128]


@router.get(
    "/webhooks/meta",
    summary="Meta webhook verification",
    response_class=PlainTextResponse,
    responses={403: {"model": ErrorBody, "description": "Unknown verify token"}},
)
async def verify_meta(
    service: WebhooksDep,
    mode: Annotated[str | None, Query(alias="hub.mode")] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge")] = None,
) -> Response:
    """Echo ``hub.challenge`` when ``hub.verify_token`` is some account's verify token."""
    echoed = await service.verify_subscription(mode, token, challenge)
    if echoed is None:
        metrics.WEBHOOKS.labels("meta", "verification", "forbidden").inc()
        raise ApiError(403, "forbidden", "verification refused")
    metrics.WEBHOOKS.labels("meta", "verification", "accepted").inc()
    return PlainTextResponse(echoed)


@lean.post(
    "/webhooks/meta",
    summary="Meta (WhatsApp Cloud API) webhook",
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "parameters": [
            {
                "name": "X-Hub-Signature-256",
                "in": "header",
                "required": True,
                "schema": {"type": "string", "example": "sha256=<hex>"},
            }
        ],
    },
)
async def meta_webhook(request: Request) -> Response:
    """Verify, normalize, deduplicate and publish (with confirms) every event of the batch."""
    service, settings, correlation_id = _wired(request)
    _require_media_type(request, "application/json", "meta")
    raw = await _read_body(request, settings.max_body_bytes, "meta")
    result = await service.handle_meta(
        raw, request.headers.get("x-hub-signature-256"), correlation_id=correlation_id
    )
    _accepted("meta", result)
    return Response(orjson.dumps(result.as_dict()), media_type="application/json")


@lean.post(
    "/webhooks/twilio/{account_id}",
    summary="Twilio WhatsApp webhook (inbound messages and status callbacks)",
    response_class=Response,
    responses={
        200: {"content": {"application/xml": {"example": EMPTY_TWIML}}},
        404: {"model": ErrorBody, "description": "No Twilio account with this id"},
        **_ERRORS,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}},
        },
        "parameters": [
            {"name": "account_id", "in": "path", "required": True, "schema": {"type": "string"}},
            {
                "name": "X-Twilio-Signature",
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
            },
        ],
    },
)
async def twilio_webhook(request: Request) -> Response:
    """Verify ``X-Twilio-Signature`` with the account's auth token, then publish."""
    service, settings, correlation_id = _wired(request)
    account_id: str = request.path_params["account_id"]
    _require_media_type(request, "application/x-www-form-urlencoded", "twilio")
    raw = await _read_body(request, settings.max_body_bytes, "twilio")
    params = parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
    url = settings.public_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    result = await service.handle_twilio(
        account_id,
        url,
        params,
        request.headers.get("x-twilio-signature"),
        correlation_id=correlation_id,
    )
    _accepted("twilio", result)
    return Response(EMPTY_TWIML, media_type="application/xml")
