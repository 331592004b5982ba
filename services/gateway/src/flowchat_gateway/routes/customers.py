"""The tenants' customer API: ``GET /v1/accounts/{account_id}/customers/{customer_id}/window``
(may a free-form message go to this customer now?). Read from the gateway's own record
of the customer's last inbound message (:mod:`flowchat_gateway.window_service`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from flowchat_gateway.deps import ReaderDep, SenderDep
from flowchat_gateway.schemas import ErrorBody
from flowchat_gateway.window_service import WindowService


async def _windows(request: Request) -> WindowService:
    service: WindowService = request.app.state.windows
    return service


WindowsDep = Annotated[WindowService, Depends(_windows)]

router = APIRouter(tags=["customers"])


class CustomerWindow(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "account_id": "acc_3f9a1c",
                    "customer_id": "4915112345678",
                    "open": True,
                    "last_inbound_at": "2026-06-01T09:30:00Z",
                    "closes_at": "2026-06-02T09:30:00Z",
                    "seconds_left": 51840,
                    "cache_s": 60,
                }
            ]
        }
    )

    account_id: str
    customer_id: str = Field(description="The id asked for: a phone number or a BSUID")
    open: bool = Field(description="A free-form (non-template) message may be sent now")
    last_inbound_at: datetime | None = Field(
        description="The customer's last message to this number (None: none in 72 h)"
    )
    closes_at: datetime | None = Field(description="When the window closes or closed")
    seconds_left: int = Field(ge=0, description="Seconds until it closes (0: closed)")
    cache_s: int = Field(ge=0, description="How long this answer may be cached")


@router.get(
    "/v1/accounts/{account_id}/customers/{customer_id}/window",
    summary="A customer's 24 h customer-service window",
    response_model=CustomerWindow,
    responses={
        401: {"model": ErrorBody, "description": "Missing, unknown or revoked API key"},
        403: {"model": ErrorBody, "description": "The key has neither 'read' nor 'send' scope"},
        404: {"model": ErrorBody, "description": "No such account for this tenant"},
        429: {"model": ErrorBody, "description": "Rate limited (see Retry-After)"},
        503: {"model": ErrorBody, "description": "The tenant service or Redis cannot answer"},
    },
)
async def customer_window(
    caller: ReaderDep,
    sender: SenderDep,
    windows: WindowsDep,
    account_id: Annotated[str, Path(min_length=1, max_length=128)],
    customer_id: Annotated[
        str,
        Path(
            min_length=1,
            max_length=140,
            description="The customer's phone number (E.164, '+' optional) or BSUID",
        ),
    ],
) -> JSONResponse:
    """Whether a free-form message may go to the customer now (Meta refuses one with
    131047 more than 24 h after the customer last wrote; templates always may). From
    the record the sender checks too; ``Cache-Control`` says how long the answer holds."""
    await sender.check_rate(caller)
    state = await windows.state(caller, account_id, customer_id)
    body = CustomerWindow.model_validate(state, from_attributes=True)
    return JSONResponse(
        body.model_dump(mode="json"),
        headers={"Cache-Control": f"private, max-age={state.cache_s}"},
    )
