from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

from flowchat_contracts import (
    ButtonsContent,
    InboundMessage,
    ListContent,
    Reply,
    TextContent,
)
from flowchat_conversation.commerce import bot
from flowchat_conversation.commerce.bot import State
from flowchat_conversation.commerce.domain import BotSettings, Product, Totals

_ids = count()


def text_of(content: Any) -> str:
    body: str = content.body
    return body


T0 = datetime(2025, 1, 1, tzinfo=UTC)


def product(sku, name, category, price="10.00", stock=100, **kw):
    return Product(
        sku=sku,
        name=name,
        price=Decimal(price),
        currency="USD",
        category=category,
        stock=stock,
        **kw,
    )


CATALOG = [
    product("CEM", "Portland Cement", "Building", "12.50", stock=500),
    product("SND-R", "River Sand", "Building", "3.00"),
    product("SND-S", "Sharp Sand", "Building", "3.20"),
    product("NAIL", "Steel Nails", "Hardware", "0.10", stock=5),
    product("OLD", "Old Stock", "Hardware", stock=0),
]
CTX = bot.BotContext(
    settings=BotSettings(business_name="Acme Supplies", tax_rate=Decimal("0.10")),
    catalog=CATALOG,
    customer_name="Ada",
)


def msg(text=None, *, reply=None, type_=None):
    n = next(_ids)
    return InboundMessage(
        tenant_id="t1",
        account_id="a1",
        provider="meta",
        provider_message_id=f"wamid.{n}",
        phone_number_id="pn1",
        customer_wa_id="15550001111",
        type=type_ or ("interactive" if reply else "text"),
        timestamp=T0 + timedelta(seconds=n),
        text=text,
        reply=Reply(id=reply, title="x") if reply else None,
    )


def play(session, *messages, ctx=CTX):
    decision = None
    for m in messages:
        decision = bot.handle(session, m, ctx)
        session = decision.session
    return decision


def test_first_message_greets_by_business_name_and_lists_categories_in_one_message():
    d = bot.handle(None, msg("hi"), CTX)
    assert d.session.state is State.BROWSING_PRODUCTS
    (menu,) = d.replies
    assert isinstance(menu, ListContent)
    assert menu.body.startswith("Hello Ada! ")
    assert "Acme Supplies" in menu.body
    assert menu.body.endswith(
        "Browse our catalog by category, or type what you need (e.g. “Cement x 10”)."
    )
    assert [r.title for r in menu.sections[0].rows] == ["Building", "Hardware"]


def test_a_long_welcome_text_is_cut_and_the_list_keeps_its_instructions():
    ctx = bot.BotContext(
        settings=BotSettings(welcome_text="w" * 1000), catalog=CATALOG, customer_name="A" * 100
    )
    (menu,) = bot.handle(None, msg("hi"), ctx).replies
    assert isinstance(menu, ListContent)
    assert len(menu.body) <= 1024
    assert "…\n\nBrowse our catalog" in menu.body


def test_default_business_name_and_returning_customer():
    ctx = bot.BotContext(
        settings=BotSettings(), catalog=CATALOG, customer_name="Bo", returning=True
    )
    text = bot.handle(None, msg("hello"), ctx).replies[0]
    assert isinstance(text, ListContent)
    assert "our shop" in text.body
    assert "Welcome back, Bo" in text.body


def test_empty_catalog_greeting_is_text_only():
    ctx = bot.BotContext(settings=BotSettings(), catalog=[])
    d = bot.handle(None, msg("hi"), ctx)
    assert len(d.replies) == 1
    assert isinstance(d.replies[0], TextContent)


def test_many_categories_fit_whatsapp_list_limits():
    catalog = [
        product(f"P{i}", f"Product {i}", f"Category number {i:02d} long name") for i in range(25)
    ]
    ctx = bot.BotContext(settings=BotSettings(), catalog=catalog)
    (menu,) = bot.handle(None, msg("hi"), ctx).replies
    assert isinstance(menu, ListContent)
    rows = menu.sections[0].rows
    assert len(rows) == 10
    assert rows[-1].id == "cats:1"
    assert all(len(r.title) <= 24 for r in rows)
    d = bot.handle(bot.Session(state=State.BROWSING_PRODUCTS), msg(reply="cats:2"), ctx)
    last_page = d.replies[0]
    assert isinstance(last_page, ListContent)
    last_rows = last_page.sections[0].rows
    assert len(last_rows) == 7
    assert not any(r.id.startswith("cats:") for r in last_rows)


