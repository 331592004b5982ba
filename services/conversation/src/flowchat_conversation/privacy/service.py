"""Erasure: "forget this customer" for one tenant, across every service.

The conversation service takes the request because it knows who a customer is: the
id given (a phone number or a BSUID) is resolved to every id linked to the same
customer (``customer_aliases``), and the request on ``flowchat.privacy`` names them all.
Every service storing customer data (this one included) consumes it from its own
durable queue, acts, and reports; the reports are kept here and read through the API.

The request id is a digest of the tenant and the id given: asking twice is the same
request (answered from what is recorded; published again while some service has not
reported). This service's own part (:meth:`ErasureService.erase_here`): every id gets a
suppression entry (a keyed digest, :class:`~flowchat_platform.privacy.BlindIndex`) that
campaigns and the sender's guard check, so the customer is never sent marketing by
mistake, even when re-imported; orders, invoices and campaign sends stay for the
tenant's records under a pseudonym; contacts, aliases, hand-offs, reminders, inbound
dedupe rows, the bot's sessions and carts go.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from flowchat_contracts.privacy import ErasureReported, ErasureRequested
from flowchat_conversation.privacy.ports import ErasureRecord, PrivacyCache, PrivacyStore
from flowchat_platform.privacy import BlindIndex, normalise_id

SERVICE = "conversation"
#: Every service that stores customer data and answers an erasure request.
DEFAULT_SERVICES: tuple[str, ...] = ("conversation", "inbox", "relay", "sender", "state-manager")
#: The sender's guard refuses marketing to a member of the opt-out set beginning so.
SUPPRESSED_MEMBER = "h:"


@dataclass(frozen=True)
class ServiceReport:
    service: str
    status: Literal["pending", "done"]
    actions: dict[str, int]
    completed_at: datetime | None


@dataclass(frozen=True)
class ErasureStatus:
    request_id: str
    status: Literal["pending", "completed"]
    requested_at: datetime
    requested_by: str | None
    services: list[ServiceReport]


def _status(record: ErasureRecord) -> ErasureStatus:
    reports = [
        ServiceReport(
            service=s,
            status="done" if s in record.reports else "pending",
            actions=dict(record.reports[s][0]) if s in record.reports else {},
            completed_at=record.reports[s][1] if s in record.reports else None,
        )
        for s in sorted({*record.services, *record.reports})
    ]
    done = all(r.status == "done" for r in reports)
    return ErasureStatus(
        request_id=record.request_id,
        status="completed" if done else "pending",
        requested_at=record.requested_at,
        requested_by=record.requested_by,
        services=reports,
    )


class ErasureService:
    def __init__(
        self,
        store: PrivacyStore,
        cache: PrivacyCache,
        index: BlindIndex,
        publish: Callable[[ErasureRequested], Awaitable[None]],
        *,
        services: Sequence[str] = DEFAULT_SERVICES,
    ) -> None:
        self.store = store
        self.cache = cache
        self.index = index
        self._publish = publish
        self.services = tuple(services)

    def request_id(self, tenant_id: str, customer_id: str) -> str:
        return "era_" + self.index.digest(tenant_id, customer_id)[:24]

    async def request(
        self, tenant_id: str, customer_id: str, *, requested_by: str | None
    ) -> tuple[ErasureStatus, bool]:
        """Record and publish the request; ``(status, created)``. A request made before
        and completed is not published again."""
        customer_id = normalise_id(customer_id)
        request_id = self.request_id(tenant_id, customer_id)
        existing = await self.store.get(tenant_id, request_id)
        if existing is not None and _status(existing).status == "completed":
            return _status(existing), False
        ids = await self.store.linked_ids(tenant_id, customer_id)
        record = existing or await self.store.record_request(
            request_id, tenant_id, requested_by, self.services
        )
        await self._publish(
            ErasureRequested(
                request_id=request_id,
                tenant_id=tenant_id,
                identities=sorted({customer_id, *ids}),
                requested_by=requested_by,
            )
        )
        return _status(record), existing is None

    async def status(self, tenant_id: str, request_id: str) -> ErasureStatus | None:
        record = await self.store.get(tenant_id, request_id)
        return _status(record) if record is not None else None

    async def reported(self, report: ErasureReported) -> None:
        await self.store.record_report(
            report.request_id,
            report.tenant_id,
            report.service,
            report.actions,
            report.completed_at,
        )

    async def erase_here(self, request: ErasureRequested) -> Mapping[str, int]:
        """This service's part of the erasure (idempotent)."""
        tenant_id = request.tenant_id
        ids: set[str] = {normalise_id(i) for i in request.identities}
        for customer_id in list(ids):
            ids.update(await self.store.linked_ids(tenant_id, customer_id))
        ordered = sorted(ids)
        digests = {i: self.index.digest(tenant_id, i) for i in ordered}
        # one pseudonym per customer: of the first id the request names
        pseudonym = self.index.pseudonym(tenant_id, sorted(request.identities)[0])
        erased = await self.store.erase(tenant_id, request.request_id, ordered, digests, pseudonym)
        # the sessions and carts are named by the stored customer key: the digest
        keys = await self.cache.erase(
            tenant_id,
            [*ordered, *digests.values()],
            [SUPPRESSED_MEMBER + d for d in digests.values()],
        )
        return {**erased.actions, "redis_keys_erased": keys}

    async def suppressed(self, tenant_id: str, customer_ids: Sequence[str]) -> set[str]:
        """The ids among ``customer_ids`` that belong to an erased customer."""
        digests = {self.index.digest(tenant_id, i): i for i in customer_ids if i}
        if not digests:
            return set()
        hits = await self.store.suppressed(tenant_id, list(digests))
        return {digests[d] for d in hits}
