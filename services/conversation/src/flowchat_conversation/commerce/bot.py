"""The commerce bot as a pure state machine: ``(session, message, context) → decision``.

No I/O here. The service loads the session and the catalog, calls :func:`handle`,
carries out the decision's actions (orders, opt-outs, hand-off) in its transaction,
feeds action results back through :func:`after_order`, and publishes the replies.

::

    GREETING ──any message──▶ BROWSING_PRODUCTS ──category──▶ ADDING_TO_CART
        (welcome + categories)      │   ▲                        │ product
                                    │   └──────── edit ───────┐  ▼
                 free text order ───┤                 COLLECTING_QUANTITY
                 (ambiguous) ──▶ CONFIRMING_ITEMS      number │
                                    └──────────────▶ REVIEWING_ORDER ◀─┘
                                                   confirm │   cancel → BROWSING_PRODUCTS
                                                           ▼
                              AWAITING_PAYMENT ──payment ref──▶ PAYMENT_CONFIRMATION
                                                        (tenant marks paid) ──▶ ORDER_COMPLETE

A returning customer (a new or expired session) is greeted by name and offered their
last order again (button ``reorder`` → the cart refilled, capped to stock → review).
Events from the tenant side come in through :func:`payment_confirmed`,
:func:`order_cancelled`, :func:`notice` and :func:`released` (hand-off over).

Words that work in every state (the whole message, any case): ``menu``, ``cart``,
``cancel``, ``help``, ``agent`` (hand-off: the bot stays quiet until released),
``STOP`` / ``START`` (marketing opt-out / opt-in). Input that does not fit the state
(a sticker, a voice note, a word where a number is expected) gets a hint and leaves
the state as it was.

A **blocked** contact (the tenant set the contact's status to ``blocked``) gets no
answer at all; only ``STOP`` / ``START`` still take effect (an opt-out is always
honoured), silently. Asking for a product that is out of stock emits
:class:`WatchRestock` when the tenant's restock alerts are on (the service schedules a
``restock`` reminder) and says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flowchat_contracts import (
    ButtonsContent,
    InboundMessage,
    InboundMessageV2,
    ListContent,
    ListRow,
    ListSection,
    MediaContent,
    OutboundContent,
    ReplyButton,
    TextContent,
)
from flowchat_conversation.commerce.domain import (
    BotSettings,
    Product,
    Totals,
    totals_for,
)
from flowchat_conversation.commerce.i18n import (
    SUPPORTED,
    Tr,
    keyword_of,
    language_of,
    remove_words,
    tr,
)
from flowchat_conversation.commerce.orders import invoice_id_for, invoice_text
from flowchat_conversation.commerce.parser import ParsedLine, parse_order_text
from flowchat_conversation.commerce.render import Menu, menu_of, resolve

#: An inbound message of either version (v2: a customer known only by a BSUID).
AnyInbound = InboundMessage | InboundMessageV2

MAX_QUANTITY = 10_000
LIST_ROWS = 10
PAGE_ROWS = LIST_ROWS - 1  # one row is kept for "More…"


class State(StrEnum):
    GREETING = "GREETING"
    BROWSING_PRODUCTS = "BROWSING_PRODUCTS"
    ADDING_TO_CART = "ADDING_TO_CART"
    COLLECTING_QUANTITY = "COLLECTING_QUANTITY"
    CONFIRMING_ITEMS = "CONFIRMING_ITEMS"
    REVIEWING_ORDER = "REVIEWING_ORDER"
    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    PAYMENT_CONFIRMATION = "PAYMENT_CONFIRMATION"
    ORDER_COMPLETE = "ORDER_COMPLETE"


class CartLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    sku: str
    name: str
    unit_price: Decimal
    quantity: int


class PendingItem(BaseModel):
    """A typed line whose product is ambiguous, waiting for the customer to pick."""

    model_config = ConfigDict(frozen=True)

    text: str
    quantity: int | None
    candidates: list[tuple[str, str]]  # (sku, name)


class Session(BaseModel):
    """One conversation's state, kept in Redis (versioned by the store)."""

    model_config = ConfigDict(frozen=True)

    state: State = State.GREETING
    cart: list[CartLine] = Field(default_factory=list)
    category: str | None = None
    pending_sku: str | None = None
    pending: list[PendingItem] = Field(default_factory=list)
    order_id: str | None = None
    payment_reference: str | None = None
    handoff: bool = False
    last_message_id: str | None = None
    last_inbound_at: datetime | None = None
    #: The options offered last (``(reply id, label)``, numbered from 1): a typed
    #: answer naming one (its number, its label, a misspelling) counts as choosing it.
    menu: Menu = Field(default_factory=list)
    #: The channel the customer last wrote on (``InboundMessage.provider``): what the
    #: tenant's own notifications (order updates, payment links) are rendered for.
    channel: str = "meta"


# --------------------------------------------------------------------- actions


@dataclass(frozen=True)
class OptOut:
    pass


@dataclass(frozen=True)
class OptIn:
    pass


@dataclass(frozen=True)
class Handoff:
    pass


@dataclass(frozen=True)
class PlaceOrder:
    lines: tuple[CartLine, ...]


@dataclass(frozen=True)
class ClaimPayment:
    order_id: str
    reference: str


@dataclass(frozen=True)
class CancelOrder:
    order_id: str
    reason: str


@dataclass(frozen=True)
class WatchRestock:
    """The customer asked for a product that is out of stock: tell them when it is back."""

    sku: str
    name: str


