"""Request and response bodies of the endpoints API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowchat_platform.pagination import Page
from flowchat_relay.ports import Attempt, Endpoint, PostResult

Url = Annotated[str, Field(min_length=1, max_length=2048)]
Description = Annotated[str, Field(max_length=500)]
EventTypes = Annotated[list[str], Field(min_length=1, max_length=50)]


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    description: Description = ""
    event_types: EventTypes
    format: Literal["flowchat", "meta"] = "flowchat"
    enabled: bool = True


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    description: Description | None = None
    event_types: EventTypes | None = None
    format: Literal["flowchat", "meta"] | None = None
    enabled: bool | None = None


class EndpointOut(BaseModel):
    id: str
    url: str
    description: str
    event_types: list[str]
    format: str
    enabled: bool
    disabled_reason: str | None
    #: Until when the previous secret still signs beside the current one.
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, e: Endpoint) -> EndpointOut:
        return cls(
            id=e.id,
            url=e.url,
            description=e.description,
            event_types=list(e.event_types),
            format=e.format,
            enabled=e.enabled,
            disabled_reason=e.disabled_reason,
            previous_secret_expires_at=e.previous_secret_until,
            created_at=e.created_at,
            updated_at=e.updated_at,
        )


class EndpointWithSecret(EndpointOut):
    """Only in the answers to create and rotate: the secret is shown once."""

    secret: str

    @classmethod
    def of_secret(cls, e: Endpoint) -> EndpointWithSecret:
        return cls(**EndpointOut.of(e).model_dump(), secret=e.secret)


class EndpointPage(Page[EndpointOut]):
    """The tenant's endpoints, by id."""


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: How long the previous secret keeps signing (default: the operator's setting).
    overlap_s: Annotated[float, Field(ge=0, le=7 * 24 * 3600)] | None = None


class AttemptOut(BaseModel):
    id: int
    delivery_id: int
    event_id: str
    event_type: str
    attempt: int
    status_code: int | None
    error: str | None
    latency_ms: int
    response: str
    outcome: str
    at: datetime

    @classmethod
    def of(cls, a: Attempt) -> AttemptOut:
        return cls(**a.__dict__)


class AttemptPage(Page[AttemptOut]):
    """Delivery attempts, newest first."""


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Every delivery of the endpoint that failed and whose event came at or after this.
    since: datetime


class ReplayOut(BaseModel):
    replayed: int


class PingOut(BaseModel):
    ok: bool
    status_code: int | None
    error: str | None
    latency_ms: int
    response: str

    @classmethod
    def of(cls, r: PostResult) -> PingOut:
        return cls(
            ok=r.ok,
            status_code=r.status,
            error=r.error,
            latency_ms=round(r.latency_s * 1000),
            response=r.response,
        )


class EventTypesOut(BaseModel):
    items: list[str]