def test_browse_choose_quantity_review():
    s = bot.handle(None, msg("hi"), CTX).session
    d = bot.handle(s, msg(reply="cat:0:Building"), CTX)
    assert d.session.state is State.ADDING_TO_CART
    products = d.replies[0]
    assert isinstance(products, ListContent)
    assert [r.id for r in products.sections[0].rows] == ["prod:CEM", "prod:SND-R", "prod:SND-S"]
    d = bot.handle(d.session, msg(reply="prod:CEM"), CTX)
    assert d.session.state is State.COLLECTING_QUANTITY
    assert d.session.pending_sku == "CEM"
    d = bot.handle(d.session, msg("4"), CTX)
    assert d.session.state is State.REVIEWING_ORDER
    assert d.session.cart == [
        bot.CartLine(sku="CEM", name="Portland Cement", unit_price=Decimal("12.50"), quantity=4)
    ]
    review = d.replies[-1]
    assert isinstance(review, ButtonsContent)
    assert [b.title for b in review.buttons] == ["Confirm", "Edit", "Cancel"]
    assert "50.00 USD" in review.body
    assert "Total: 55.00 USD" in review.body


def test_bad_quantities_keep_the_state():
    s = bot.Session(state=State.COLLECTING_QUANTITY, pending_sku="NAIL")
    for text, expected in [
        ("lots", "number"),
        ("0", "at least 1"),
        ("999999", "at most"),
        ("6", "only have 5"),
    ]:
        d = bot.handle(s, msg(text), CTX)
        assert d.session.state is State.COLLECTING_QUANTITY
        assert d.session.cart == []
        assert expected in text_of(d.replies[0])
    sticker = bot.handle(s, msg(type_="sticker"), CTX)
    assert sticker.session.state is State.COLLECTING_QUANTITY
    assert "stickers" in text_of(sticker.replies[0])


def test_out_of_stock_product_is_refused():
    s = bot.Session(state=State.ADDING_TO_CART)
    d = bot.handle(s, msg(reply="prod:OLD"), CTX)
    assert d.session.state is State.ADDING_TO_CART
    assert "out of stock" in text_of(d.replies[0])


def test_free_text_order_with_ambiguity_asks_then_reviews():
    s = bot.Session(state=State.BROWSING_PRODUCTS)
    d = bot.handle(s, msg("Cement x 100, sand 2 bags"), CTX)
    assert d.session.state is State.CONFIRMING_ITEMS
    assert [line.sku for line in d.session.cart] == ["CEM"]
    question = d.replies[-1]
    assert isinstance(question, ListContent)
    ids = [r.id for r in question.sections[0].rows]
    assert "pick:SND-R" in ids
    assert "pick:SND-S" in ids
    assert ids[-1] == "pick:-"
    d = bot.handle(d.session, msg(reply="pick:SND-S"), CTX)
    assert d.session.state is State.REVIEWING_ORDER
    assert {(line.sku, line.quantity) for line in d.session.cart} == {("CEM", 100), ("SND-S", 2)}


def test_unknown_text_gets_a_hint_and_keeps_state():
    s = bot.Session(state=State.BROWSING_PRODUCTS)
    d = bot.handle(s, msg("banana 3"), CTX)
    assert d.session.state is State.BROWSING_PRODUCTS
    assert "didn't find" in text_of(d.replies[0])


def test_confirm_places_order_and_result_moves_to_payment():
    cart = [
        bot.CartLine(sku="CEM", name="Portland Cement", unit_price=Decimal("12.50"), quantity=2)
    ]
    s = bot.Session(state=State.REVIEWING_ORDER, cart=cart)
    d = bot.handle(s, msg(reply="review:confirm"), CTX)
    assert d.actions == [bot.PlaceOrder(tuple(cart))]
    totals = Totals(Decimal("25.00"), Decimal("2.50"), Decimal("27.50"), "USD")
    after = bot.after_order(d.session, bot.OrderPlaced("ORD-1", "PAY-1", totals), CTX)
    assert after.session.state is State.AWAITING_PAYMENT
    assert after.session.cart == []
    body = text_of(after.replies[0])
    assert "ORD-1" in body
    assert "PAY-1" in body
    assert "27.50 USD" in body
    paid = bot.handle(after.session, msg("TX12345"), CTX)
    assert paid.session.state is State.PAYMENT_CONFIRMATION
    assert paid.actions == [bot.ClaimPayment("ORD-1", "TX12345")]