@dataclass(frozen=True)
class SetLocale:
    """The customer chose a language: remember it for them (``contacts.locale``)."""

    locale: str


Action = (
    OptOut | OptIn | Handoff | PlaceOrder | ClaimPayment | CancelOrder | WatchRestock | SetLocale
)


@dataclass(frozen=True)
class OrderPlaced:
    order_id: str
    payment_reference: str
    totals: Totals
    #: ``(name, quantity, unit price)`` as priced from the catalog when placed.
    lines: tuple[tuple[str, int, Decimal], ...] = ()
    invoice_id: str | None = None
    due_at: datetime | None = None
    #: Where the customer downloads the invoice PDF (set by the service).
    invoice_url: str | None = None
    #: The invoice's printed number (the tenant's gapless sequence).
    invoice_number: str | None = None
    #: The provider's payment page (sent as a CTA-URL button; set by the service).
    payment_url: str | None = None


@dataclass(frozen=True)
class OrderRejected:
    #: (sku, name, units still available) of every line that could not be reserved.
    shortages: tuple[tuple[str, str, int], ...]


OrderResult = OrderPlaced | OrderRejected


@dataclass(frozen=True)
class BotContext:
    settings: BotSettings
    catalog: Sequence[Product]
    customer_name: str | None = None
    returning: bool = False
    #: ``(sku, quantity)`` of the customer's last order (offered again on greeting).
    last_order: tuple[tuple[str, int], ...] = ()
    #: The tenant blocked this contact: no answers (STOP / START still count).
    blocked: bool = False
    #: Offer a message when an out-of-stock product is back (a ``restock`` reminder).
    restock_alerts: bool = False
    #: The customer's language (their choice, else the tenant's default).
    locale: str = "en"

    @property
    def tr(self) -> Tr:
        return tr(self.locale)

    def name_of(self, product: Product) -> str:
        """The product's name in the customer's language (the catalog's translation)."""
        return product.name_in(self.locale)

    def product(self, sku: str) -> Product | None:
        return next((p for p in self.catalog if p.sku == sku and p.available), None)

    def categories(self) -> list[str]:
        return sorted({p.category for p in self.catalog if p.available}, key=str.casefold)

    def in_category(self, category: str) -> list[Product]:
        return sorted(
            (p for p in self.catalog if p.available and p.category == category),
            key=lambda p: p.name.casefold(),
        )


@dataclass
class Decision:
    session: Session
    replies: list[OutboundContent] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)


# --------------------------------------------------------------------- entry points

_OPT_WORDS = {"stop", "start"}
_NUMBER = re.compile(r"^\s*(-?\d{1,12})\s*$")
_BIG_NUMBER = re.compile(r"^\s*-?\d{13,}\s*$")
_PAYMENT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-_/#.]{3,63}$")


def keyword(message: AnyInbound) -> str | None:
    if message.type != "text" or not message.text:
        return None
    word = message.text.strip().strip("!.?").casefold()
    if word in _OPT_WORDS:
        return word
    return keyword_of(message.text)  # menu, cart, cancel, help, agent, language: any language


def handle(session: Session | None, message: AnyInbound, ctx: BotContext) -> Decision:
    """Decide the replies and actions for one inbound message."""
    return _remember_menu(session, _handle(session, message, ctx))


def _remember_menu(before: Session | None, decision: Decision) -> Decision:
    """The session keeps the options of the last list or buttons sent; replies without
    options keep the previous ones while the state stays, and drop them when it moves."""
    menus = [m for m in (menu_of(reply) for reply in decision.replies) if m is not None]
    session = decision.session
    if menus:
        decision.session = session.model_copy(update={"menu": menus[-1]})
    elif before is None or before.state is not session.state:
        decision.session = session.model_copy(update={"menu": []})
    return decision


def _handle(session: Session | None, message: AnyInbound, ctx: BotContext) -> Decision:
    previous = session or Session()
    current = previous.model_copy(
        update={
            "last_message_id": message.provider_message_id,
            "last_inbound_at": max_dt(previous.last_inbound_at, message.timestamp),
            "channel": message.provider,
        }
    )
    word = keyword(message)
    if ctx.blocked:
        silent: list[Action] = []
        if word == "stop":
            silent.append(OptOut())
        elif word == "start":
            silent.append(OptIn())
        return Decision(current, [], silent)
    if word in ("stop", "start"):
        return _opt(current, word, ctx)
    if current.handoff:
        return Decision(current)  # an operator has the conversation: stay quiet
    if message.type == "reaction":
        return Decision(current)
    if word is not None:
        return _keyword(current, word, ctx)
    special = _cart_or_language(current, message, ctx)
    if special is not None:
        return special
    if current.state is State.GREETING:
        return _greeting(current, ctx)
    reply_id = _reply_id(message)
    if reply_id is None and message.type == "text" and message.text and current.menu:
        reply_id = resolve(message.text, current.menu)  # "2", "confirm", "confrim"
    if reply_id is not None:
        return _on_reply(current, reply_id, ctx)
    if message.type == "text" and message.text and message.text.strip():
        return _on_text(current, message.text.strip(), ctx)
    return _hint(current, ctx, prefix=_unsupported(message, ctx))


def _cart_or_language(current: Session, message: AnyInbound, ctx: BotContext) -> Decision | None:
    """The customer's native cart (an ``order`` message), or a language named
    ("español": the customer's language from now on); None: neither."""
    if message.type == "order" and message.order is not None:
        return native_cart(current, message.order, ctx)
    chosen = language_of(message.text) if message.type == "text" and message.text else None
    return _set_language(current, chosen, ctx) if chosen is not None else None


