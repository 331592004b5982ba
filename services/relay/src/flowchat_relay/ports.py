"""What the relay's logic needs of the outside world (adapters: ``repository.py`` for
PostgreSQL, ``http_client.py`` for the endpoints, the tenant client for accounts)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from flowchat_contracts.tenant_events import EndpointDisabled
from flowchat_platform.accounts import AccountCredentials
from flowchat_platform.meta_echo import SentThroughCloudApi

Format = Literal["flowchat", "meta"]


@dataclass(frozen=True)
class Endpoint:
    id: str
    tenant_id: str
    url: str
    description: str
    event_types: tuple[str, ...]
    format: Format
    enabled: bool
    disabled_reason: str | None
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime | None
    created_at: datetime
    updated_at: datetime

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets that sign now: the current one, and the previous one during a
        rotation's overlap."""
        out = [self.secret]
        if self.previous_secret and self.previous_secret_until and self.previous_secret_until > now:
            out.append(self.previous_secret)
        return out


@dataclass(frozen=True)
class EndpointChanges:
    url: str | None = None
    description: str | None = None
    event_types: tuple[str, ...] | None = None
    format: Format | None = None
    enabled: bool | None = None


@dataclass(frozen=True)
class StoredEvent:
    """An event ready to store: the FlowChat body (``sequence`` filled by the store)
    and the Meta-shaped body, for the endpoints that take each."""

    id: str
    type: str
    tenant_id: str
    account_id: str
    conversation: str | None
    body: bytes
    meta_body: bytes | None
    endpoint_ids: tuple[str, ...]
    #: Every customer id the event names (stored as keyed digests only).
    customers: tuple[str, ...] = ()


@dataclass(frozen=True)
class CustomerEvent:
    """One of a customer's events as an export gives it: the bodies as delivered, and
    each endpoint's delivery (``endpoint_id``, ``status``, ``attempts``, ``created_at``,
    ``finished_at``)."""

    id: str
    type: str
    account_id: str
    created_at: datetime
    body: Any
    meta_body: Any
    deliveries: list[dict[str, Any]]


@dataclass(frozen=True)
class Claimed:
    """A due delivery, leased to this worker."""

    delivery_id: int
    endpoint: Endpoint
    event_id: str
    event_type: str
    attempt: int
    window_start: datetime
    #: None: the event has no body in the endpoint's format (a ``meta`` endpoint that
    #: was ``flowchat`` when the event was stored)
    body: bytes | None


@dataclass(frozen=True)
class PostResult:
    """An endpoint's answer to one POST (``status`` None: no answer; ``error`` says why)."""

    status: int | None
    latency_s: float
    response: str = ""
    error: str | None = None
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class Outcome:
    """What became of one attempt, to record: ``next_attempt_at`` None and not delivered
    means failed for good; ``disable`` disables the endpoint at once (410 Gone)."""

    claimed: Claimed
    result: PostResult
    outcome: str
    next_attempt_at: datetime | None = None
    disable: str | None = None

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"


@dataclass(frozen=True)
class Disabled:
    """An endpoint :meth:`DeliveryStore.record` disabled (it was enabled before), when
    (the transaction's time) and why (``gone``, ``failing``)."""

    endpoint_id: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class Attempt:
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


class EndpointStore(Protocol):
    async def create_endpoint(self, endpoint: Endpoint) -> None: ...
    async def get_endpoint(self, tenant_id: str, endpoint_id: str) -> Endpoint | None: ...
    async def list_endpoints(
        self, tenant_id: str, *, after: str | None, limit: int
    ) -> list[Endpoint]: ...
    async def update_endpoint(
        self, tenant_id: str, endpoint_id: str, changes: EndpointChanges
    ) -> Endpoint | None: ...
    async def rotate_secret(
        self, tenant_id: str, endpoint_id: str, secret: str, previous_until: datetime
    ) -> Endpoint | None: ...
    async def delete_endpoint(self, tenant_id: str, endpoint_id: str) -> bool: ...
    async def subscribed(self, tenant_id: str, event_type: str) -> list[Endpoint]: ...
    async def subscribed_types(self, tenant_id: str) -> set[str]:
        """The event types the tenant's enabled endpoints subscribe to."""

    async def all_subscribed_types(self) -> dict[str, set[str]]:
        """:meth:`subscribed_types` of every tenant with an enabled endpoint."""


class DeliveryStore(Protocol):
    async def save_event(self, event: StoredEvent) -> bool: ...
    async def due_endpoints(self) -> list[str]: ...
    async def save_events(self, events: list[StoredEvent]) -> list[bool]: ...
    async def lease(self, endpoint_id: str, limit: int, lease_s: float) -> list[Claimed]: ...
    async def record(
        self, outcomes: list[Outcome], *, disable_after_s: float
    ) -> list[Disabled]: ...
    async def attempts(
        self, tenant_id: str, endpoint_id: str, *, before: int | None, limit: int
    ) -> list[Attempt]: ...
    async def replay_delivery(self, tenant_id: str, endpoint_id: str, delivery_id: int) -> bool: ...
    async def replay_failed(self, tenant_id: str, endpoint_id: str, since: datetime) -> int: ...
    async def oldest_pending(self) -> dict[str, float]: ...
    async def endpoint_ids(self) -> list[str]: ...


class ExportStore(Protocol):
    async def customer_events(
        self, tenant_id: str, digest: str, *, after: str | None, limit: int
    ) -> list[CustomerEvent]:
        """The tenant's events naming the customer whose id has the keyed ``digest``."""
        ...


class RetentionStore(Protocol):
    async def purge_attempts(self, cutoff: datetime, batch: int, default_days: int = 0) -> int:
        """Delete one batch of delivery-log rows (attempts) made before ``cutoff`` (now -
        the default ``default_days``), or before now - their tenant's own days."""

    async def purge_events(self, cutoff: datetime, batch: int, default_days: int = 0) -> int:
        """Delete one batch of events stored before the cutoff (as above) that no
        endpoint still waits for (no pending delivery); their deliveries go with them."""

    async def retention(self, tenant_id: str) -> int | None:
        """The tenant's own retention of the delivery log in days (None: the default)."""

    async def set_retention(self, tenant_id: str, days: int | None) -> None:
        """Set (None: drop) the tenant's own retention."""


class Subscriptions(Protocol):
    """Where producers learn which event types each tenant's endpoints want
    (``flowchat_platform.subscriptions.SubscriptionWriter``)."""

    async def replace(self, tenant_id: str, event_types: Iterable[str]) -> None: ...
    async def replace_all(self, by_tenant: Mapping[str, Iterable[str]]) -> None: ...


class CloudApiSends(Protocol):
    """The messages the gateway's compatible endpoint queued
    (``flowchat_platform.meta_echo.MetaEcho``)."""

    async def recall(self, tenant_id: str, message_id: str) -> SentThroughCloudApi | None: ...


class Accounts(Protocol):
    async def account(self, account_id: str) -> AccountCredentials | None: ...


class Notices(Protocol):
    """Where the relay tells the platform what it did (the broker adapter publishes on
    ``flowchat.events`` with a confirm; raises when it could not)."""

    async def endpoint_disabled(self, event: EndpointDisabled) -> None: ...


class Poster(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> PostResult: ...
