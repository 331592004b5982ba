"""The conversation service's business logic (no aio-pika, FastAPI or asyncpg here).

Handling one inbound message
----------------------------
1. **In-process order**: a per-conversation FIFO lock (:class:`KeyedLocks`), taken
   before the first ``await``; RabbitMQ delivers a queue's messages to a consumer in
   order and each delivery's task starts in that order, so one replica handles one
   conversation's messages one at a time and in arrival order.
2. **Across replicas**: the transaction takes a PostgreSQL advisory transaction lock
   on the conversation (``pg_advisory_xact_lock``). Chosen over a Redis ``SET NX``
   lock because it cannot expire while the holder is still working (no fencing
   needed) and it is released by the server the moment a killed replica's connection
   drops. Within the lock the session is read and written with a version check
   (Redis check-and-set), so a write based on a stale read is refused, never lost.
   The session remembers the newest inbound timestamp and message id; a message
   older than the last one handled (two replicas racing) is still answered, against
   the current state, which the state machine validates (an outdated button gets
   "that option has expired"). Strict cross-replica arrival order would need a
   consistent-hash exchange with single-active-consumer queues in the topology.
3. **Dedupe**: ``(tenant, provider_message_id)`` is inserted into ``handled_messages``
   (unique constraint) in the same transaction as the effects (orders, contacts); a
   redelivery finds the row and is dropped.
4. **Replies** are published with publisher confirms *before* the session is saved
   and the transaction commits; each has the deterministic idempotency key
   ``reply:<provider_message_id>:<n>``. If the commit fails after the publish, the
   redelivery runs again: when the saved session already records this message it
   only commits the dedupe row; otherwise it recomputes the same replies with the same
   keys, which the sender drops as duplicates.

All replies answer a customer message that just arrived, so they are session
messages inside WhatsApp's 24 h window; the bot never starts a conversation.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

from flowchat_contracts import InboundMessage, OutboundCommand

from flowchat_conversation import bot, metrics
from flowchat_conversation.catalog import ParsedCsv, RejectedRow, parse_csv
from flowchat_conversation.domain import BotSettings, ConversationKey, Product, ProductIn
from flowchat_conversation.domain import resolve_product as _resolve
from flowchat_conversation.errors import CatalogError, SessionConflict
from flowchat_conversation.sessions import StoredSession

Outcome = Literal["handled", "duplicate", "replayed"]


# --------------------------------------------------------------------- ports


class Outbox(Protocol):
    async def send(self, command: OutboundCommand) -> None:
        """Publish one command and return once the broker confirmed it."""


class SessionStore(Protocol):
    async def load(self, key: ConversationKey) -> StoredSession: ...

    async def save(
        self, key: ConversationKey, session: bot.Session, *, expected_version: int
    ) -> bool: ...


class ConversationTx(Protocol):
    """The database side of one message, inside one transaction holding the lock."""

    async def mark_handled(self, tenant_id: str, provider_message_id: str, key: str) -> bool:
        """Record the message; False when it was handled before."""

    async def bot_settings(self, tenant_id: str) -> BotSettings: ...

    async def catalog(self, tenant_id: str) -> list[Product]: ...

    async def touch_contact(self, key: ConversationKey, name: str | None) -> bool:
        """Upsert the contact; True when the customer had written before."""

    async def set_marketing_opt_in(self, key: ConversationKey, opt_in: bool) -> None: ...

    async def place_order(
        self,
        *,
        key: ConversationKey,
        order_id: str,
        payment_reference: str,
        lines: Sequence[bot.CartLine],
        settings: BotSettings,
        source_message_id: str,
    ) -> bot.OrderResult: ...

    async def claim_payment(self, tenant_id: str, order_id: str, reference: str) -> None: ...

    async def cancel_order(self, tenant_id: str, order_id: str, reason: str) -> None: ...


class ConversationStore(Protocol):
    def conversation(self, key: ConversationKey) -> AbstractAsyncContextManager[ConversationTx]:
        """A transaction holding the conversation's advisory lock."""


class CatalogStore(Protocol):
    async def get_settings(self, tenant_id: str) -> BotSettings | None: ...

    async def put_settings(self, tenant_id: str, settings: BotSettings) -> None: ...

    async def upsert_products(
        self, tenant_id: str, products: Sequence[Product]
    ) -> tuple[int, int]: ...

    async def list_products(
        self, tenant_id: str, *, category: str | None, limit: int, offset: int
    ) -> list[Product]: ...


# --------------------------------------------------------------------- locks


