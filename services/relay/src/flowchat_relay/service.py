"""The relay's business logic: endpoints (create, change, rotate, delete) and the
intake that turns consumed events into stored deliveries. No I/O of its own: the
stores, the resolver and the accounts are ports."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from flowchat_contracts.tenant_events import ALL_EVENT_TYPES as EVENT_TYPES
from flowchat_contracts.tenant_events import AnyTenantEvent
from flowchat_contracts.webhooks import MessageStatus
from flowchat_platform.batching import PartitionedBatcher
from flowchat_platform.logs import get_logger
from flowchat_platform.meta_echo import SentThroughCloudApi
from flowchat_platform.pagination import decode_cursor, page_of
from flowchat_platform.retention import purge_in_batches
from flowchat_relay import metrics
from flowchat_relay.errors import EndpointNotFound, InvalidEndpoint
from flowchat_relay.events import Outgoing, customer_ids, meta_body
from flowchat_relay.ports import (
    Accounts,
    CloudApiSends,
    DeliveryStore,
    Endpoint,
    EndpointChanges,
    EndpointStore,
    Format,
    RetentionStore,
    StoredEvent,
    Subscriptions,
)
from flowchat_relay.safety import Resolve, check_url
from flowchat_relay.signing import new_secret

log = get_logger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def check_event_types(types: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    if not types:
        raise InvalidEndpoint("at least one event type is required", field="event_types")
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        raise InvalidEndpoint(
            f"unknown event types: {', '.join(unknown)} (known: {', '.join(EVENT_TYPES)})",
            field="event_types",
        )
    return tuple(sorted(set(types)))


class EndpointService:
    def __init__(
        self,
        store: EndpointStore,
        resolve: Resolve,
        *,
        allow_private: bool,
        allow_http: bool = False,
        secret_overlap_s: float,
        clock: Clock = utcnow,
        subscriptions: Subscriptions | None = None,
    ) -> None:
        self._store = store
        self._subscriptions = subscriptions
        self._resolve = resolve
        self.allow_private = allow_private
        self.allow_http = allow_http
        self.secret_overlap_s = secret_overlap_s
        self._clock = clock

    async def sync_subscriptions(self, tenant_id: str | None = None) -> None:
        """Tell producers what the tenant's (None: every tenant's) enabled endpoints
        want. Best effort: the periodic sync repairs a failed one."""
        if self._subscriptions is None:
            return
        try:
            if tenant_id is None:
                await self._subscriptions.replace_all(await self._store.all_subscribed_types())
            else:
                types = await self._store.subscribed_types(tenant_id)
                await self._subscriptions.replace(tenant_id, types)
        except Exception as exc:  # noqa: BLE001 - producers fall back; the next sync repairs
            log.warning("subscriptions not synced", error=type(exc).__name__)

    async def _check_url(self, url: str) -> None:
        await check_url(
            url, self._resolve, allow_private=self.allow_private, allow_http=self.allow_http
        )

    async def create(
        self,
        tenant_id: str,
        *,
        url: str,
        description: str,
        event_types: list[str],
        format: Format,
        enabled: bool,
    ) -> Endpoint:
        """A new endpoint with a fresh secret (the caller shows it once)."""
        types = check_event_types(event_types)
        await self._check_url(url)
        now = self._clock()
        endpoint = Endpoint(
            id=f"ep_{uuid.uuid4().hex}",
            tenant_id=tenant_id,
            url=url,
            description=description,
            event_types=types,
            format=format,
            enabled=enabled,
            disabled_reason=None,
            secret=new_secret(),
            previous_secret=None,
            previous_secret_until=None,
            created_at=now,
            updated_at=now,
        )
        await self._store.create_endpoint(endpoint)
        await self.sync_subscriptions(tenant_id)
        log.info("endpoint created", tenant_id=tenant_id, endpoint_id=endpoint.id)
        return endpoint

    async def get(self, tenant_id: str, endpoint_id: str) -> Endpoint:
        found = await self._store.get_endpoint(tenant_id, endpoint_id)
        if found is None:
            raise EndpointNotFound(f"no endpoint {endpoint_id}")
        return found

    async def list(
        self, tenant_id: str, *, cursor: str | None, limit: int
    ) -> tuple[list[Endpoint], str | None]:
        after = decode_cursor(cursor, str)
        rows = await self._store.list_endpoints(
            tenant_id, after=after[0] if after else None, limit=limit + 1
        )
        return page_of(rows, limit, lambda e: (e.id,))

    async def update(self, tenant_id: str, endpoint_id: str, changes: EndpointChanges) -> Endpoint:
        if changes.event_types is not None:
            changes = replace(changes, event_types=check_event_types(changes.event_types))
        if changes.url is not None:
            await self._check_url(changes.url)
        found = await self._store.update_endpoint(tenant_id, endpoint_id, changes)
        if found is None:
            raise EndpointNotFound(f"no endpoint {endpoint_id}")
        await self.sync_subscriptions(tenant_id)
        return found

    async def rotate_secret(
        self, tenant_id: str, endpoint_id: str, *, overlap_s: float | None
    ) -> Endpoint:
        """A new secret; the old one keeps signing beside it for the overlap."""
        overlap = self.secret_overlap_s if overlap_s is None else overlap_s
        until = self._clock() + timedelta(seconds=overlap)
        found = await self._store.rotate_secret(tenant_id, endpoint_id, new_secret(), until)
        if found is None:
            raise EndpointNotFound(f"no endpoint {endpoint_id}")
        log.info("endpoint secret rotated", tenant_id=tenant_id, endpoint_id=endpoint_id)
        return found

    async def delete(self, tenant_id: str, endpoint_id: str) -> None:
        if not await self._store.delete_endpoint(tenant_id, endpoint_id):
            raise EndpointNotFound(f"no endpoint {endpoint_id}")
        await self.sync_subscriptions(tenant_id)
        log.info("endpoint deleted", tenant_id=tenant_id, endpoint_id=endpoint_id)


class SaveBatcher(PartitionedBatcher[StoredEvent, bool]):
    """Events stored in batches: what the consumers hand in together is committed in one
    transaction (one wait for the disk), each submitter answered after the commit. One
    conversation's events go to one worker, in order (their sequence numbers)."""

    def __init__(self, store: DeliveryStore, *, workers: int = 2, max_batch: int = 100) -> None:
        super().__init__(workers=workers, max_batch=max_batch)
        self._store = store

    def _key(self, item: StoredEvent) -> str:
        return f"{item.tenant_id}/{item.account_id}/{item.conversation or item.id}"

    async def _apply_batch(self, items: list[StoredEvent]) -> list[bool]:
        return await self._store.save_events(items)

    async def _apply_one(self, item: StoredEvent) -> bool:
        return await self._store.save_event(item)


