"""What the erasure logic needs from PostgreSQL and Redis (implemented in
:mod:`.repository` and :mod:`.redis_store`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class ErasureRecord:
    request_id: str
    tenant_id: str
    requested_at: datetime
    requested_by: str | None
    services: tuple[str, ...]
    #: service → (actions, completed_at) of the reports received so far.
    reports: Mapping[str, tuple[Mapping[str, int], datetime]]


@dataclass(frozen=True)
class ErasedHere:
    """What this service's tables gave up for one customer."""

    ids: tuple[str, ...]
    opted_out: bool
    actions: Mapping[str, int]


class PrivacyStore(Protocol):
    async def linked_ids(self, tenant_id: str, customer_id: str) -> list[str]:
        """Every id linked to the customer ``customer_id`` names (itself included)."""

    async def record_request(
        self,
        request_id: str,
        tenant_id: str,
        requested_by: str | None,
        services: Sequence[str],
    ) -> ErasureRecord:
        """Record the request once (a second call returns the first)."""

    async def get(self, tenant_id: str, request_id: str) -> ErasureRecord | None: ...

    async def record_report(
        self,
        request_id: str,
        tenant_id: str,
        service: str,
        actions: Mapping[str, int],
        completed_at: datetime,
    ) -> None:
        """Keep the first report of each service (a redelivered one changes nothing)."""

    async def erase(
        self,
        tenant_id: str,
        request_id: str,
        ids: Sequence[str],
        digests: Mapping[str, str],
        pseudonym: str,
    ) -> ErasedHere:
        """One transaction: suppression entries for ``digests`` (id → digest), orders and
        campaign sends pseudonymised, the customer's other rows deleted."""

    async def suppressed(self, tenant_id: str, digests: Sequence[str]) -> set[str]:
        """The ``digests`` that have a suppression entry."""

    async def customer_data(self, tenant_id: str, ids: Sequence[str]) -> dict[str, list[Any]]:
        """Every row of this service about the customer, by table."""


class PeerExport(Protocol):
    """Another service's data about a customer (its HTTP API)."""

    service: str

    async def export(self, tenant_id: str, ids: Sequence[str]) -> Any: ...


class PrivacyCache(Protocol):
    async def erase(self, tenant_id: str, ids: Sequence[str], suppressed: Sequence[str]) -> int:
        """Drop the customer's sessions and carts and their clear opt-out members; add
        ``suppressed`` (members for the sender's guard). Keys removed or replaced."""
