"""The send API's request and response bodies (pydantic; no framework imports)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from flowchat_contracts import MessageCategory, OutboundContent


class SendMessageRequest(BaseModel):
    """One message to one customer, from one of the caller's WhatsApp numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="The FlowChat account (WhatsApp number) to send from; must be the caller's."
    )
    to: Annotated[str, StringConstraints(min_length=1, max_length=32)] = Field(
        description="The customer's number in international format (E.164; '+' optional)."
    )
    content: OutboundContent = Field(description="The message, by type.")
    category: MessageCategory = "service"
    reply_to: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        default=None, description="A provider message id to quote in the reply."
    )


class SendMessageAccepted(BaseModel):
    message_id: str = Field(description="FlowChat's id of the message; statuses refer to it.")
    status: Literal["queued"] = "queued"


class MessageError(BaseModel):
    code: int | None = None
    title: str | None = None
    details: str | None = None


class MessageState(BaseModel):
    """A message as the state-manager records it (more fields may appear)."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="FlowChat's message id")
    tenant_id: str
    account_id: str
    idempotency_key: str | None = None
    recipient: str | None = None
    message_type: str | None = None
    category: str | None = None
    campaign_id: str | None = None
    correlation_id: str | None = None
    provider: str = Field(description="meta or twilio")
    provider_message_id: str | None = Field(default=None, description="The WAMID or Twilio SID")
    status: str = Field(description="queued, sending, sent, delivered, read, failed, …")
    error: MessageError | None = None
    pricing_category: str | None = None
    created_at: datetime
    updated_at: datetime


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[object] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorDetail


class MetaErrorData(BaseModel):
    model_config = ConfigDict(extra="allow")

    messaging_product: str | None = None
    details: str | None = None


class MetaErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    message: str
    type: str
    code: int
    error_subcode: int | None = None
    error_data: MetaErrorData | None = None
    fbtrace_id: str | None = None


class MetaErrorBody(BaseModel):
    """A refusal on a Cloud-API-compatible route, in Meta's Graph API error shape
    (``{"error": {"message", "type", "code", "error_data", "fbtrace_id"}}``); Meta's own
    errors passed through keep their extra fields."""

    error: MetaErrorDetail
