"""HTTP edge: a tenant's erasure requests ("forget this customer") and their reports.

Auth as every tenant route: the service token (an operator acting for the tenant) or a
tenant API key with the ``admin`` scope for its own tenant only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowchat_conversation.deps import Erasures, Exports, TenantAdmin
from flowchat_conversation.privacy.service import ErasureStatus
from flowchat_platform.http import ApiError
from flowchat_platform.privacy import normalise_id

router = APIRouter(prefix="/v1/tenants/{tenant_id}")


class ErasureIn(BaseModel):
    """The customer to forget: a phone number (``+`` and spaces allowed) or a BSUID."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"customer_id": "+447700900123"}]},
    )

    customer_id: str = Field(min_length=3, max_length=128, pattern=r"^[+0-9A-Za-z. -]+$")
    #: Who asked, for the record (a user's id, a ticket number); never the customer's data.
    requested_by: str | None = Field(default=None, max_length=128)

    @field_validator("customer_id")
    @classmethod
    def _an_id(cls, value: str) -> str:
        """A BSUID (``US.1349…``) or a phone number of 6 to 15 digits (422 otherwise)."""
        normal = normalise_id(value)
        if "." not in normal and not 6 <= len(normal) <= 15:
            raise ValueError("a phone number (6 to 15 digits) or a BSUID (CC.digits)")
        return value


class ServiceReportOut(BaseModel):
    service: str
    status: Literal["pending", "done"]
    #: What the service did, by kind (``messages_deleted``: 12).
    actions: dict[str, int]
    completed_at: datetime | None


class ErasureOut(BaseModel):
    """An erasure request and what each service reported."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "era_5f1c0a7e2b9d4c6e8a1b3d5f",
                    "status": "pending",
                    "requested_at": "2026-12-07T01:00:00Z",
                    "requested_by": "ticket-4411",
                    "services": [
                        {
                            "service": "inbox",
                            "status": "done",
                            "actions": {"messages_deleted": 14, "threads_deleted": 1},
                            "completed_at": "2026-12-07T01:00:01Z",
                        },
                        {
                            "service": "relay",
                            "status": "pending",
                            "actions": {},
                            "completed_at": None,
                        },
                    ],
                }
            ]
        }
    )

    request_id: str
    status: Literal["pending", "completed"]
    requested_at: datetime
    requested_by: str | None
    services: list[ServiceReportOut]


def _out(status: ErasureStatus) -> ErasureOut:
    return ErasureOut(
        request_id=status.request_id,
        status=status.status,
        requested_at=status.requested_at,
        requested_by=status.requested_by,
        services=[
            ServiceReportOut(
                service=s.service, status=s.status, actions=s.actions, completed_at=s.completed_at
            )
            for s in status.services
        ],
    )


@router.post(
    "/erasures",
    status_code=202,
    tags=["privacy"],
    responses={200: {"description": "Asked before: the same request, as it stands"}},
)
async def request_erasure(
    tenant_id: TenantAdmin, erasures: Erasures, body: ErasureIn, response: Response
) -> ErasureOut:
    """Forget one customer in every service: history, inbox, contacts, sessions and
    webhook deliveries deleted; orders, invoices and campaign sends kept under a
    pseudonym; the customer suppressed from marketing by a keyed digest. Asynchronous:
    read the report with ``GET …/erasures/{request_id}``. Idempotent: the same customer
    id answers the same request (200)."""
    status, created = await erasures.request(
        tenant_id, body.customer_id, requested_by=body.requested_by
    )
    if not created:
        response.status_code = 200
    return _out(status)


@router.get(
    "/erasures/{request_id}",
    tags=["privacy"],
    responses={404: {"description": "No such erasure request for this tenant"}},
)
async def get_erasure(
    tenant_id: TenantAdmin,
    erasures: Erasures,
    request_id: Annotated[str, Path(min_length=1, max_length=64)],
) -> ErasureOut:
    """The request and each service's report (``completed`` once every service reported)."""
    status = await erasures.status(tenant_id, request_id)
    if status is None:
        raise ApiError(404, "not_found", "no such erasure request")
    return _out(status)


class ExportOut(BaseModel):
    """Everything FlowChat holds about one customer, by service (each service's rows as
    it stores them); ``unavailable``: services that did not answer."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tenant_id": "tnt_0a1b2c",
                    "customer_id": "447700900123",
                    "identities": ["447700900123", "GB.13491208655302741918"],
                    "generated_at": "2026-12-07T01:00:00+00:00",
                    "services": {
                        "conversation": {"contacts": [], "orders": []},
                        "inbox": {"threads": [], "truncated": False},
                        "state-manager": {"messages": [], "truncated": False},
                    },
                    "unavailable": [],
                }
            ]
        }
    )

    tenant_id: str
    customer_id: str
    identities: list[str]
    generated_at: datetime
    services: dict[str, Any]
    unavailable: list[str]


@router.get("/customers/{customer_id}/export", tags=["privacy"])
async def export_customer(
    tenant_id: TenantAdmin,
    exports: Exports,
    customer_id: Annotated[str, Path(min_length=3, max_length=128, pattern=r"^[+0-9A-Za-z. -]+$")],
) -> ExportOut:
    """Everything about one customer (a phone number or a BSUID, any of the customer's
    ids) from every service, as one JSON document: contacts, orders with their lines,
    invoices (``pdf_url``: a signed link to the PDF), payments and events, campaign sends,
    reminders, hand-offs, the inbox's threads with every message, the state-manager's
    message records. Not yet: the relay's webhook events."""
    return ExportOut.model_validate(await exports.export(tenant_id, customer_id))
