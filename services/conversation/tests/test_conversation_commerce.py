"""Orders, invoices, payments, returning customers and bad input, without I/O."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

import pytest

from flowchat_contracts import ButtonsContent, InboundMessage, Media, MediaContent, TextContent
from flowchat_conversation.commerce import bot
from flowchat_conversation.commerce.bot import State
from flowchat_conversation.commerce.domain import (
    BotSettings,
    Product,
    Totals,
    compute_totals,
    within_window,
)
from flowchat_conversation.commerce.invoice_pdf import render_invoice_pdf
from flowchat_conversation.commerce.orders import (
    TRANSITIONS,
    Invoice,
    InvoiceLinks,
    InvoiceStatus,
    Order,
    OrderLine,
    OrderStatus,
    can_move,
    invoice_id_for,
    invoice_text,
)
from flowchat_conversation.commerce.parser import parse_order_text

_ids = count()
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def product(sku, name, category, price="10.00", stock=100):
    return Product(
        sku=sku, name=name, price=Decimal(price), currency="USD", category=category, stock=stock
    )


CATALOG = [
    product("CEM", "Portland Cement", "Building", "12.50", stock=500),
    product("SND-R", "River Sand", "Building", "3.00", stock=2),
    product("NAIL", "Steel Nails", "Hardware", "0.10", stock=0),
]
SETTINGS = BotSettings(business_name="Acme", tax_rate=Decimal("0.10"))
CTX = bot.BotContext(settings=SETTINGS, catalog=CATALOG, customer_name="Ada")


def msg(text=None, *, reply=None, type_=None, media=None):
    n = next(_ids)
    return InboundMessage(
        tenant_id="t1",
        account_id="a1",
        provider="meta",
        provider_message_id=f"wamid.c{n}",
        phone_number_id="pn1",
        customer_wa_id="15550001111",
        type=type_ or ("interactive" if reply else "text"),
        timestamp=T0 + timedelta(seconds=n),
        text=text,
        reply={"id": reply, "title": "x"} if reply else None,
        media=media,
    )


def body(content) -> str:
    assert isinstance(content, TextContent | ButtonsContent)
    return content.body


# --------------------------------------------------------------------- money


def test_totals_with_discount_tax_and_currency_rounding():
    t = compute_totals(
        [(Decimal("9.99"), 3), (Decimal("0.335"), 1)],
        tax_rate=Decimal("0.075"),
        currency="USD",
        discount_rate=Decimal("0.10"),
        discount_min_subtotal=Decimal("20"),
    )
    # 29.97 + 0.34 (0.335 half-up) = 30.31; discount 3.03; tax 7.5 % of 27.28 = 2.05
    assert (t.subtotal, t.discount, t.tax, t.total) == (
        Decimal("30.31"),
        Decimal("3.03"),
        Decimal("2.05"),
        Decimal("29.33"),
    )
    below = compute_totals(
        [(Decimal("5"), 1)],
        tax_rate=Decimal(0),
        currency="USD",
        discount_rate=Decimal("0.10"),
        discount_min_subtotal=Decimal("20"),
    )
    assert below.discount == 0
    jpy = compute_totals([(Decimal("333"), 1)], tax_rate=Decimal("0.1"), currency="JPY")
    assert (jpy.tax, jpy.total) == (Decimal("33"), Decimal("366"))
    kwd = compute_totals([(Decimal("1.2345"), 1)], tax_rate=Decimal(0), currency="KWD")
    assert kwd.total == Decimal("1.235")


def test_service_window_is_24_hours_from_the_last_inbound():
    now = T0 + timedelta(days=2)
    assert within_window(now - timedelta(hours=23), now)
    assert not within_window(now - timedelta(hours=24, minutes=1), now)
    assert not within_window(None, now)


# --------------------------------------------------------------------- orders


def test_order_transitions():
    assert can_move(OrderStatus.CONFIRMED, OrderStatus.PROCESSING)
    assert can_move(OrderStatus.PROCESSING, OrderStatus.SHIPPED)
    assert can_move(OrderStatus.SHIPPED, OrderStatus.DELIVERED)
    assert can_move(OrderStatus.CONFIRMED, OrderStatus.CANCELLED)
    assert not can_move(OrderStatus.SHIPPED, OrderStatus.CANCELLED)
    assert not can_move(OrderStatus.DELIVERED, OrderStatus.PROCESSING)
    assert not can_move(OrderStatus.CONFIRMED, OrderStatus.SHIPPED)
    assert TRANSITIONS[OrderStatus.CANCELLED] == frozenset()
    assert TRANSITIONS[OrderStatus.DELIVERED] == frozenset()


def test_invoice_links_are_unguessable_and_stable():
    links = InvoiceLinks("https://chat.example.com/", b"secret-one")
    url = links.url("INV-ABC")
    assert url.startswith("https://chat.example.com/v1/invoices/INV-ABC.pdf?token=")
    token = url.split("token=")[1]
    assert len(token) >= 32
    assert links.verify("INV-ABC", token)
    assert not links.verify("INV-ABD", token)
    assert not links.verify("INV-ABC", token[:-1] + "A")
    assert InvoiceLinks("http://x", b"secret-one").token("INV-ABC") == token
    assert InvoiceLinks("http://x", b"secret-two").token("INV-ABC") != token
    assert invoice_id_for("ORD-XYZ") == "INV-XYZ"


def invoice(**kw):
    fields = {
        "invoice_id": "INV-1",
        "number": "INV-1",
        "status": InvoiceStatus.UNPAID,
        "currency": "USD",
        "subtotal": Decimal("50.00"),
        "discount": Decimal("5.00"),
        "tax_rate": Decimal("0.10"),
        "tax": Decimal("4.50"),
        "total": Decimal("49.50"),
        "amount_paid": Decimal("0"),
        "issued_at": T0,
        "due_at": T0 + timedelta(hours=48),
    }
    return Invoice(**{**fields, **kw})


def test_invoice_overdue_and_balance():
    inv = invoice(amount_paid=Decimal("10"))
    assert inv.balance == Decimal("39.50")
    assert not inv.overdue(T0 + timedelta(hours=47))
    assert inv.overdue(T0 + timedelta(hours=48))
    assert not invoice(status=InvoiceStatus.PAID).overdue(T0 + timedelta(days=9))
    assert not invoice(status=InvoiceStatus.VOID).overdue(T0 + timedelta(days=9))


def test_invoice_text_shows_every_amount():
    text = invoice_text(
        business_name="Acme",
        order_id="ORD-1",
        invoice_number="INV-1",
        lines=[("Cement", 4, Decimal("12.50"))],
        subtotal=Decimal("50.00"),
        discount=Decimal("5.00"),
        tax_rate=Decimal("0.10"),
        tax=Decimal("4.50"),
        total=Decimal("49.50"),
        currency="USD",
        payment_reference="PAY-1",
        due_at=T0,
        payment_instructions="Bank: 123",
    )
    for part in (
        "Invoice INV-1",
        "4 x Cement @ 12.50 USD = 50.00 USD",
        "Subtotal: 50.00 USD",
        "Discount: -5.00 USD",
        "Tax (10%): 4.50 USD",
        "Total: 49.50 USD",
        "PAY-1",
        "2025-01-01 00:00 UTC",
        "Bank: 123",
    ):
        assert part in text


def test_invoice_pdf_renders_any_product_name():
    order = Order(
        order_id="ORD-1",
        tenant_id="t1",
        account_id="a1",
        customer_wa_id="15550001111",
        status=OrderStatus.CONFIRMED,
        currency="USD",
        subtotal=Decimal("50"),
        discount=Decimal("5"),
        tax=Decimal("4.5"),
        total=Decimal("49.5"),
        payment_reference="PAY-1",
        payment_status="unpaid",
        customer_payment_ref=None,
        cancel_reason=None,
        created_at=T0,
        updated_at=T0,
        lines=[
            OrderLine("CEM", "Cément — 50kg “best” 水泥 🧱", Decimal("12.5"), 4, Decimal("50")),
            OrderLine("X", "x" * 300, Decimal("0"), 1, Decimal("0")),
        ],
    )
    pdf = render_invoice_pdf(
        order, invoice(amount_paid=Decimal("10")), business_name="Ünïcode Ltd ☺"
    )
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert len(pdf) > 1000


# --------------------------------------------------------------------- bot: invoices


def placed(**kw):
    fields = {
        "order_id": "ORD-1",
        "payment_reference": "PAY-1",
        "totals": Totals(
            Decimal("50"), Decimal("5"), Decimal("55"), "USD", tax_rate=Decimal("0.1")
        ),
        "lines": (("Portland Cement", 4, Decimal("12.50")),),
        "invoice_id": "INV-1",
        "due_at": T0,
    }
    return bot.OrderPlaced(**{**fields, **kw})


def test_order_placed_sends_invoice_text_and_pdf_document():
    session = bot.Session(state=State.REVIEWING_ORDER, cart=[])
    d = bot.after_order(session, placed(invoice_url="https://x/v1/invoices/INV-1.pdf?token=t"), CTX)
    assert d.session.state is State.AWAITING_PAYMENT
    assert d.session.order_id == "ORD-1"
    text, doc = d.replies
    assert "Invoice INV-1" in body(text)
    assert "Total: 55.00 USD" in body(text)
    assert isinstance(doc, MediaContent)
    assert (doc.type, doc.filename) == ("document", "INV-1.pdf")
    assert doc.link == "https://x/v1/invoices/INV-1.pdf?token=t"
    # without a link (no public URL) only the text goes
    assert len(bot.after_order(session, placed(), CTX).replies) == 1


def test_payment_confirmed_completes_only_its_own_order():
    waiting = bot.Session(state=State.PAYMENT_CONFIRMATION, order_id="ORD-1")
    d = bot.payment_confirmed(waiting, "ORD-1", "paid!")
    assert d.session.state is State.ORDER_COMPLETE
    assert body(d.replies[0]) == "paid!"
    other = bot.payment_confirmed(waiting, "ORD-2", "paid!")
    assert other.session.state is State.PAYMENT_CONFIRMATION
    assert bot.payment_confirmed(None, "ORD-1", "paid!").session.state is State.GREETING


def test_order_cancelled_frees_the_conversation():
    waiting = bot.Session(state=State.AWAITING_PAYMENT, order_id="ORD-1", payment_reference="P")
    d = bot.order_cancelled(waiting, "ORD-1", "cancelled")
    assert d.session.state is State.BROWSING_PRODUCTS
    assert d.session.order_id is None
    shopping = bot.Session(state=State.REVIEWING_ORDER, order_id="ORD-1")
    assert bot.order_cancelled(shopping, "ORD-1", "x").session.state is State.REVIEWING_ORDER


def test_release_ends_the_handoff_and_the_bot_speaks_again():
    quiet = bot.Session(state=State.BROWSING_PRODUCTS, handoff=True)
    assert bot.handle(quiet, msg("hello?"), CTX).replies == []
    d = bot.released(quiet, "Acme")
    assert not d.session.handoff
    assert "Acme assistant again" in body(d.replies[0])
    assert bot.handle(d.session, msg("menu"), CTX).replies


def test_agent_keyword_asks_for_a_handoff():
    d = bot.handle(bot.Session(state=State.BROWSING_PRODUCTS), msg("Agent!"), CTX)
    assert d.session.handoff
    assert d.actions == [bot.Handoff()]


# --------------------------------------------------------------------- returning customers


def returning(last_order):
    return bot.BotContext(
        settings=SETTINGS,
        catalog=CATALOG,
        customer_name="Ada",
        returning=True,
        last_order=last_order,
    )


def test_returning_customer_is_greeted_by_name_and_offered_the_last_order():
    ctx = returning((("CEM", 4), ("GONE", 1)))
    d = bot.handle(None, msg("hi"), ctx)
    (offer,) = d.replies  # the greeting and the offer in one message
    assert isinstance(offer, ButtonsContent)
    assert offer.body.startswith("Welcome back, Ada!")
    assert "4 x Portland Cement" in offer.body
    assert "GONE" not in offer.body
    assert [b.title for b in offer.buttons] == ["Order again", "Browse catalog"]
    again = bot.handle(d.session, msg(reply="reorder"), ctx)
    assert again.session.state is State.REVIEWING_ORDER
    assert [(c.sku, c.quantity) for c in again.session.cart] == [("CEM", 4)]
    browse = bot.handle(d.session, msg(reply="menu"), ctx)
    assert browse.session.state is State.BROWSING_PRODUCTS
    assert browse.session.cart == []


def test_order_again_caps_to_stock_and_skips_sold_out():
    ctx = returning((("SND-R", 5), ("NAIL", 10)))
    d = bot.handle(bot.Session(state=State.BROWSING_PRODUCTS), msg(reply="reorder"), ctx)
    assert [(c.sku, c.quantity) for c in d.session.cart] == [("SND-R", 2)]
    notes = body(d.replies[0])
    assert "Only 2 of River Sand left" in notes
    assert "Steel Nails is out of stock" in notes


def test_order_again_with_nothing_left_or_while_paying():
    d = bot.handle(
        bot.Session(state=State.BROWSING_PRODUCTS), msg(reply="reorder"), returning((("X", 1),))
    )
    assert "no longer available" in body(d.replies[0])
    assert d.session.cart == []
    paying = bot.Session(state=State.AWAITING_PAYMENT, order_id="O", payment_reference="P")
    d = bot.handle(paying, msg(reply="reorder"), returning((("CEM", 1),)))
    assert d.session == paying.model_copy(
        update={
            "last_message_id": d.session.last_message_id,
            "last_inbound_at": d.session.last_inbound_at,
        }
    )
    assert "finish your current order" in body(d.replies[0])


def test_new_customer_without_orders_gets_the_catalog():
    d = bot.handle(None, msg("hi"), returning(()))
    assert len(d.replies) == 1
    assert d.replies[0].type == "interactive_list"


# --------------------------------------------------------------------- bad input


QUANTITY = bot.Session(state=State.COLLECTING_QUANTITY, pending_sku="CEM")
REVIEW = bot.Session(
    state=State.REVIEWING_ORDER,
    cart=[bot.CartLine(sku="CEM", name="Portland Cement", unit_price=Decimal("12.50"), quantity=2)],
)


def same_state(before, after):
    return after.model_copy(update={"last_message_id": None, "last_inbound_at": None}) == (
        before.model_copy(update={"last_message_id": None, "last_inbound_at": None})
    )


@pytest.mark.parametrize(
    ("message", "words"),
    [
        (msg(type_="sticker", media=Media(id="s1")), "can't read stickers"),
        (msg(type_="audio", media=Media(id="a1")), "can't read voice notes"),
        (msg(type_="image", media=Media(id="i1")), "can't read pictures"),
        (msg(type_="location"), "can't read locations"),
        (msg(type_="unsupported"), "can't read this kind of message"),
        (msg("lots please"), "I need a number"),
        (msg("9" * 5000), "more than we can take"),
        (msg("0"), "at least 1"),
        (msg("-3"), "at least 1"),
        (msg("10001"), "more than we can take"),
        (msg("501"), "only have 500"),
        (msg(reply="review:confirm"), "That option has expired"),
        (msg(reply="nonsense"), "That option has expired"),
        (msg(reply="prod:GONE"), "no longer available"),
    ],
)
def test_bad_input_while_asking_a_quantity_keeps_the_state(message, words):
    d = bot.handle(QUANTITY, message, CTX)
    assert same_state(QUANTITY, d.session), d.session
    assert d.actions == []
    (reply,) = d.replies
    assert words in body(reply)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("unicorn saddle", "didn't find"),
        ("Cement x 0", "at least 1"),
        ("Cement x " + "9" * 5000, "more than we can take"),
        ("Steel nails x 2", "out of stock"),
        ("Cement x 99999999999999999999", "more than we can take"),
    ],
)
def test_bad_order_text_during_review_keeps_the_cart(text, words):
    d = bot.handle(REVIEW, msg(text), CTX)
    assert d.session.cart == REVIEW.cart
    assert words in " ".join(body(r) for r in d.replies if hasattr(r, "body"))
    assert d.actions == []


def test_stickers_and_voice_notes_in_every_state_never_raise():
    for state in State:
        session = bot.Session(state=state, order_id="O1", payment_reference="P1", pending_sku="CEM")
        for kind in ("sticker", "audio", "video", "document", "contacts", "order", "system"):
            d = bot.handle(session, msg(type_=kind), CTX)
            if state is State.GREETING:
                continue  # the first message of a conversation is greeted whatever it is
            assert d.session.state is state
            assert d.actions == []
            assert len(d.replies) == 1


def test_parser_reads_absurd_quantities_without_parsing_them_whole():
    (line,) = parse_order_text("cement x " + "7" * 10_000, [("CEM", "Portland Cement")])
    assert line.quantity == 10**12


# --------------------------------------------------------------------- blocked, restock


def test_a_blocked_contact_gets_no_answer_and_stop_start_still_count():
    blocked = bot.BotContext(settings=SETTINGS, catalog=CATALOG, blocked=True)
    for words in ("hi", "menu", "Cement x 2", "agent"):
        d = bot.handle(bot.Session(state=State.BROWSING_PRODUCTS), msg(words), blocked)
        assert (d.replies, d.actions) == ([], [])
        assert d.session.state is State.BROWSING_PRODUCTS
    d = bot.handle(None, msg("STOP"), blocked)
    assert (d.replies, d.actions) == ([], [bot.OptOut()])
    d = bot.handle(None, msg("start"), blocked)
    assert (d.replies, d.actions) == ([], [bot.OptIn()])


@pytest.mark.parametrize(
    ("session", "message"),
    [
        (bot.Session(state=State.BROWSING_PRODUCTS), msg("Steel nails x 3")),
        (bot.Session(state=State.ADDING_TO_CART), msg(reply="prod:NAIL")),
        (bot.Session(state=State.COLLECTING_QUANTITY, pending_sku="NAIL"), msg("3")),
    ],
)
def test_asking_for_a_product_out_of_stock_offers_a_message_when_it_is_back(session, message):
    alerts = bot.BotContext(settings=SETTINGS, catalog=CATALOG, restock_alerts=True)
    d = bot.handle(session, message, alerts)
    assert d.actions == [bot.WatchRestock("NAIL", "Steel Nails")]
    assert "Steel Nails is out of stock. I'll message you when it's back." in body(d.replies[0])
    # without restock alerts: the same answer, no promise
    d = bot.handle(session, message, CTX)
    assert d.actions == []
    assert "out of stock" in body(d.replies[0])
    assert "message you" not in body(d.replies[0])


def test_an_order_that_lost_its_last_unit_offers_the_restock_message():
    alerts = bot.BotContext(settings=SETTINGS, catalog=CATALOG, restock_alerts=True)
    session = bot.Session(
        state=State.REVIEWING_ORDER,
        cart=[bot.CartLine(sku="SND-R", name="River Sand", unit_price=Decimal(3), quantity=2)],
    )
    d = bot.after_order(session, bot.OrderRejected(shortages=(("SND-R", "River Sand", 0),)), alerts)
    assert d.actions == [bot.WatchRestock("SND-R", "River Sand")]
    assert "I'll message you when they are back." in body(d.replies[0])
    d = bot.after_order(session, bot.OrderRejected(shortages=(("SND-R", "River Sand", 1),)), alerts)
    assert d.actions == []
