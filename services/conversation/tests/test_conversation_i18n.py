"""The bot in the customer's language: gettext catalogs, Babel formats, the bot's own
words understood in each language, product translations, the language choice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pytest

from flowchat_contracts import InboundMessage
from flowchat_conversation.commerce import bot, i18n, render
from flowchat_conversation.commerce.bot import State
from flowchat_conversation.commerce.domain import BotSettings, Product, Totals
from flowchat_conversation.commerce.orders import (
    OrderStatus,
    credit_text,
    paid_text,
    status_text,
)

_ids = count()
CEMENT = Product(
    sku="CEM",
    name="Cement 50kg",
    description="Portland cement",
    price=Decimal("1250.50"),
    currency="USD",
    category="Building",
    stock=5000,
    translations={"es": {"name": "Cemento 50kg", "description": "Cemento Portland"}},
)
SAND = Product(
    sku="SND",
    name="Sharp sand",
    price=Decimal("3"),
    currency="USD",
    category="Building",
    stock=9,
    translations={"es": {"name": "Arena fina"}},
)


def ctx(locale: str = "en", **kw: Any) -> bot.BotContext:
    settings = BotSettings(business_name="Acme", tax_rate=Decimal("0.075"), locale=locale)
    return bot.BotContext(
        settings=settings, catalog=[CEMENT, SAND], customer_name="Ada", locale=locale, **kw
    )


def msg(text: str | None = None, reply: str | None = None) -> InboundMessage:
    from flowchat_contracts import Reply

    n = next(_ids)
    return InboundMessage(
        tenant_id="t1",
        account_id="a1",
        provider="meta",
        provider_message_id=f"wamid.i{n}",
        phone_number_id="pn1",
        customer_wa_id="15550001111",
        type="interactive" if reply else "text",
        timestamp=datetime(2026, 12, 7, tzinfo=UTC) + timedelta(seconds=n),
        text=text,
        reply=Reply(id=reply, title="x") if reply else None,
    )


def body(content: Any) -> str:
    return str(content.body)


def test_order_notices_in_the_customers_language():
    """Issue 25: the tenant's order notices (paid, shipped, cancelled with a credit note,
    the payment link) in Spanish, amounts in Babel's Spanish format; English unchanged."""
    es = i18n.tr("es")
    paid = paid_text("ORD-1", Decimal("1234.5"), "USD", es)
    assert paid == (
        "💰 Recibimos tu pago de 1.234,50\xa0US$ por el pedido ORD-1. "
        "¡Gracias! Te avisaremos cuando se envíe."
    )
    shipped = status_text(OrderStatus.SHIPPED, "ORD-1", "Acme", tracking="TRK-9", t=es)
    assert shipped == "🚚 Tu pedido ORD-1 está en camino. Seguimiento: TRK-9."
    cancelled = status_text(OrderStatus.CANCELLED, "ORD-1", "Acme", "sin stock", t=es)
    assert cancelled == (
        "❌ Tu pedido ORD-1 fue cancelado. Motivo: sin stock. Escribe menú para comprar de nuevo."
    )
    credit = credit_text("ORD-1", "CN-7", Decimal("27.5"), "USD", es)
    assert "te reembolsaremos 27,50\xa0US$" in credit
    assert "💰 Recebemos seu pagamento de US$\xa01.234,50" in paid_text(
        "ORD-1", Decimal("1234.5"), "USD", i18n.tr("pt")
    )
    # English is the source: the bot's own unambiguous amounts, as before
    assert paid_text("ORD-1", Decimal("1234.5"), "USD") == (
        "💰 We received your payment of 1,234.50 USD for order ORD-1. "
        "Thank you! We'll let you know when it ships."
    )
    assert status_text(OrderStatus.CANCELLED, "ORD-1", "Acme", "late") == (
        "❌ Your order ORD-1 was cancelled. Reason: late. Type menu to shop again."
    )


def test_formats_per_locale():
    es, pt, en = i18n.tr("es"), i18n.tr("pt_BR"), i18n.tr("en")
    assert es.money(Decimal("1234.5"), "USD") == "1.234,50\xa0US$"
    assert es.money(Decimal("1234567.5"), "EUR") == "1.234.567,50\xa0€"
    assert pt.money(Decimal("1234.5"), "BRL") == "R$\xa01.234,50"
    assert en.money(Decimal("1234.5"), "USD") == "1,234.50 USD"  # the bot's own English form
    assert es.number(10_000) == "10.000"
    assert es.date(datetime(2026, 12, 7, tzinfo=UTC)) == "7 dic 2026"
    assert i18n.tr("hi")("Confirm") == "पुष्टि करें"
    assert i18n.tr("fr")("Confirm") == "Confirm"  # no catalog: English
    assert i18n.supported("es-MX") == "es"


@pytest.mark.parametrize(
    ("typed", "word"),
    [("carrito", "cart"), ("Menú", "menu"), ("ayuda", "help"), ("carrinho", "cart"),
     ("मदद", "help"), ("idioma", "language"), ("cancelar", "cancel"), ("agent", "agent")],
)  # fmt: skip
def test_the_bots_own_words_in_every_language(typed: str, word: str):
    assert i18n.keyword_of(typed) == word


