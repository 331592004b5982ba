"""The commerce bot's conversations: :class:`ConversationService` handles each inbound
message (no I/O here: the stores, the sessions and the outbox are ports,
:mod:`~flowchat_conversation.commerce.ports`).

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
   "that option has expired"). Arrival order across replicas comes from the topology:
   a conversation's messages land in one partition queue with a single active consumer
   (:mod:`flowchat_conversation.commerce.consumer`), so only one replica at a time has
   them; this lock serialises the overlap when a partition changes hands.
   A dependency unavailable (``transient``) is retried inside both locks (up to
   ``transient_retry_for_s``), never by letting go: the conversation's next message,
   waiting on the in-process lock, would otherwise go first.
3. **Dedupe**: ``(tenant, provider_message_id)`` is inserted into ``handled_messages``
   (unique constraint) in the same transaction as the effects (orders, contacts), by
   the statement that takes the lock (once it holds it); a redelivery finds the row and
   is dropped.

   Round trips to PostgreSQL for a message: BEGIN, the lock with the dedupe row, its
   arrival (``ConversationTx.arrive``: the customer resolved, the contact touched with
   its hand-off state, the tenant's settings and catalog), then whatever the bot's
   actions write, and COMMIT.
4. **Replies** are rendered for the customer's channel (:mod:`.render`: native lists
   and buttons on the Cloud API, numbered text menus on Twilio) and published with
   publisher confirms *before* the session is saved
   and the transaction commits; each has the deterministic idempotency key
   ``reply:<provider_message_id>:<n>``. If the commit fails after the publish, the
   redelivery runs again: when the saved session already records this message it
   only commits the dedupe row; otherwise it recomputes the same replies with the same
   keys, which the sender drops as duplicates.

All replies answer a customer message that just arrived, so they are session
messages inside WhatsApp's 24 h window; the bot never starts a conversation.

Customers are identities (:mod:`flowchat_conversation.customers`): a message of either
contract version is locked under ``customer.key`` (the BSUID, else the phone), and
inside the transaction its ids are resolved to the customer key (one statement, which
also links ids seen for the first time); a customer stored under another key (a phone
number, before BSUIDs) gets that conversation's lock too, and everything (session,
contact, orders, reminders) is read and written under the customer key. Replies go to
the phone number when there is one, else to the BSUID. Messages the bot has no use
for (edits, deletions, Flow answers, call-permission answers, system messages) get no
reply; Meta's id-change system messages link the new ids to the customer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from datetime import UTC, datetime
from typing import Literal

from flowchat_contracts import (
    CtaUrlContent,
    CustomerIdentity,
    HandoffRequested,
    InboundMessage,
    InboundMessageV2,
    OutboundCommand,
    OutboundContent,
    TextContent,
)
from flowchat_contracts.tenant_events import OrderData
from flowchat_conversation import metrics
from flowchat_conversation.commerce import bot, i18n, render
from flowchat_conversation.commerce.domain import (
    BotSettings,
    ContactSeen,
    ConversationKey,
    round_money,
    short_id,
)
from flowchat_conversation.commerce.orders import InvoiceLinks, order_ids
from flowchat_conversation.commerce.payments import PaymentProvider
from flowchat_conversation.commerce.ports import (
    Arrival,
    ConversationStore,
    ConversationTx,
    InboundLimiter,
    InvoiceRenderer,
    SessionStore,
    StoredSession,
    schedule_reminder,
)
from flowchat_conversation.customers import ID_CHANGES, Customer, identity_of
from flowchat_conversation.errors import ConversationError, SessionConflict
from flowchat_conversation.facts import Facts
from flowchat_conversation.outbox import Outbox
from flowchat_conversation.outreach.ports import OptOutMirror
from flowchat_conversation.outreach.reminders import BotReminders, cart_reference
from flowchat_platform.logs import get_logger

log = get_logger(__name__)

#: States in which a non-empty cart is still being filled (an abandoned cart if left).
CART_STATES = frozenset(
    {
        bot.State.BROWSING_PRODUCTS,
        bot.State.ADDING_TO_CART,
        bot.State.COLLECTING_QUANTITY,
        bot.State.CONFIRMING_ITEMS,
        bot.State.REVIEWING_ORDER,
        bot.State.GREETING,
    }
)

Outcome = Literal["handled", "duplicate", "replayed", "ignored", "limited"]

#: Inbound types the bot does not answer (a reply would only say it cannot read them).
IGNORED_TYPES = frozenset({"edit", "revoke", "call_permission_reply", "flow_response", "system"})


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


@dataclass
class ConversationService:
    store: ConversationStore
    sessions: SessionStore
    outbox: Outbox
    links: InvoiceLinks | None = None
    #: The Redis opt-out set the sender reads (STOP / START keep it in step).
    optouts: OptOutMirror | None = None
    #: The reminders the bot schedules (None: none).
    reminders: BotReminders | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: Order facts for the relay's subscribers (None: none published).
    facts: Facts | None = None
    #: Counts each customer's messages a minute (None: no inbound limit).
    limiter: InboundLimiter | None = None
    #: The payment provider: a confirmed order's invoice gets a payment link, sent
    #: as a CTA-URL button (None: the confirmation-number path only).
    payments: PaymentProvider | None = None
    #: Which failures are a dependency unavailable (``flowchat_platform.transient``):
    #: those are retried inside the conversation's lock for up to
    #: ``transient_retry_for_s`` (then the message goes back to the consumer), so a later
    #: message of the conversation never goes first. None: never retried here.
    transient: Callable[[Exception], bool] | None = None
    transient_retry_for_s: float = 30.0
    #: The invoice PDF renderer, warmed when an order is placed (its download follows).
    renderer: InvoiceRenderer | None = None
    #: The stored customer key of a customer id, ``(tenant_id, id)`` → key (the keyed
    #: digest where identities are encrypted at rest); None: the id itself.
    key_of: Callable[[str, str], str] | None = None

    def __post_init__(self) -> None:
        self._locks = KeyedLocks()

    async def handle_inbound(self, message: InboundMessage | InboundMessageV2) -> Outcome:
        identity = identity_of(message)
        customer_key = identity.key
        if self.key_of is not None:
            customer_key = self.key_of(message.tenant_id, customer_key)
        key = ConversationKey(message.tenant_id, message.account_id, customer_key)
        started = time.perf_counter()
        if message.type in IGNORED_TYPES:
            await self._ignore(key, message, identity)
            metrics.INBOUND.labels("ignored").inc()
            return "ignored"
        opted_in: dict[str, bool] = {}
        async with self._locks.hold(str(key)):
            delay = 0.1
            deadline = time.monotonic() + self.transient_retry_for_s
            while True:
                opted_in = {}
                try:
                    async with self.store.conversation(
                        key, handling=message.provider_message_id
                    ) as tx:
                        outcome = await self._handle_locked(tx, key, identity, message, opted_in)
                    break
                except Exception as exc:
                    # A dependency unavailable: again here, still holding the conversation's
                    # place (the next message waits on the lock); let go, it would go first.
                    if (
                        self.transient is None
                        or not self.transient(exc)
                        or time.monotonic() + delay > deadline
                    ):
                        raise
                    log.warning(
                        "dependency unavailable; handling again under the conversation lock",
                        error=repr(exc),
                        tenant_id=message.tenant_id,
                        retry_in_s=round(delay, 2),
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
        if opted_in and self.optouts is not None:
            # An opt-in leaves the opt-out set only once it is committed (an opt-out
            # joined it before the commit): a crash in between keeps the customer out.
            try:
                await self.optouts.mirror(key.tenant_id, opted_in)
            except Exception:  # the message is handled; the next rebuild repairs the set
                log.exception("opt-in not mirrored to the opt-out set", conversation=str(key))
        metrics.INBOUND.labels(outcome).inc()
        metrics.HANDLE_SECONDS.observe(time.perf_counter() - started)
        return outcome

    async def _ignore(
        self,
        key: ConversationKey,
        message: InboundMessage | InboundMessageV2,
        identity: CustomerIdentity,
    ) -> None:
        """No reply; an id change (``user_changed_number``, ``user_changed_user_id``)
        links the new ids to the customer who had the previous ones (idempotent)."""
        if message.type == "flow_response" and message.flow is not None:
            await self._flow_answer(key, message, identity)
            return
        change = (message.system or {}).get("type")
        if message.type != "system" or message.previous_customer is None:
            return
        if change not in ID_CHANGES:
            return
        async with self._locks.hold(str(key)), self.store.conversation(key) as tx:
            await tx.relink_customer(message.tenant_id, message.previous_customer, identity)

    async def _flow_answer(
        self,
        locked: ConversationKey,
        message: InboundMessage | InboundMessageV2,
        identity: CustomerIdentity,
    ) -> None:
        """A WhatsApp Flow's answer (``nfm_reply``): the delivery address is stored on the
        order the Flow was sent for (its ``flow_token``), and the customer is told."""
        flow = message.flow
        assert flow is not None
        async with self._locks.hold(str(locked)), self.store.conversation(locked) as tx:
            if not await tx.mark_handled(
                message.tenant_id, message.provider_message_id, str(locked)
            ):
                return
            customer = await tx.resolve_customer(locked, identity)
            key = ConversationKey(locked.tenant_id, locked.account_id, customer.key)
            answer = flow.response if flow.response is not None else {"raw": flow.response_json}
            order_id = await tx.set_delivery_address(key, answer, flow_token=flow.flow_token)
            metrics.FLOW_ANSWERS.labels("stored" if order_id else "no_order").inc()
            if order_id is None:
                return
            await self.outbox.send(
                OutboundCommand(
                    tenant_id=message.tenant_id,
                    account_id=message.account_id,
                    correlation_id=message.correlation_id,
                    idempotency_key=f"reply:{message.provider_message_id}:0",
                    message_id=short_id(
                        "msg-", message.tenant_id, message.provider_message_id, "0"
                    ),
                    to=identity.wa_id or customer.address,
                    category="service",
                    reply_to=message.provider_message_id,
                    content=TextContent(
                        body=f"📍 Thank you! The delivery address for order {order_id} is saved."
                    ),
                )
            )

    async def _context(
        self,
        tx: ConversationTx,
        key: ConversationKey,
        message: InboundMessage | InboundMessageV2,
        previous: bot.Session | None,
        arrival: Arrival,
        seen: ContactSeen,
    ) -> tuple[bot.Session | None, bot.BotContext]:
        settings = arrival.settings
        returning = seen.returning
        fresh = previous is None or previous.state is bot.State.GREETING
        # A new or expired session: an operator may still have the conversation.
        if fresh and seen.handoff_open:
            previous = (previous or bot.Session()).model_copy(update={"handoff": True})
        reorder = message.reply is not None and message.reply.id == "reorder"
        ctx = bot.BotContext(
            settings=settings,
            catalog=arrival.catalog,
            customer_name=message.customer_name,
            returning=returning,
            last_order=await tx.last_order(key) if returning and (fresh or reorder) else (),
            blocked=seen.blocked,
            restock_alerts=self.reminders is not None and self.reminders.restock,
            # the customer's choice, else the tenant's default language
            locale=seen.locale or settings.locale,
        )
        return previous, ctx

    async def _act(
        self,
        tx: ConversationTx,
        key: ConversationKey,
        message: InboundMessage | InboundMessageV2,
        action: bot.Action,
        session: bot.Session,
        ctx: bot.BotContext,
        opted_in: dict[str, bool],
        customer: Customer,
    ) -> bot.Decision | None:
        """Carry out one of the bot's actions; a decision when it has more to say."""
        if isinstance(action, bot.PlaceOrder):
            return await self._place(tx, key, message, action, session, ctx)
        if isinstance(action, bot.OptOut):
            await tx.set_marketing_opt_in(key, False)
            if self.optouts is not None:  # before the commit: never a window without it
                # every id of the person: a send to either is refused
                await self.optouts.mirror(key.tenant_id, dict.fromkeys(customer.ids, False))
        elif isinstance(action, bot.OptIn):
            await tx.set_marketing_opt_in(key, True)
            opted_in.update(dict.fromkeys(customer.ids, True))
        elif isinstance(action, bot.ClaimPayment):
            await tx.claim_payment(message.tenant_id, action.order_id, action.reference)
        elif isinstance(action, bot.CancelOrder):
            await tx.cancel_order(message.tenant_id, action.order_id, action.reason)
            await tx.cancel_reminders(message.tenant_id, "payment_due", action.order_id)
        elif isinstance(action, bot.SetLocale):
            await tx.set_contact_locale(key, action.locale)
        elif isinstance(action, bot.WatchRestock):
            await self._restock(tx, key, action)
        elif isinstance(action, bot.Handoff):
            await tx.start_handoff(key)
            # The inbox opens a conversation for people; published before the commit
            # (a redelivery publishes it again with the same event id: deduplicated).
            await self.outbox.publish_event(
                HandoffRequested(
                    tenant_id=message.tenant_id,
                    account_id=message.account_id,
                    correlation_id=message.correlation_id,
                    event_id=short_id("handoff-", message.tenant_id, message.provider_message_id),
                    customer=identity_of(message),
                    reason="the customer asked for an agent",
                    bot_state=session.state.value,
                )
            )
            metrics.HANDOFFS.labels("started").inc()
        return None

    async def _place(
        self,
        tx: ConversationTx,
        key: ConversationKey,
        message: InboundMessage | InboundMessageV2,
        action: bot.PlaceOrder,
        session: bot.Session,
        ctx: bot.BotContext,
    ) -> bot.Decision:
        """Place the order the bot asked for; the bot's replies (with the payment button
        when the tenant takes payments online)."""
        order_id, reference = order_ids(message.tenant_id, message.provider_message_id)
        result = await tx.place_order(
            key=key,
            order_id=order_id,
            payment_reference=reference,
            lines=action.lines,
            settings=ctx.settings,
            source_message_id=message.provider_message_id,
        )
        placed = isinstance(result, bot.OrderPlaced)
        metrics.ORDERS.labels("placed" if placed else "rejected").inc()
        if isinstance(result, bot.OrderPlaced):
            await self._payment_due(tx, key, result)
            await self._order_created(message, key, result)
            if result.invoice_id and self.links:
                result = _replace(result, invoice_url=self.links.url(result.invoice_id))
                if self.renderer is not None:
                    self.renderer.warm()  # its download follows
        decision = bot.after_order(session, result, ctx)
        if isinstance(result, bot.OrderPlaced):
            button = await self._payment_button(tx, key, result, ctx)
            if button is not None:
                decision.replies.append(button)
        return decision

    async def _payment_button(
        self,
        tx: ConversationTx,
        key: ConversationKey,
        placed: bot.OrderPlaced,
        ctx: bot.BotContext,
    ) -> CtaUrlContent | None:
        """The new invoice's payment link as a CTA-URL button (None without a provider,
        or when the provider cannot be reached: the confirmation-number path stays)."""
        if self.payments is None or placed.invoice_id is None:
            return None
        if not ctx.settings.online_payments:
            return None
        number = placed.invoice_number or placed.invoice_id
        try:
            link = await self.payments.create_link(
                tenant_id=key.tenant_id,
                invoice_id=placed.invoice_id,
                amount=placed.totals.total,
                currency=placed.totals.currency,
                description=f"Invoice {number} (order {placed.order_id})",
            )
        except ConversationError as exc:
            log.warning("no payment link", error=exc.code, order_id=placed.order_id)
            return None
        await tx.set_payment_link(placed.invoice_id, link.url, link.link_id)
        t = i18n.tr(ctx.locale)
        return CtaUrlContent(
            body=t(
                "Pay invoice {number} online: {amount}.",
                number=number,
                amount=t.money(placed.totals.total, placed.totals.currency),
            ),
            display_text=t("Pay now"),
            url=link.url,
        )

    async def _sync_draft(
        self,
        tx: ConversationTx,
        key: ConversationKey,
        message: InboundMessage | InboundMessageV2,
        before: bot.Session | None,
        after: bot.Session,
        ctx: bot.BotContext,
    ) -> None:
        """The open cart's draft order follows the cart: created or updated when the
        cart changed, cancelled (by the customer) when the cart is gone without an
        order (an order takes the draft over)."""
        cart = after.cart if after.state in CART_STATES else []
        had = bool(before and before.cart)
        if cart and (before is None or before.cart != cart):
            await tx.sync_draft(key, cart, ctx.settings, message.provider_message_id)
            metrics.DRAFTS.labels("synced").inc()
        elif not cart and had and await tx.drop_draft(key, "cart cleared by the customer"):
            metrics.DRAFTS.labels("dropped").inc()

    async def _order_created(
        self,
        message: InboundMessage | InboundMessageV2,
        key: ConversationKey,
        placed: bot.OrderPlaced,
    ) -> None:
        """``order.created`` for the relay (before the commit, like the hand-off: a
        redelivery publishes the same event id again)."""
        if self.facts is None:
            return
        await self.facts.order(
            "created",
            tenant_id=key.tenant_id,
            account_id=key.account_id,
            event_id=short_id("order-created-", key.tenant_id, placed.order_id),
            correlation_id=message.correlation_id,
            order=OrderData(
                order_id=placed.order_id,
                customer=identity_of(message),
                status="confirmed",
                currency=placed.totals.currency,
                total=str(round_money(placed.totals.total, placed.totals.currency)),
                payment_reference=placed.payment_reference,
            ),
        )

    # ---- reminders the bot schedules (in the conversation's transaction)

    async def _payment_due(
        self, tx: ConversationTx, key: ConversationKey, placed: bot.OrderPlaced
    ) -> None:
        if self.reminders is None or placed.due_at is None:
            return
        reminder = self.reminders.payment_due(
            tenant_id=key.tenant_id,
            account_id=key.account_id,
            wa_id=key.customer_wa_id,
            order_id=placed.order_id,
            payment_reference=placed.payment_reference,
            due_at=placed.due_at,
            now=self.clock(),
        )
        await schedule_reminder(tx, reminder)

    async def _restock(
        self, tx: ConversationTx, key: ConversationKey, watch: bot.WatchRestock
    ) -> None:
        if self.reminders is None:
            return
        reminder = self.reminders.restock_alert(
            tenant_id=key.tenant_id,
            account_id=key.account_id,
            wa_id=key.customer_wa_id,
            sku=watch.sku,
            product_name=watch.name,
            now=self.clock(),
        )
        await schedule_reminder(tx, reminder)

    async def _abandoned_cart(
        self, tx: ConversationTx, key: ConversationKey, session: bot.Session, *, had_cart: bool
    ) -> None:
        """A cart left as it is after this message: remind after a while of inactivity
        (each message moves the reminder); no cart any more (ordered, emptied): cancel."""
        if self.reminders is None or self.reminders.abandoned_cart_after is None:
            return
        items = len(session.cart) if session.state in CART_STATES else 0
        if items:
            reminder = self.reminders.abandoned_cart(
                tenant_id=key.tenant_id,
                account_id=key.account_id,
                wa_id=key.customer_wa_id,
                items=items,
                now=self.clock(),
            )
            if reminder is not None:
                await tx.schedule_reminder(reminder, replace=True)
        elif had_cart:
            await tx.cancel_reminders(
                key.tenant_id,
                "abandoned_cart",
                cart_reference(key.account_id, key.customer_wa_id),
                wa_id=key.customer_wa_id,
            )

    async def _past_limit(
        self,
        key: ConversationKey,
        message: InboundMessage | InboundMessageV2,
        to: str,
        session: bot.Session | None,
        settings: BotSettings,
        seen: ContactSeen,
    ) -> bool:
        """Count the message against the customer's inbound limit. Past it: the first
        such message gets one "we'll reply shortly" (not while blocked or with an
        operator), the rest nothing; the bot's state is left as it was. The contact
        is still marked as seen (the 24 h window), and the message still reaches
        history and the inbox, which consume it on their own queues."""
        if self.limiter is None or bot.keyword(message) in ("stop", "start"):
            return False  # STOP / START always count
        count = await self.limiter.hit(key)
        limit = settings.inbound_limit_per_minute
        if count <= limit:
            return False
        quiet = seen.blocked or (session is not None and session.handoff)
        if count == limit + 1 and not quiet:
            locale = seen.locale or settings.locale
            for n, reply in enumerate(bot.flooded(session, locale).replies):
                await self._send(message, to, n, reply, locale)
            metrics.INBOUND_LIMITED.labels("noticed").inc()
        else:
            metrics.INBOUND_LIMITED.labels("dropped").inc()
        return True

    async def _send(
        self,
        message: InboundMessage | InboundMessageV2,
        to: str,
        n: int,
        reply: OutboundContent,
        locale: str | None,
    ) -> None:
        """Reply ``n`` to ``message``, rendered for its channel (lists and buttons as
        numbered text on Twilio, in the customer's language), with its deterministic
        idempotency key."""
        prompt = i18n.tr(locale)(i18n.MENU_PROMPT)
        content = render.for_channel(reply, message.provider, prompt=prompt)
        command = OutboundCommand(
            tenant_id=message.tenant_id,
            account_id=message.account_id,
            correlation_id=message.correlation_id,
            idempotency_key=f"reply:{message.provider_message_id}:{n}",
            message_id=short_id("msg-", message.tenant_id, message.provider_message_id, str(n)),
            to=to,
            category="service",
            reply_to=message.provider_message_id,
            content=content,
        )
        await self.outbox.send(command)
        metrics.REPLIES.labels(content.type).inc()

    async def _handle_locked(
        self,
        tx: ConversationTx,
        locked: ConversationKey,
        identity: CustomerIdentity,
        message: InboundMessage | InboundMessageV2,
        opted_in: dict[str, bool],
    ) -> Outcome:
        if tx.duplicate:  # recorded as handled when the transaction took the lock
            return "duplicate"
        # the customer, the contact seen, the shop: one round trip
        arrival = await tx.arrive(locked, identity, message.customer_name)
        customer = arrival.customer
        key = ConversationKey(locked.tenant_id, locked.account_id, customer.key)
        to = identity.wa_id or customer.address
        # known under another key: that conversation is locked now, the contact seen then
        seen = arrival.seen or await tx.touch_contact(key, message.customer_name)
        stored = await self.sessions.load(key)
        if stored.session and stored.session.last_message_id == message.provider_message_id:
            if stored.message_id != message.provider_message_id:
                # Replies confirmed and the session saved, only the commit was lost, and
                # nothing kept to run it again from.
                return "replayed"
            # The commit was lost after the replies and the session: handle the message
            # again from the session before it, so its effects (an order, a contact) are
            # written this time. The replies keep their idempotency keys: the sender
            # drops them as duplicates.
            stored = StoredSession(stored.previous, stored.version)
        if await self._past_limit(key, message, to, stored.session, arrival.settings, seen):
            return "limited"
        previous, ctx = await self._context(tx, key, message, stored.session, arrival, seen)
        decision = bot.handle(previous, message, ctx)
        replies = list(decision.replies)
        session = decision.session
        for action in decision.actions:
            follow = await self._act(tx, key, message, action, session, ctx, opted_in, customer)
            if follow is not None:
                session = follow.session
                replies.extend(follow.replies)
                for watch in follow.actions:
                    if isinstance(watch, bot.WatchRestock):
                        await self._restock(tx, key, watch)
        if not ctx.blocked:
            await self._sync_draft(tx, key, message, stored.session, session, ctx)
            had_cart = bool(stored.session and stored.session.cart)
            await self._abandoned_cart(tx, key, session, had_cart=had_cart)
        before = stored.session.state if stored.session else bot.State.GREETING
        if before is not session.state:
            metrics.TRANSITIONS.labels(before.value, session.state.value).inc()
        # a language chosen in this message speaks already (its menu prompt too)
        chosen = [a.locale for a in decision.actions if isinstance(a, bot.SetLocale)]
        locale = chosen[-1] if chosen else ctx.locale
        for n, reply in enumerate(replies):
            await self._send(message, to, n, reply, locale)
        saved = await self.sessions.save(
            key,
            session,
            expected_version=stored.version,
            message_id=message.provider_message_id,
            previous=stored.session,
        )
        if not saved:
            raise SessionConflict(str(key), expected_version=stored.version)
        return "handled"