def after_order(session: Session, result: OrderResult, ctx: BotContext) -> Decision:
    """The replies once the service tried to place the order the bot asked for."""
    return _remember_menu(session, _after_order(session, result, ctx))


def _after_order(session: Session, result: OrderResult, ctx: BotContext) -> Decision:
    t = ctx.tr
    if isinstance(result, OrderRejected):
        cart = list(session.cart)
        notes = []
        watch: list[Action] = []
        for sku, name, left in result.shortages:
            cart = [
                line.model_copy(update={"quantity": min(line.quantity, left)})
                if line.sku == sku
                else line
                for line in cart
            ]
            cart = [line for line in cart if line.quantity > 0]
            if left > 0:
                notes.append("• " + t("{name}: only {left} left", name=name, left=left))
            else:
                notes.append("• " + t("{name}: out of stock", name=name))
                if ctx.restock_alerts:
                    watch.append(WatchRestock(sku, name))
        updated = session.model_copy(update={"cart": cart})
        text = t("Sorry, some items just ran out:") + "\n" + "\n".join(notes)
        if watch:
            text += "\n" + t("I'll message you when they are back.")
        if not cart:
            updated = updated.model_copy(update={"state": State.BROWSING_PRODUCTS})
            return Decision(
                updated,
                [_text(text + "\n" + t("Your cart is now empty.")), _categories(ctx)],
                watch,
            )
        updated = updated.model_copy(update={"state": State.REVIEWING_ORDER})
        return Decision(
            updated,
            [_text(text + "\n" + t("I updated your cart.")), *_review(updated, ctx)],
            watch,
        )
    totals = result.totals
    priced = list(result.lines) or [
        (line.name, line.quantity, line.unit_price) for line in session.cart
    ]
    due_at = result.due_at or datetime.now(UTC) + timedelta(
        hours=ctx.settings.payment_timeout_hours
    )
    invoice_number = result.invoice_number or result.invoice_id or invoice_id_for(result.order_id)
    body = invoice_text(
        business_name=ctx.settings.business_name,
        order_id=result.order_id,
        invoice_number=invoice_number,
        lines=priced,
        subtotal=totals.subtotal,
        discount=totals.discount,
        tax_rate=totals.tax_rate,
        tax=totals.tax,
        total=totals.total,
        currency=totals.currency,
        payment_reference=result.payment_reference,
        due_at=due_at,
        payment_instructions=ctx.settings.payment_instructions,
        tr=t,
    )
    updated = session.model_copy(
        update={
            "state": State.AWAITING_PAYMENT,
            "cart": [],
            "order_id": result.order_id,
            "payment_reference": result.payment_reference,
        }
    )
    replies: list[OutboundContent] = [_text(body)]
    if result.invoice_url:
        replies.append(
            MediaContent(
                type="document",
                link=result.invoice_url,
                filename=f"{invoice_number}.pdf",
                caption=t(
                    "Invoice {invoice} for order {order}",
                    invoice=invoice_number,
                    order=result.order_id,
                ),
            )
        )
    return Decision(updated, replies)


def native_cart(session: Session, order: dict[str, Any], ctx: BotContext) -> Decision:
    """The customer's WhatsApp cart (an ``order`` message: ``product_items`` of
    ``product_retailer_id``, ``quantity``) becomes the cart, priced from the catalog now,
    and is offered for review (the cart's draft order follows)."""
    by_retailer = {p.retailer_id: p for p in ctx.catalog if p.available and p.retailer_id}
    cart: list[CartLine] = []
    notes: list[str] = []
    for item in order.get("product_items") or []:
        if not isinstance(item, dict):
            continue
        product = by_retailer.get(str(item.get("product_retailer_id")))
        try:
            quantity = int(item.get("quantity") or 0)
        except (TypeError, ValueError):
            quantity = 0
        if product is None:
            notes.append(
                ctx.tr("{item}: not in our catalog any more", item=item.get("product_retailer_id"))
            )
            continue
        problem = _quantity_problem(product, quantity, session, ctx)
        if problem:
            notes.append(problem)
            continue
        cart.append(
            CartLine(
                sku=product.sku,
                name=ctx.name_of(product),
                unit_price=product.price,
                quantity=quantity,
            )
        )
    updated = session.model_copy(
        update={
            "cart": cart,
            "state": State.REVIEWING_ORDER if cart else State.BROWSING_PRODUCTS,
            "pending": [],
            "pending_sku": None,
        }
    )
    head = [_text("\n".join(notes))] if notes else []
    if not cart:
        return Decision(
            updated, [*head, _text(ctx.tr("Nothing in that cart is available.")), _categories(ctx)]
        )
    return Decision(updated, [*head, *_review(updated, ctx)])


def payment_confirmed(session: Session | None, order_id: str, text: str) -> Decision:
    """The tenant marked ``order_id`` paid: complete the conversation if it is about it."""
    current = session or Session()
    if current.order_id == order_id and current.state in (
        State.AWAITING_PAYMENT,
        State.PAYMENT_CONFIRMATION,
    ):
        current = current.model_copy(update={"state": State.ORDER_COMPLETE})
    return Decision(current, [_text(text)])


def order_cancelled(session: Session | None, order_id: str, text: str) -> Decision:
    """The order was cancelled (by the tenant or for non-payment)."""
    current = session or Session()
    if current.order_id == order_id and current.state in (
        State.AWAITING_PAYMENT,
        State.PAYMENT_CONFIRMATION,
        State.ORDER_COMPLETE,
    ):
        current = current.model_copy(
            update={
                "state": State.BROWSING_PRODUCTS,
                "order_id": None,
                "payment_reference": None,
                "menu": [],
            }
        )
    return Decision(current, [_text(text)])