def test_language_names_choose_a_language():
    assert i18n.language_of("español") == "es"
    assert i18n.language_of("Espanol!") == "es"
    assert i18n.language_of("portugues") == "pt"
    assert i18n.language_of("हिन्दी") == "hi"
    assert i18n.language_of("cement") is None


def test_a_whole_order_in_spanish():
    c = ctx("es")
    d = bot.handle(None, msg("Hola"), c)
    assert body(d.replies[0]).startswith("¡Hola Ada! Bienvenido a Acme.")
    assert "\n\nExplora nuestro catálogo" in body(d.replies[0])
    d = bot.handle(d.session, msg("1"), c)  # the first category, typed
    listed = d.replies[0]
    assert listed.type == "interactive_list"
    rows = [r.title for s in listed.sections for r in s.rows]
    assert "Cemento 50kg" in rows  # the catalog's translation
    d = bot.handle(d.session, msg("cemento"), c)
    assert "1.250,50\xa0US$ cada uno, 5.000 disponibles" in body(d.replies[0])
    d = bot.handle(d.session, msg("2"), c)
    assert d.session.state is State.REVIEWING_ORDER
    review = body(d.replies[-1])
    assert "Agregué 2 x Cemento 50kg a tu carrito." in body(d.replies[0])
    assert "Subtotal: 2.501,00\xa0US$" in review
    assert "Impuesto (7,5 %): 187,58\xa0US$" in review
    assert "Total: 2.688,58\xa0US$" in review
    assert [label for _, label in d.session.menu] == ["Confirmar", "Editar", "Cancelar"]
    d = bot.handle(d.session, msg("confirmar"), c)  # the button's Spanish label, typed
    (place,) = d.actions
    assert isinstance(place, bot.PlaceOrder)
    placed = bot.OrderPlaced(
        order_id="ORD-1",
        payment_reference="PAY-1",
        totals=Totals(
            Decimal("2501"), Decimal("187.58"), Decimal("2688.58"), "USD", Decimal("0.075")
        ),
        lines=(("Cemento 50kg", 2, Decimal("1250.50")),),
        invoice_id="INV-7",
        due_at=datetime(2026, 12, 9, 14, 30, tzinfo=UTC),
    )
    d = bot.after_order(d.session, placed, c)
    invoice = body(d.replies[0])
    assert "✅ Pedido ORD-1 confirmado." in invoice
    assert "🧾 *Factura INV-7* — Acme" in invoice
    assert "• 2 x Cemento 50kg @ 1.250,50\xa0US$ = 2.501,00\xa0US$" in invoice
    assert "*Total: 2.688,58\xa0US$*" in invoice
    assert "Por favor, paga antes del 9 dic 2026, 14:30:00 UTC." in invoice


def test_a_customer_chooses_a_language_and_it_is_remembered():
    c = ctx("en")
    d = bot.handle(None, msg("Hi"), c)
    d = bot.handle(d.session, msg("español"), c)
    assert [type(a) for a in d.actions] == [bot.SetLocale]
    assert d.actions[0] == bot.SetLocale("es")
    assert body(d.replies[0]) == "De acuerdo, te hablaré en Español."
    d = bot.handle(d.session, msg("idioma"), ctx("es"))  # the language menu
    assert [label for _, label in d.session.menu] == list(i18n.SUPPORTED.values())
    d = bot.handle(d.session, msg("3"), ctx("es"))  # Português, by number
    assert d.actions == [bot.SetLocale("pt")]
    assert body(d.replies[0]) == "Certo, vou falar Português com você."


def test_twilio_menus_in_the_customers_language():
    c = ctx("es")
    d = bot.handle(None, msg("Hola"), c)
    prompt = i18n.tr("es")(i18n.MENU_PROMPT)
    text = render.for_channel(d.replies[0], "twilio", prompt=prompt)
    assert body(text).endswith("Responde con un número o una palabra de la lista.")


def test_removal_in_spanish():
    c = ctx("es")
    d = bot.handle(None, msg("Hola"), c)
    d = bot.handle(d.session, msg("cemento x 3, arena 2"), c)
    assert {line.sku for line in d.session.cart} == {"CEM", "SND"}
    d = bot.handle(d.session, msg("quitar arena"), c)
    assert [line.sku for line in d.session.cart] == ["CEM"]
    assert "Quité Arena fina de tu carrito." in body(d.replies[0])


def test_a_language_change_keeps_an_order_waiting_for_payment():
    session = bot.Session(state=State.AWAITING_PAYMENT, order_id="ORD-9", payment_reference="P-1")
    d = bot.handle(session, msg("español"), ctx("en"))
    assert d.session.state is State.AWAITING_PAYMENT
    assert d.actions == [bot.SetLocale("es")]
    assert "El pedido ORD-9 espera el pago" in body(d.replies[0])