class KeyedLocks:
    """FIFO asyncio locks per key, forgotten when nobody holds or waits for them."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


def _short_id(prefix: str, *parts: str) -> str:
    digest = hashlib.sha256(":".join(parts).encode()).digest()
    return prefix + base64.b32encode(digest).decode()[:10]


def order_ids(tenant_id: str, provider_message_id: str) -> tuple[str, str]:
    """Deterministic order id and payment reference for the message that confirmed an order
    (a re-run after a failed commit produces the same ones, so the same reply text)."""
    return (
        _short_id("ORD-", tenant_id, provider_message_id),
        _short_id("PAY-", "payment", tenant_id, provider_message_id),
    )


# --------------------------------------------------------------------- conversations


@dataclass
class ConversationService:
    store: ConversationStore
    sessions: SessionStore
    outbox: Outbox

    def __post_init__(self) -> None:
        self._locks = KeyedLocks()

    async def handle_inbound(self, message: InboundMessage) -> Outcome:
        key = ConversationKey(message.tenant_id, message.account_id, message.customer_wa_id)
        started = time.perf_counter()
        async with self._locks.hold(str(key)), self.store.conversation(key) as tx:
            outcome = await self._handle_locked(tx, key, message)
        metrics.INBOUND.labels(outcome).inc()
        metrics.HANDLE_SECONDS.observe(time.perf_counter() - started)
        return outcome

    async def _handle_locked(
        self, tx: ConversationTx, key: ConversationKey, message: InboundMessage
    ) -> Outcome:
        if not await tx.mark_handled(message.tenant_id, message.provider_message_id, str(key)):
            return "duplicate"
        stored = await self.sessions.load(key)
        if stored.session and stored.session.last_message_id == message.provider_message_id:
            # Replies were confirmed and the session saved, only the commit was lost.
            return "replayed"
        settings = await tx.bot_settings(message.tenant_id)
        catalog = await tx.catalog(message.tenant_id)
        returning = await tx.touch_contact(key, message.customer_name)
        ctx = bot.BotContext(
            settings=settings,
            catalog=catalog,
            customer_name=message.customer_name,
            returning=returning,
        )
        decision = bot.handle(stored.session, message, ctx)
        replies = list(decision.replies)
        session = decision.session
        for action in decision.actions:
            if isinstance(action, bot.PlaceOrder):
                order_id, reference = order_ids(message.tenant_id, message.provider_message_id)
                result = await tx.place_order(
                    key=key,
                    order_id=order_id,
                    payment_reference=reference,
                    lines=action.lines,
                    settings=settings,
                    source_message_id=message.provider_message_id,
                )
                metrics.ORDERS.labels(
                    "placed" if isinstance(result, bot.OrderPlaced) else "rejected"
                ).inc()
                follow = bot.after_order(session, result, ctx)
                session = follow.session
                replies.extend(follow.replies)
            elif isinstance(action, bot.OptOut | bot.OptIn):
                await tx.set_marketing_opt_in(key, isinstance(action, bot.OptIn))
            elif isinstance(action, bot.ClaimPayment):
                await tx.claim_payment(message.tenant_id, action.order_id, action.reference)
            elif isinstance(action, bot.CancelOrder):
                await tx.cancel_order(message.tenant_id, action.order_id, action.reason)
        before = stored.session.state if stored.session else bot.State.GREETING
        if before is not session.state:
            metrics.TRANSITIONS.labels(before.value, session.state.value).inc()
        for n, content in enumerate(replies):
            command = OutboundCommand(
                tenant_id=message.tenant_id,
                account_id=message.account_id,
                correlation_id=message.correlation_id,
                idempotency_key=f"reply:{message.provider_message_id}:{n}",
                message_id=_short_id(
                    "msg-", message.tenant_id, message.provider_message_id, str(n)
                ),
                to=message.customer_wa_id,
                category="service",
                reply_to=message.provider_message_id,
                content=content,
            )
            await self.outbox.send(command)
            metrics.REPLIES.labels(content.type).inc()
        if not await self.sessions.save(key, session, expected_version=stored.version):
            raise SessionConflict(str(key), expected_version=stored.version)
        return "handled"


# --------------------------------------------------------------------- catalog


@dataclass(frozen=True)
class ImportReport:
    received: int
    created: int
    updated: int
    rejected: list[RejectedRow]


@dataclass
class CatalogService:
    store: CatalogStore

    async def settings(self, tenant_id: str) -> BotSettings:
        return await self.store.get_settings(tenant_id) or BotSettings()

    async def put_settings(self, tenant_id: str, settings: BotSettings) -> BotSettings:
        await self.store.put_settings(tenant_id, settings)
        return settings

    async def add_products(
        self, tenant_id: str, items: Sequence[ProductIn]
    ) -> tuple[list[Product], int, int]:
        """Create or replace products by sku; every item must be valid (else nothing)."""
        settings = await self.settings(tenant_id)
        products: list[Product] = []
        seen: set[str] = set()
        for n, item in enumerate(items):
            if item.sku in seen:
                raise CatalogError(f"item {n}: duplicate sku {item.sku}", code="duplicate_sku")
            seen.add(item.sku)
            try:
                products.append(_resolve(item, settings.currency))
            except ValueError as exc:
                raise CatalogError(f"item {n}: {exc}") from exc
        created, updated = await self.store.upsert_products(tenant_id, products)
        return products, created, updated

    async def list_products(
        self, tenant_id: str, *, category: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Product]:
        return await self.store.list_products(
            tenant_id, category=category, limit=limit, offset=offset
        )

    async def import_csv(self, tenant_id: str, text: str) -> ImportReport:
        settings = await self.settings(tenant_id)
        parsed: ParsedCsv = parse_csv(text, default_currency=settings.currency)
        created = updated = 0
        if parsed.products:
            created, updated = await self.store.upsert_products(
                tenant_id, [p for _, p in parsed.products]
            )
        metrics.IMPORT_ROWS.labels("accepted").inc(len(parsed.products))
        metrics.IMPORT_ROWS.labels("rejected").inc(len(parsed.rejected))
        return ImportReport(
            received=len(parsed.products) + len(parsed.rejected),
            created=created,
            updated=updated,
            rejected=parsed.rejected,
        )