def notice(session: Session | None, text: str) -> Decision:
    """A message about the customer's order that leaves the conversation where it is."""
    return Decision(session or Session(), [_text(text)])


def flooded(session: Session | None, locale: str | None = None) -> Decision:
    """The customer went past the inbound limit: said once, the rest goes unanswered."""
    t = tr(locale)
    text = t("Thanks for your messages! We'll reply shortly.")
    return Decision(session or Session(), [_text(text)])


def taken_over(session: Session | None) -> Decision:
    """An agent took the conversation over in the inbox: the bot stays quiet (no reply)."""
    return Decision((session or Session()).model_copy(update={"handoff": True}))


def released(session: Session | None, business_name: str) -> Decision:
    """An operator ended the hand-off: the bot speaks again."""
    current = (session or Session()).model_copy(update={"handoff": False})
    text = (
        f"You're chatting with the {business_name} assistant again. "
        "Type menu to browse, cart to see your cart, or agent to reach a person."
    )
    return Decision(current, [_text(text)])


def max_dt(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


# --------------------------------------------------------------------- steps


def _opt(session: Session, word: str, ctx: BotContext) -> Decision:
    t = ctx.tr
    if word == "stop":
        text = t(
            "You will no longer receive marketing messages from us. Reply START to subscribe again."
        )
        return Decision(session, [_text(text)], [OptOut()])
    return Decision(session, [_text(t("You are subscribed to our updates again. 🎉"))], [OptIn()])


def _keyword(session: Session, word: str, ctx: BotContext) -> Decision:
    t = ctx.tr
    if word == "language":
        return Decision(session, [_languages(ctx)])
    if word == "help":
        return Decision(session, [_text(_help_text(session, ctx))])
    if word == "agent":
        updated = session.model_copy(update={"handoff": True})
        text = t("I'm connecting you with a person from our team. They will reply here shortly.")
        return Decision(updated, [_text(text)], [Handoff()])
    if word == "menu":
        updated = session.model_copy(
            update={"state": State.BROWSING_PRODUCTS, "pending": [], "pending_sku": None}
        )
        return Decision(updated, [_categories(ctx)])
    if word == "cart":
        if not session.cart:
            updated = session.model_copy(update={"state": State.BROWSING_PRODUCTS})
            return Decision(updated, [_categories(ctx, lead=t("Your cart is empty."))])
        updated = session.model_copy(
            update={"state": State.REVIEWING_ORDER, "pending": [], "pending_sku": None}
        )
        return Decision(updated, _review(updated, ctx))
    # cancel
    return _cancel(session, ctx)


def _cancel(session: Session, ctx: BotContext) -> Decision:
    t = ctx.tr
    actions: list[Action] = []
    text = t("Your cart is cleared.")
    if session.state is State.AWAITING_PAYMENT and session.order_id:
        actions.append(CancelOrder(session.order_id, "cancelled by the customer"))
        text = t("Order {order} is cancelled.", order=session.order_id)
    updated = Session(
        state=State.BROWSING_PRODUCTS,
        last_message_id=session.last_message_id,
        last_inbound_at=session.last_inbound_at,
    )
    # One message: what was cleared leads the category list.
    return Decision(updated, [_categories(ctx, lead=text + " " + t("Anything else?"))], actions)


def _greeting(session: Session, ctx: BotContext) -> Decision:
    t = ctx.tr
    name = ctx.customer_name
    hello = (
        t("Welcome back, {name}!", name=name)
        if ctx.returning and name
        else (t("Hello {name}!", name=name) if name else t("Hello!"))
    )
    welcome = ctx.settings.welcome_text or t(
        "Welcome to {business}.", business=ctx.settings.business_name
    )
    updated = session.model_copy(update={"state": State.BROWSING_PRODUCTS})
    again = _last_order_lines(ctx)
    if ctx.returning and again:
        summary = "\n".join(f"• {t.number(qty)} x {ctx.name_of(product)}" for product, qty in again)
        offer = ButtonsContent(
            body=_cut(
                f"{hello} {welcome}\n\n"
                + t("Last time you ordered:")
                + f"\n{summary}\n"
                + t("Would you like the same again?"),
                1024,
            ),
            buttons=[
                ReplyButton(id="reorder", title=_cut(t("Order again"), 20)),
                ReplyButton(id="menu", title=_cut(t("Browse catalog"), 20)),
            ],
        )
        return Decision(updated, [offer])
    if not ctx.categories():
        text = f"{hello} {welcome} " + t(
            "Our catalog is being updated right now; "
            "please check back soon, or type 'agent' to talk to a person."
        )
        return Decision(updated, [_text(text)])
    # One message: the greeting leads the category list (a reply costs a send, its
    # status webhooks and their events downstream).
    return Decision(updated, [_categories(ctx, lead=f"{hello} {welcome}")])


def _last_order_lines(ctx: BotContext) -> list[tuple[Product, int]]:
    """The last order's products still on sale, with their quantities."""
    out = []
    for sku, qty in ctx.last_order:
        product = ctx.product(sku)
        if product is not None and qty > 0:
            out.append((product, qty))
    return out


def _reorder(session: Session, ctx: BotContext) -> Decision:
    if session.state in (State.AWAITING_PAYMENT, State.PAYMENT_CONFIRMATION):
        return _hint(session, ctx, prefix=ctx.tr("Let's finish your current order first."))
    again = _last_order_lines(ctx)
    if not again:
        return _hint(
            session.model_copy(update={"state": State.BROWSING_PRODUCTS}),
            ctx,
            prefix=ctx.tr("Sorry, the products of your last order are no longer available."),
        )
    notes: list[str] = []
    watch: list[Action] = []
    updated = session.model_copy(update={"pending": [], "pending_sku": None})
    for product, wanted in again:
        if product.stock <= 0:
            note, actions = _out_of_stock(product, ctx)
            notes.append("• " + note)
            watch.extend(actions)
            continue
        qty = min(wanted, product.stock)
        if qty < wanted:
            notes.append(
                "• "
                + ctx.tr(
                    "Only {left} of {name} left; I added those.",
                    left=ctx.tr.number(product.stock),
                    name=ctx.name_of(product),
                )
            )
        updated, note = _add(updated, product, qty, ctx)
        notes.append("• " + note)
    return _continue(updated, ctx, notes, watch)


def _on_reply(session: Session, reply_id: str, ctx: BotContext) -> Decision:
    kind, _, arg = reply_id.partition(":")
    if kind == "reorder":
        return _reorder(session, ctx)
    if kind == "lang" and arg in SUPPORTED:
        return _set_language(session, arg, ctx)
    if kind == "menu":
        return _keyword(session, "menu", ctx)
    if kind == "cats" and arg.isdigit():
        return Decision(
            session.model_copy(update={"state": State.BROWSING_PRODUCTS}),
            [_categories(ctx, page=int(arg))],
        )
    if kind == "cat":
        page_s, _, category = arg.partition(":")
        products = ctx.in_category(category)
        if not page_s.isdigit() or not products:
            return _hint(session, ctx, prefix=ctx.tr("That category is no longer available."))
        updated = session.model_copy(update={"state": State.ADDING_TO_CART, "category": category})
        return Decision(updated, [_products(ctx, category, int(page_s))])
    if kind == "prod":
        product = ctx.product(arg)
        if product is None:
            return _hint(session, ctx, prefix=ctx.tr("Sorry, that product is no longer available."))
        if product.stock <= 0:
            note, watch = _out_of_stock(product, ctx)
            decision = _hint(session, ctx, prefix=note)
            decision.actions.extend(watch)
            return decision
        updated = session.model_copy(
            update={"state": State.COLLECTING_QUANTITY, "pending_sku": product.sku}
        )
        return Decision(updated, [_text(_ask_quantity(product, ctx))])
    if kind == "pick" and session.state is State.CONFIRMING_ITEMS and session.pending:
        return _on_pick(session, arg, ctx)
    if kind == "review" and session.state is State.REVIEWING_ORDER:
        return _on_review(session, arg, ctx)
    return _hint(session, ctx, prefix=ctx.tr("That option has expired."))


def _on_review(session: Session, arg: str, ctx: BotContext) -> Decision:
    if arg == "confirm":
        if not session.cart:
            return _keyword(session, "cart", ctx)
        return Decision(session, [], [PlaceOrder(tuple(session.cart))])
    if arg == "edit":
        updated = session.model_copy(update={"state": State.BROWSING_PRODUCTS})
        text = ctx.tr(
            "Your cart is kept. Pick more products, type a new quantity like "
            "'Cement x 5' to change one, or 'remove cement' to drop it. Type 'cart' "
            "to review again."
        )
        return Decision(updated, [_categories(ctx, lead=text)])
    if arg == "cancel":
        return _cancel(session, ctx)
    return _hint(session, ctx, prefix=ctx.tr("That option has expired."))


def _on_pick(session: Session, sku: str, ctx: BotContext) -> Decision:
    item, rest = session.pending[0], session.pending[1:]
    updated = session.model_copy(update={"pending": rest})
    notes: list[str] = []
    if sku != "-":
        product = ctx.product(sku)
        if product is None:
            notes.append(ctx.tr("Sorry, that product is no longer available."))
        elif item.quantity is None:
            updated = updated.model_copy(
                update={"state": State.COLLECTING_QUANTITY, "pending_sku": product.sku}
            )
            return Decision(updated, [_text(_ask_quantity(product, ctx))])
        else:
            updated, note = _add(updated, product, item.quantity, ctx)
            notes.append(note)
    else:
        notes.append(ctx.tr("OK, I skipped “{text}”.", text=item.text))
    return _continue(updated, ctx, notes)


def _on_text(session: Session, text: str, ctx: BotContext) -> Decision:
    state = session.state
    if state is State.COLLECTING_QUANTITY and session.pending_sku:
        product = ctx.product(session.pending_sku)
        m = _NUMBER.match(text)
        if product is None:
            updated = session.model_copy(
                update={"state": State.BROWSING_PRODUCTS, "pending_sku": None}
            )
            return _hint(updated, ctx, prefix=ctx.tr("Sorry, that product is no longer available."))
        if m is None and _BIG_NUMBER.match(text):
            return Decision(
                session,
                [_text(_quantity_problem(product, MAX_QUANTITY + 1, session, ctx) or "")],
            )
        if m is None:
            return _hint(session, ctx, prefix=ctx.tr("I need a number."))
        quantity = int(m.group(1))
        if product.stock <= 0:
            note, watch = _out_of_stock(product, ctx)
            return Decision(session, [_text(note)], watch)
        problem = _quantity_problem(product, quantity, session, ctx)
        if problem:
            return Decision(session, [_text(problem)])
        updated, note = _add(
            session.model_copy(update={"pending_sku": None}), product, quantity, ctx
        )
        return _continue(updated, ctx, [note])
    if state is State.AWAITING_PAYMENT and session.order_id:
        if _PAYMENT_REF.match(text) and any(c.isdigit() for c in text):
            updated = session.model_copy(update={"state": State.PAYMENT_CONFIRMATION})
            reply = ctx.tr(
                "Thank you! We received your payment confirmation {reference} for order "
                "{order}. We'll let you know as soon as it is verified.",
                reference=text,
                order=session.order_id,
            )
            return Decision(updated, [_text(reply)], [ClaimPayment(session.order_id, text)])
        return _hint(session, ctx)
    if state in (State.PAYMENT_CONFIRMATION, State.ORDER_COMPLETE):
        return _hint(session, ctx)
    removal = _REMOVE.match(text)
    if removal and session.cart:
        return _remove(session, removal.group(1), ctx)
    lines = parse_order_text(text, _names(ctx))
    if not lines or all(line.status == "unknown" for line in lines):
        return _hint(session, ctx, prefix=ctx.tr("Sorry, I didn't find that in our catalog."))
    return _apply_lines(session, lines, ctx)


def _apply_lines(session: Session, lines: list[ParsedLine], ctx: BotContext) -> Decision:
    notes: list[str] = []
    watch: list[Action] = []
    pending: list[PendingItem] = []
    updated = session
    for line in lines:
        if line.status == "unknown":
            notes.append(
                "• " + ctx.tr("I couldn't find “{query}” in our catalog.", query=line.query)
            )
            continue
        if line.status == "ambiguous":
            pending.append(
                PendingItem(
                    text=line.query,
                    quantity=line.quantity,
                    candidates=[(c.sku, _display(ctx, c.sku, c.name)) for c in line.candidates][
                        :PAGE_ROWS
                    ],
                )
            )
            continue
        best = line.best
        product = ctx.product(best.sku) if best else None
        if product is None:
            continue
        quantity = line.quantity if line.quantity is not None else 1
        if product.stock <= 0 and quantity >= 1:
            note, actions = _out_of_stock(product, ctx)
            notes.append("• " + note)
            watch.extend(actions)
            continue
        problem = _quantity_problem(product, quantity, updated, ctx)
        if problem:
            notes.append("• " + problem)
            continue
        updated, note = _add(updated, product, quantity, ctx)
        notes.append("• " + note)
    updated = updated.model_copy(update={"pending": [*pending, *updated.pending]})
    return _continue(updated, ctx, notes, watch)


def _out_of_stock(product: Product, ctx: BotContext) -> tuple[str, list[Action]]:
    """The note for a product that is out of stock, and the restock watch when offered."""
    text = ctx.tr("Sorry, {name} is out of stock.", name=ctx.name_of(product))
    if not ctx.restock_alerts:
        return text, []
    return text + " " + ctx.tr("I'll message you when it's back."), [
        WatchRestock(product.sku, product.name)
    ]


def _continue(
    session: Session, ctx: BotContext, notes: list[str], actions: Sequence[Action] = ()
) -> Decision:
    """After items were added or skipped: ask about the next ambiguous one, or review."""
    decision = _next_step(session, ctx, notes)
    decision.actions.extend(actions)
    return decision


def _next_step(session: Session, ctx: BotContext, notes: list[str]) -> Decision:
    replies: list[OutboundContent] = []
    if notes:
        replies.append(_text("\n".join(notes)))
    if session.pending:
        item = session.pending[0]
        rows = [ListRow(id=f"pick:{sku}", title=_cut(name, 24)) for sku, name in item.candidates]
        rows.append(ListRow(id="pick:-", title=_cut(ctx.tr("None of these"), 24)))
        qty = f"{item.quantity} x " if item.quantity else ""
        replies.append(
            ListContent(
                body=ctx.tr(
                    "Which product did you mean by “{text}”?", text=f"{qty}{_cut(item.text, 200)}"
                ),
                button=_cut(ctx.tr("Choose product"), 20),
                sections=[ListSection(rows=rows)],
            )
        )
        return Decision(
            session.model_copy(update={"state": State.CONFIRMING_ITEMS, "pending_sku": None}),
            replies,
        )
    if not session.cart:
        updated = session.model_copy(update={"state": State.BROWSING_PRODUCTS})
        return Decision(updated, [*replies, _categories(ctx)])
    updated = session.model_copy(update={"state": State.REVIEWING_ORDER})
    return Decision(updated, [*replies, *_review(updated, ctx)])


def _remove(session: Session, query: str, ctx: BotContext) -> Decision:
    names = [(line.sku, line.name) for line in session.cart] + [
        (line.sku, _line_name(ctx, line)) for line in session.cart
    ]
    lines = parse_order_text(query, names)
    target = lines[0].best.sku if lines and lines[0].status == "matched" and lines[0].best else None
    if target is None:
        return Decision(
            session, [_text(ctx.tr("I couldn't find “{query}” in your cart.", query=query))]
        )
    removed = next(line for line in session.cart if line.sku == target)
    cart = [line for line in session.cart if line.sku != target]
    updated = session.model_copy(update={"cart": cart})
    return _continue(
        updated, ctx, [ctx.tr("Removed {name} from your cart.", name=_line_name(ctx, removed))]
    )


def _add(session: Session, product: Product, quantity: int, ctx: BotContext) -> tuple[Session, str]:
    """Set the cart quantity of ``product`` (typing a product again replaces its quantity)."""
    cart = [line for line in session.cart if line.sku != product.sku]
    cart.append(
        CartLine(
            sku=product.sku,
            name=ctx.name_of(product),
            unit_price=product.price,
            quantity=quantity,
        )
    )
    note = ctx.tr(
        "Added {quantity} x {name} to your cart.",
        quantity=ctx.tr.number(quantity),
        name=ctx.name_of(product),
    )
    return session.model_copy(update={"cart": cart}), note


def _quantity_problem(
    product: Product, quantity: int, session: Session, ctx: BotContext
) -> str | None:
    t = ctx.tr
    name = ctx.name_of(product)
    if quantity < 1:
        return t("The quantity must be at least 1.")
    if quantity > MAX_QUANTITY:
        return t(
            "That's more than we can take in one order (at most {most}).",
            most=t.number(MAX_QUANTITY),
        )
    if product.stock <= 0:
        return t("Sorry, {name} is out of stock.", name=name)
    if quantity > product.stock:
        return t(
            "We only have {left} of {name} left. Type a smaller quantity.",
            left=t.number(product.stock),
            name=name,
        )
    return None


# --------------------------------------------------------------------- replies


def _text(body: str) -> TextContent:
    return TextContent(body=_cut(body, 4096))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _categories(ctx: BotContext, page: int = 0, *, lead: str = "") -> OutboundContent:
    """The category list; ``lead`` (a greeting, what was just done) opens its body: one
    message, not two (a reply costs a send, its status webhooks and their events)."""
    categories = ctx.categories()
    if not categories:
        empty = ctx.tr("Our catalog is empty right now. Type 'agent' to talk to a person.")
        return _text(f"{lead}\n\n{empty}" if lead else empty)
    rows = _paged(
        [ListRow(id=f"cat:0:{c}"[:200], title=_cut(c, 24)) for c in categories],
        page,
        more_id=f"cats:{page + 1}",
        more=ctx.tr("More…"),
    )
    browse = ctx.tr("Browse our catalog by category, or type what you need (e.g. “Cement x 10”).")
    return ListContent(
        body=f"{_cut(lead, 1020 - len(browse))}\n\n{browse}" if lead else browse,
        button=_cut(ctx.tr("View categories"), 20),
        sections=[ListSection(title=_cut(ctx.tr("Categories"), 24), rows=rows)],
    )


def _products(ctx: BotContext, category: str, page: int) -> ListContent:
    products = ctx.in_category(category)
    rows = _paged(
        [
            ListRow(
                id=f"prod:{p.sku}",
                title=_cut(ctx.name_of(p), 24),
                description=_cut(
                    ctx.tr.money(p.price, p.currency)
                    + ("" if p.stock > 0 else " · " + ctx.tr("out of stock"))
                    + (
                        f" · {p.description_in(ctx.locale)}" if p.description_in(ctx.locale) else ""
                    ),
                    72,
                ),
            )
            for p in products
        ],
        page,
        more_id=f"cat:{page + 1}:{category}"[:200],
        more=ctx.tr("More…"),
    )
    return ListContent(
        body=ctx.tr("{category}: choose a product.", category=_cut(category, 100)),
        button=_cut(ctx.tr("View products"), 20),
        sections=[ListSection(title=_cut(category, 24), rows=rows)],
    )


def _paged(rows: list[ListRow], page: int, *, more_id: str, more: str = "More…") -> list[ListRow]:
    if len(rows) <= LIST_ROWS and page == 0:
        return rows
    chunk = rows[page * PAGE_ROWS : (page + 1) * PAGE_ROWS] or rows[:PAGE_ROWS]
    if (page + 1) * PAGE_ROWS < len(rows):
        chunk.append(ListRow(id=more_id, title=_cut(more, 24)))
    return chunk


def _ask_quantity(product: Product, ctx: BotContext) -> str:
    return ctx.tr(
        "{name}: {price} each, {stock} in stock. How many would you like? Type a number, like 3.",
        name=ctx.name_of(product),
        price=ctx.tr.money(product.price, product.currency),
        stock=ctx.tr.number(product.stock),
    )


def cart_totals(session: Session, ctx: BotContext) -> Totals:
    return totals_for([(line.unit_price, line.quantity) for line in session.cart], ctx.settings)


def _review(session: Session, ctx: BotContext) -> list[OutboundContent]:
    t = ctx.tr
    totals = cart_totals(session, ctx)
    cur = totals.currency
    lines = "\n".join(
        f"• {t.number(line.quantity)} x {_line_name(ctx, line)}: "
        f"{t.money(line.unit_price * line.quantity, cur)}"
        for line in session.cart
    )
    rate = t.number((ctx.settings.tax_rate * 100).normalize())
    summary = (
        t("Your order:")
        + f"\n{lines}\n"
        + t("Subtotal: {amount}", amount=t.money(totals.subtotal, cur))
        + "\n"
        + (
            t("Discount: -{amount}", amount=t.money(totals.discount, cur)) + "\n"
            if totals.discount
            else ""
        )
        + (
            t("Tax ({rate}%): {amount}", rate=rate, amount=t.money(totals.tax, cur)) + "\n"
            if totals.tax
            else ""
        )
        + t("Total: {amount}", amount=t.money(totals.total, cur))
    )
    buttons = [
        ReplyButton(id="review:confirm", title=_cut(t("Confirm"), 20)),
        ReplyButton(id="review:edit", title=_cut(t("Edit"), 20)),
        ReplyButton(id="review:cancel", title=_cut(t("Cancel"), 20)),
    ]
    if len(summary) <= 1024:
        return [ButtonsContent(body=summary, buttons=buttons)]
    return [_text(summary), ButtonsContent(body=t("Confirm this order?"), buttons=buttons)]


def _reply_id(message: AnyInbound) -> str | None:
    if message.type in ("interactive", "button") and message.reply is not None:
        return message.reply.id
    return None


def _unsupported(message: AnyInbound, ctx: BotContext) -> str:
    t = ctx.tr
    kinds: dict[str, str] = {
        "sticker": t("Sorry, I can't read stickers."),
        "audio": t("Sorry, I can't read voice notes."),
        "image": t("Sorry, I can't read pictures."),
        "video": t("Sorry, I can't read videos."),
        "document": t("Sorry, I can't read documents."),
        "location": t("Sorry, I can't read locations."),
        "contacts": t("Sorry, I can't read contact cards."),
    }
    return kinds.get(message.type) or t("Sorry, I can't read this kind of message.")


def _hint_text(session: Session, ctx: BotContext) -> str:
    t = ctx.tr
    state = session.state
    if state is State.COLLECTING_QUANTITY and session.pending_sku:
        product = ctx.product(session.pending_sku)
        name = ctx.name_of(product) if product else t("that product")
        return t("How many {name} would you like? Type a number, like 3.", name=name)
    if state is State.CONFIRMING_ITEMS:
        return t("Please choose the product you meant from the list.")
    if state is State.REVIEWING_ORDER:
        return t("Tap Confirm, Edit or Cancel below your order.")
    if state is State.AWAITING_PAYMENT:
        return t(
            "Order {order} is waiting for payment (reference {reference}). "
            "Send your payment confirmation number once paid, or type cancel.",
            order=session.order_id,
            reference=session.payment_reference,
        )
    if state is State.PAYMENT_CONFIRMATION:
        return t(
            "We're verifying your payment for order {order}. Type menu to keep shopping.",
            order=session.order_id,
        )
    if state is State.ORDER_COMPLETE:
        return t("Your order is complete. Type menu to shop again.")
    return t("Pick a category from the list, or type what you need, like “Cement x 10”.")


def _hint(session: Session, ctx: BotContext, *, prefix: str | None = None) -> Decision:
    body = f"{prefix} {_hint_text(session, ctx)}" if prefix else _hint_text(session, ctx)
    body += " " + ctx.tr("Type help for options.")
    return Decision(session, [_text(body)])


def _help_text(session: Session, ctx: BotContext) -> str:
    t = ctx.tr
    return (
        t("{business} — how this chat works:", business=ctx.settings.business_name)
        + "\n"
        + t("• menu: browse the catalog")
        + "\n"
        + t("• type an order like “Cement x 10, sand 2 bags”")
        + "\n"
        + t("• cart: review your order")
        + "\n"
        + t("• cancel: clear your cart")
        + "\n"
        + t("• agent: talk to a person")
        + "\n"
        + t("• language: choose your language")
        + "\n"
        + t("• STOP / START: marketing messages off / on")
        + "\n\n"
        + _hint_text(session, ctx)
    )


# --------------------------------------------------------------------- languages

_REMOVE = re.compile(
    r"^\s*(?:"
    + "|".join(sorted(map(re.escape, remove_words()), key=len, reverse=True))
    + r")\s+(.+)$",
    re.IGNORECASE,
)


def _languages(ctx: BotContext) -> ListContent:
    """The language menu (each language named in itself)."""
    rows = [ListRow(id=f"lang:{code}", title=name) for code, name in SUPPORTED.items()]
    return ListContent(
        body=ctx.tr("Choose your language."),
        button=_cut(ctx.tr("Languages"), 20),
        sections=[ListSection(rows=rows)],
    )


#: States a language change leaves as they are (an order waiting for payment, a quantity
#: or a product choice asked for).
_KEEP_ON_LANGUAGE = frozenset(
    {
        State.AWAITING_PAYMENT,
        State.PAYMENT_CONFIRMATION,
        State.ORDER_COMPLETE,
        State.COLLECTING_QUANTITY,
        State.CONFIRMING_ITEMS,
    }
)


def _set_language(session: Session, lang: str, ctx: BotContext) -> Decision:
    """Speak ``lang`` from now on (remembered for the customer), then carry on."""
    now = replace(ctx, locale=lang)
    text = now.tr("OK, I'll speak {language} with you.", language=SUPPORTED[lang])
    if session.state in _KEEP_ON_LANGUAGE:  # mid-step: say where we are, in the new language
        return Decision(session, [_text(f"{text} {_hint_text(session, now)}")], [SetLocale(lang)])
    follow = _next_step(session, now, [text]) if session.cart else None
    if follow is not None:
        follow.actions.insert(0, SetLocale(lang))
        return follow
    updated = session.model_copy(update={"state": State.BROWSING_PRODUCTS})
    return Decision(updated, [_text(text), _categories(now)], [SetLocale(lang)])


def _names(ctx: BotContext) -> list[tuple[str, str]]:
    """``(sku, name)`` to match typed orders against: each product's own name and its
    name in the customer's language."""
    out: list[tuple[str, str]] = []
    for p in ctx.catalog:
        if not p.available:
            continue
        out.append((p.sku, p.name))
        local = ctx.name_of(p)
        if local != p.name:
            out.append((p.sku, local))
    return out


def _display(ctx: BotContext, sku: str, name: str) -> str:
    product = ctx.product(sku)
    return ctx.name_of(product) if product else name


def _line_name(ctx: BotContext, line: CartLine) -> str:
    return _display(ctx, line.sku, line.name)
