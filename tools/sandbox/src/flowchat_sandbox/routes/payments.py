"""The payment-provider emulator's HTTP side (:mod:`flowchat_sandbox.payments`)."""

from __future__ import annotations

from decimal import Decimal
from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from flowchat_platform.http import error_body
from flowchat_sandbox.payments import PaymentEmulator, PaymentsError

router = APIRouter(tags=["payments"])


def emulator(request: Request) -> PaymentEmulator:
    found: PaymentEmulator = request.app.state.payments
    return found


Emulator = Annotated[PaymentEmulator, Depends(emulator)]


class PayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Annotated[Decimal, Field(gt=0)] | None = None


@router.post("/payments/v1/payment_links", status_code=201)
async def create_link(
    request: Request,
    payments: Emulator,
    authorization: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    if not authorization or not authorization.startswith("Bearer ") or len(authorization) < 8:
        raise PaymentsError(401, "unauthorized", "an API key is required")
    try:
        body: Any = await request.json()
    except ValueError:  # no body, or not JSON
        body = None
    if not isinstance(body, dict):
        raise PaymentsError(422, "invalid_request", "a JSON object is required")
    link, created = payments.create_link(body, str(request.base_url))
    return JSONResponse(link.view(), status_code=201 if created else 200)


@router.get("/payments/v1/payment_links/{link_id}")
async def get_link(link_id: str, payments: Emulator) -> dict[str, Any]:
    return payments.link(link_id).view()


@router.get("/payments/pay/{link_id}", response_class=HTMLResponse)
async def pay_page(link_id: str, payments: Emulator) -> HTMLResponse:
    link = payments.link(link_id)
    return HTMLResponse(
        f"<html><body><h1>{escape(link.description)}</h1>"
        f"<p>{escape(str(link.amount))} {escape(link.currency)} — {escape(link.status)}</p>"
        "</body></html>"
    )


@router.post("/sandbox/payments/{link_id}/pay")
async def pay(link_id: str, payments: Emulator, body: PayIn | None = None) -> dict[str, Any]:
    """The customer pays on the link's page (the whole amount unless ``amount``)."""
    return await payments.pay(link_id, body.amount if body else None)


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^https?://")
    secret: str = Field(min_length=1)


@router.put("/sandbox/payments/webhook")
async def set_webhook(body: WebhookIn, payments: Emulator) -> dict[str, Any]:
    """Where the emulator posts its events and the secret it signs them with (the
    settings' values until set here)."""
    payments.webhook_url = body.url
    payments.webhook_secret = body.secret
    return {"url": body.url}


@router.post("/sandbox/payments/events/{event_id}/redeliver")
async def redeliver(event_id: str, payments: Emulator) -> dict[str, Any]:
    return {"event_id": event_id, "webhook_status": await payments.deliver(event_id)}


async def _refused(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PaymentsError)
    return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PaymentsError, _refused)
