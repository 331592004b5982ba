"""Issue 25's pure parts: the payment webhook's signature, the provider's events,
discount-code rules, document numbers and the customer's native cart (no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from flowchat_contracts import InboundMessage, TextContent
from flowchat_conversation.commerce import bot
from flowchat_conversation.commerce.bot import State
from flowchat_conversation.commerce.domain import BotSettings, Product
from flowchat_conversation.commerce.orders import DiscountCode, document_number
from flowchat_conversation.commerce.payments import (
    SIGNATURE_TOLERANCE_S,
    parse_event,
    sign,
    verify,
)

SECRET = b"s3cret"
BODY = json.dumps(
    {
        "id": "evt_1",
        "type": "payment.succeeded",
        "data": {
            "payment_id": "pay_1",
            "invoice_id": "INV-X",
            "amount": "12.50",
            "currency": "usd",
        },
    }
).encode()
NOW = 1_800_000_000


def test_a_signature_verifies_only_for_its_body_secret_and_time():
    header = sign(SECRET, BODY, NOW)
    assert verify(SECRET, BODY, header, now=NOW)
    assert verify(SECRET, BODY, header, now=NOW + SIGNATURE_TOLERANCE_S)
    assert not verify(SECRET, BODY, header, now=NOW + SIGNATURE_TOLERANCE_S + 1)  # a replay
    assert not verify(b"other", BODY, header, now=NOW)
    assert not verify(SECRET, BODY + b" ", header, now=NOW)  # tampered
    assert not verify(SECRET, BODY, None, now=NOW)
    assert not verify(SECRET, BODY, "t=x,v1=00", now=NOW)
    assert not verify(SECRET, BODY, f"t={NOW}", now=NOW)


def test_events_are_parsed_or_refused():
    event = parse_event(BODY)
    assert event is not None
    assert (event.payment_id, event.invoice_id, event.amount, event.currency) == (
        "pay_1",
        "INV-X",
        Decimal("12.50"),
        "USD",
    )
    assert parse_event(b"not json") is None
    assert parse_event(b'{"id": "e", "type": "x"}') is None
    bad_amount = {"payment_id": "p", "invoice_id": "i", "amount": "lots", "currency": "USD"}
    assert parse_event(json.dumps({"id": "e", "type": "x", "data": bad_amount}).encode()) is None


def code(**kw: object) -> DiscountCode:
    base: dict[str, object] = {
        "code": "SPRING",
        "rate": Decimal("0.1"),
        "max_uses": None,
        "uses": 0,
        "min_subtotal": None,
        "expires_at": None,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    base.update(kw)
    return DiscountCode(**base)  # type: ignore[arg-type]


def test_discount_codes_have_limits_expiry_and_minimums():
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert code().refusal(now) is None
    assert code(expires_at=now).refusal(now) == "expired"
    assert code(expires_at=now + timedelta(seconds=1)).refusal(now) is None
    assert code(max_uses=2, uses=2).refusal(now) == "used_up"
    assert code(max_uses=2, uses=1).refusal(now) is None
    assert code(min_subtotal=Decimal(50)).refusal(now, Decimal("49.99")) == "below_minimum"
    assert code(min_subtotal=Decimal(50)).refusal(now, Decimal(50)) is None


def test_document_numbers():
    assert document_number("INV", 1) == "INV-000001"
    assert document_number("CN", 1234567) == "CN-1234567"


CATALOG = [
    Product(sku="TIL", name="White tiles", price=Decimal("20.00"), currency="USD",
            category="Tiles", stock=5, retailer_id="tile-white", catalog_id="cat"),
    Product(sku="GLU", name="Tile glue", price=Decimal("8.00"), currency="USD",
            category="Tiles", stock=0, retailer_id="glue-5", catalog_id="cat"),
    Product(sku="CEM", name="Cement", price=Decimal("9.50"), currency="USD",
            category="Building", stock=50),
]  # fmt: skip
CTX = bot.BotContext(settings=BotSettings(), catalog=CATALOG)


def order_message(items: list[dict[str, object]]) -> InboundMessage:
    return InboundMessage(
        tenant_id="t1",
        account_id="a1",
        provider="meta",
        provider_message_id="wamid.cart",
        phone_number_id="pn1",
        customer_wa_id="15550001111",
        type="order",
        timestamp=datetime(2026, 6, 1, tzinfo=UTC),
        order={"catalog_id": "cat", "product_items": items},
    )


def test_the_native_cart_becomes_the_cart_priced_from_the_catalog():
    items: list[dict[str, object]] = [
        {"product_retailer_id": "tile-white", "quantity": 3, "item_price": 1, "currency": "USD"},
        {"product_retailer_id": "glue-5", "quantity": 1, "item_price": 8, "currency": "USD"},
        {"product_retailer_id": "gone", "quantity": 1, "item_price": 8, "currency": "USD"},
    ]
    d = bot.handle(bot.Session(state=State.BROWSING_PRODUCTS), order_message(items), CTX)
    assert d.session.state is State.REVIEWING_ORDER
    assert d.session.cart == [
        bot.CartLine(sku="TIL", name="White tiles", unit_price=Decimal("20.00"), quantity=3)
    ]
    notes = d.replies[0]
    assert isinstance(notes, TextContent)
    assert "Tile glue is out of stock" in notes.body
    assert "gone: not in our catalog" in notes.body
    # even as the first message of a conversation
    first = bot.handle(None, order_message(items[:1]), CTX)
    assert first.session.state is State.REVIEWING_ORDER


def test_a_native_cart_with_nothing_available_offers_the_catalog():
    items: list[dict[str, object]] = [
        {"product_retailer_id": "glue-5", "quantity": 1, "item_price": 8, "currency": "USD"}
    ]
    d = bot.handle(bot.Session(state=State.BROWSING_PRODUCTS), order_message(items), CTX)
    assert d.session.cart == []
    assert d.session.state is State.BROWSING_PRODUCTS