def test_rejected_order_adjusts_cart():
    cart = [
        bot.CartLine(sku="CEM", name="Portland Cement", unit_price=Decimal("12.50"), quantity=2),
        bot.CartLine(sku="NAIL", name="Steel Nails", unit_price=Decimal("0.10"), quantity=5),
    ]
    s = bot.Session(state=State.REVIEWING_ORDER, cart=cart)
    d = bot.after_order(s, bot.OrderRejected((("CEM", "Portland Cement", 1),)), CTX)
    assert d.session.state is State.REVIEWING_ORDER
    assert {(line.sku, line.quantity) for line in d.session.cart} == {("CEM", 1), ("NAIL", 5)}
    gone = bot.after_order(s, bot.OrderRejected((("CEM", "", 0), ("NAIL", "", 0))), CTX)
    assert gone.session.state is State.BROWSING_PRODUCTS
    assert gone.session.cart == []


def test_keywords_work_in_any_state():
    cart = [bot.CartLine(sku="CEM", name="Portland Cement", unit_price=Decimal("1"), quantity=1)]
    s = bot.Session(state=State.COLLECTING_QUANTITY, pending_sku="CEM", cart=cart)
    assert bot.handle(s, msg("MENU"), CTX).session.state is State.BROWSING_PRODUCTS
    assert bot.handle(s, msg("cart"), CTX).session.state is State.REVIEWING_ORDER
    cancelled = bot.handle(s, msg("cancel"), CTX)
    assert cancelled.session.cart == []
    assert cancelled.session.state is State.BROWSING_PRODUCTS
    helped = bot.handle(s, msg("help"), CTX)
    assert helped.session.state is State.COLLECTING_QUANTITY
    assert "menu" in text_of(helped.replies[0])
    stop = bot.handle(s, msg("STOP"), CTX)
    assert stop.actions == [bot.OptOut()]
    assert stop.session.state is State.COLLECTING_QUANTITY
    assert bot.handle(s, msg("start"), CTX).actions == [bot.OptIn()]


def test_clearing_the_cart_is_one_message_leading_the_categories():
    """A cart clear, an empty cart and "edit" answer with one message (the category list
    opened by what was done), not a text and then the list: each reply costs a send, its
    status webhooks and their events."""
    cart = [bot.CartLine(sku="CEM", name="Portland Cement", unit_price=Decimal("1"), quantity=1)]
    s = bot.Session(state=State.REVIEWING_ORDER, cart=cart)
    (cleared,) = bot.handle(s, msg("cancel"), CTX).replies
    assert isinstance(cleared, ListContent)
    assert text_of(cleared).startswith("Your cart is cleared. Anything else?")
    (empty,) = bot.handle(bot.Session(state=State.BROWSING_PRODUCTS), msg("cart"), CTX).replies
    assert isinstance(empty, ListContent)
    assert text_of(empty).startswith("Your cart is empty.")


def test_cancel_while_awaiting_payment_cancels_the_order():
    s = bot.Session(state=State.AWAITING_PAYMENT, order_id="ORD-9", payment_reference="PAY-9")
    d = bot.handle(s, msg("cancel"), CTX)
    assert d.actions == [bot.CancelOrder("ORD-9", "cancelled by the customer")]


def test_agent_hands_off_and_bot_stays_quiet():
    d = play(bot.Session(state=State.BROWSING_PRODUCTS), msg("agent"))
    assert d.session.handoff
    assert d.actions == [bot.Handoff()]
    quiet = bot.handle(d.session, msg("Cement x 2"), CTX)
    assert quiet.replies == []
    assert quiet.session.cart == []
    assert bot.handle(d.session, msg("stop"), CTX).actions == [bot.OptOut()]


def test_expired_button_is_harmless():
    s = bot.Session(state=State.BROWSING_PRODUCTS)
    d = bot.handle(s, msg(reply="review:confirm"), CTX)
    assert d.actions == []
    assert d.session.state is State.BROWSING_PRODUCTS
    assert "expired" in text_of(d.replies[0])


def test_remove_from_cart():
    cart = [
        bot.CartLine(sku="CEM", name="Portland Cement", unit_price=Decimal("1"), quantity=1),
        bot.CartLine(sku="NAIL", name="Steel Nails", unit_price=Decimal("1"), quantity=1),
    ]
    d = bot.handle(bot.Session(state=State.BROWSING_PRODUCTS, cart=cart), msg("remove nails"), CTX)
    assert [line.sku for line in d.session.cart] == ["CEM"]


def test_session_tracks_latest_inbound():
    m1, m2 = msg("hi"), msg("menu")
    s = bot.handle(None, m2, CTX).session
    s2 = bot.handle(s, m1, CTX).session  # an older message arriving late
    assert s2.last_inbound_at == m2.timestamp
    assert s2.last_message_id == m1.provider_message_id
