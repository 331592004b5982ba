"""The tenants' message API: ``POST /v1/messages`` (send) and ``GET /v1/messages/{id}``
(its state, read from the state-manager for the caller's tenant).

Refusals are the services' exceptions, answered by ``app.py``'s one handler."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path
from fastapi.responses import JSONResponse

from flowchat_gateway import metrics
from flowchat_gateway.deps import CallerDep, CorrelationDep, QueryDep, ReaderDep, SenderDep
from flowchat_gateway.schemas import (
    ErrorBody,
    MessageState,
    SendMessageAccepted,
    SendMessageRequest,
)
from flowchat_gateway.send_service import idempotency_key as idempotency_key_of
from flowchat_platform.openapi import REQUIRED

router = APIRouter(tags=["messages"])

_ACCOUNT = "acc_3f9a1c"
_TO = "+4915112345678"


def _example(summary: str, content: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "value": {"account_id": _ACCOUNT, "to": _TO, **extra, "content": content},
    }


EXAMPLES: dict[str, Any] = {
    "text": _example("Text", {"type": "text", "body": "Your order has shipped!"}),
    "image": _example(
        "Image by link",
        {"type": "image", "link": "https://example.com/p/123.jpg", "caption": "Blue, size M"},
    ),
    "document": _example(
        "Document by media id",
        {"type": "document", "media_id": "1003383421387256", "filename": "invoice-1042.pdf"},
    ),
    "audio": _example("Audio", {"type": "audio", "media_id": "1003383421387257"}),
    "video": _example("Video", {"type": "video", "link": "https://example.com/demo.mp4"}),
    "sticker": _example("Sticker", {"type": "sticker", "media_id": "1003383421387258"}),
    "template": _example(
        "Template (marketing)",
        {
            "type": "template",
            "name": "order_update",
            "language": "en_US",
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "#1042"}]},
            ],
        },
        category="marketing",
    ),
    "buttons": _example(
        "Reply buttons",
        {
            "type": "interactive_buttons",
            "body": "Confirm your order?",
            "buttons": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}],
        },
    ),
    "list": _example(
        "List",
        {
            "type": "interactive_list",
            "body": "Choose a delivery option",
            "button": "Options",
            "sections": [
                {
                    "title": "Shipping",
                    "rows": [
                        {"id": "std", "title": "Standard", "description": "3-5 days"},
                        {"id": "exp", "title": "Express", "description": "Next day"},
                    ],
                }
            ],
        },
    ),
    "reaction": _example(
        "Reaction",
        {"type": "reaction", "message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRB", "emoji": "👍"},
    ),
    "location": _example(
        "Location",
        {"type": "location", "latitude": 52.52, "longitude": 13.405, "name": "Shop"},
    ),
    "contacts": _example(
        "Contacts",
        {
            "type": "contacts",
            "contacts": [
                {"name": {"formatted_name": "Support"}, "phones": [{"phone": "+4930123"}]}
            ],
        },
    ),
    "reply": _example(
        "Text quoting a customer message",
        {"type": "text", "body": "Yes, it comes in red too."},
        reply_to="wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTA2NTUw",
    ),
}


@router.post(
    "/v1/messages",
    status_code=202,
    summary="Send a message",
    response_model=SendMessageAccepted,
    responses={
        401: {"model": ErrorBody, "description": "Missing, unknown or revoked API key"},
        403: {"model": ErrorBody, "description": "The key lacks the 'send' scope"},
        404: {"model": ErrorBody, "description": "No such account for this tenant"},
        409: {"model": ErrorBody, "description": "Idempotency-Key reused with another body"},
        422: {"model": ErrorBody, "description": "Invalid body or phone number"},
        429: {"model": ErrorBody, "description": "Rate limited (see Retry-After)"},
        503: {"model": ErrorBody, "description": "Not queued; retry with the same key"},
    },
)
async def send_message(
    caller: CallerDep,
    sender: SenderDep,
    correlation_id: CorrelationDep,
    request: Annotated[SendMessageRequest, Body(openapi_examples=EXAMPLES)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Required. The same key with the same body within 24 h returns the "
            "same message id; with another body, 409.",
            json_schema_extra=REQUIRED,
        ),
    ] = None,
) -> JSONResponse:
    """Queue one message for sending; answers 202 once the command is durably queued."""
    key = idempotency_key_of(idempotency_key)
    await sender.check_rate(caller)
    accepted = await sender.send(
        caller, request, idempotency_key=key, correlation_id=correlation_id
    )
    metrics.SEND_REQUESTS.labels("replayed" if accepted.replayed else "accepted").inc()
    body = SendMessageAccepted(message_id=accepted.message_id)
    headers = {"Idempotent-Replayed": "true"} if accepted.replayed else None
    return JSONResponse(body.model_dump(), status_code=202, headers=headers)


@router.get(
    "/v1/messages/{message_id}",
    summary="A message's state",
    response_model=MessageState,
    responses={
        401: {"model": ErrorBody, "description": "Missing, unknown or revoked API key"},
        403: {"model": ErrorBody, "description": "The key has neither 'read' nor 'send' scope"},
        404: {"model": ErrorBody, "description": "No such message for this tenant (yet)"},
        429: {"model": ErrorBody, "description": "Rate limited (see Retry-After)"},
        503: {"model": ErrorBody, "description": "The state-manager cannot answer; retry"},
    },
)
async def get_message(
    caller: ReaderDep,
    sender: SenderDep,
    query: QueryDep,
    message_id: Annotated[
        str,
        Path(
            min_length=1,
            max_length=128,
            description="The `message_id` that `POST /v1/messages` answered.",
        ),
    ],
) -> JSONResponse:
    """The message's current state (queued, sent, delivered, read, failed…) and its
    provider id, as the state-manager records it; only the caller's tenant's messages."""
    await sender.check_rate(caller)
    record = await query.message(caller, message_id)
    metrics.QUERY_REQUESTS.labels("found").inc()
    return JSONResponse(record)