class Intake:
    """Turns one consumed event into stored deliveries, one per subscribed endpoint,
    before the broker message is acked. Nothing is stored when no endpoint subscribes."""

    def __init__(
        self,
        endpoints: EndpointStore,
        deliveries: DeliveryStore,
        accounts: Accounts,
        *,
        on_stored: Callable[[], None] = lambda: None,
        sends: CloudApiSends | None = None,
        save: Callable[[StoredEvent], Awaitable[bool]] | None = None,
    ) -> None:
        self._sends = sends
        self._endpoints = endpoints
        self._deliveries = deliveries
        self._accounts = accounts
        self._on_stored = on_stored
        #: how an event is stored: alone, or through a :class:`SaveBatcher`'s submit
        self._save = save or deliveries.save_event

    async def _sent_through_cloud_api(self, event: AnyTenantEvent) -> SentThroughCloudApi | None:
        """For a status of a message the compatible endpoint queued: its callback data
        (the ``meta`` body then names it by the id that endpoint answered)."""
        if self._sends is None or not isinstance(event, MessageStatus):
            return None
        return await self._sends.recall(event.tenant_id, event.data.message_id)

    async def take(self, outgoing: Outgoing) -> bool:
        """Store ``outgoing`` for its subscribers; True when stored (False: nobody
        subscribes, or it was stored before)."""
        event = outgoing.event
        subscribers = await self._endpoints.subscribed(event.tenant_id, event.type)
        if not subscribers:
            metrics.EVENTS_SKIPPED.labels(event.type).inc()
            return False
        meta: bytes | None = None
        if any(e.format == "meta" for e in subscribers):
            account = await self._accounts.account(event.account_id)
            if account is not None and account.tenant_id == event.tenant_id:
                shaped = meta_body(event, account, await self._sent_through_cloud_api(event))
                meta = orjson.dumps(shaped) if shaped is not None else None
        targets = tuple(e.id for e in subscribers if e.format == "flowchat" or meta is not None)
        if not targets:
            metrics.EVENTS_SKIPPED.labels(event.type).inc()
            return False
        body = event.model_dump_json().encode()
        stored = await self._save(
            StoredEvent(
                id=event.id,
                type=event.type,
                tenant_id=event.tenant_id,
                account_id=event.account_id,
                conversation=outgoing.conversation,
                body=body,
                meta_body=meta,
                endpoint_ids=targets,
                customers=tuple(customer_ids(orjson.loads(body))),
            )
        )
        if stored:
            metrics.EVENTS_STORED.labels(event.type).inc()
            self._on_stored()
        return stored


async def purge(
    store: RetentionStore, *, retention_days: int, batch_size: int, now: datetime
) -> dict[str, int]:
    """Delete the delivery log and the events older than the retention, one short
    batch at a time (an event still pending at an endpoint stays); rows by kind."""
    cutoff = now - timedelta(days=retention_days)
    kinds = {"attempts": store.purge_attempts, "events": store.purge_events}
    done: dict[str, int] = {}
    for kind, purge in kinds.items():

        async def one(c: datetime, b: int, purge: Any = purge) -> int:
            return int(await purge(c, b, default_days=retention_days))

        done[kind] = await purge_in_batches(
            one, cutoff, batch_size, metrics.PURGED.labels(kind).inc
        )
    return done
