"""Replies per channel and typed answers read back as choices (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count

from flowchat_contracts import (
    ButtonsContent,
    CtaUrlContent,
    InboundMessage,
    ListContent,
    ListRow,
    ListSection,
    OutboundContent,
    ReplyButton,
    TextContent,
)
from flowchat_conversation.commerce import bot, render
from flowchat_conversation.commerce.bot import State
from flowchat_conversation.commerce.domain import BotSettings, Product

_ids = count()
CTX = bot.BotContext(
    settings=BotSettings(business_name="Acme Supplies"),
    catalog=[
        Product(sku=sku, name=name, price=Decimal("3"), currency="USD", category=cat, stock=50)
        for sku, name, cat in [
            ("CEM", "Portland Cement", "Building"),
            ("SND", "River Sand", "Building"),
            ("NAIL", "Steel Nails", "Hardware"),
        ]
    ],
)


def msg(text: str, provider: render.Channel = "twilio") -> InboundMessage:
    n = next(_ids)
    return InboundMessage(
        tenant_id="t1",
        account_id="a1",
        provider=provider,
        provider_message_id=f"SM{n}",
        phone_number_id="pn1",
        customer_wa_id="15550001111",
        type="text",
        timestamp=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=n),
        text=text,
    )


BUTTONS = ButtonsContent(
    body="Your order: 2 x Cement",
    buttons=[
        ReplyButton(id="review:confirm", title="Confirm"),
        ReplyButton(id="review:edit", title="Edit"),
        ReplyButton(id="review:cancel", title="Cancel"),
    ],
)
LIST = ListContent(
    body="Building: choose a product.",
    button="View products",
    sections=[
        ListSection(
            rows=[
                ListRow(id="prod:RS", title="River sand 25kg", description="3.00 USD"),
                ListRow(id="prod:SS", title="Sharp sand 25kg"),
                ListRow(id="prod:CEM", title="Cement 50kg"),
            ]
        )
    ],
)


def twilio_body(content: OutboundContent) -> str:
    text = render.for_channel(content, "twilio")
    assert isinstance(text, TextContent)
    return text.body


def test_cloud_api_keeps_native_interactive_messages():
    assert render.for_channel(BUTTONS, "meta") is BUTTONS
    assert render.for_channel(LIST, "meta") is LIST


def test_twilio_gets_numbered_text_menus():
    text = twilio_body(BUTTONS)
    assert text.startswith("Your order: 2 x Cement")
    assert "\n1. Confirm\n2. Edit\n3. Cancel\n" in text
    listed = twilio_body(LIST)
    assert "1. River sand 25kg — 3.00 USD\n2. Sharp sand 25kg\n3. Cement 50kg" in listed
    long = ButtonsContent(body="x" * 1024, buttons=BUTTONS.buttons)
    assert len(twilio_body(long)) <= render.TWILIO_BODY


def test_a_link_button_is_its_link_in_text_on_twilio():
    pay = CtaUrlContent(
        body="Invoice INV-7: 12.50 USD", display_text="Pay now", url="https://pay.example/i/7"
    )
    assert render.for_channel(pay, "meta") is pay
    text = render.for_channel(pay, "twilio")
    assert isinstance(text, TextContent)
    assert text.body == "Invoice INV-7: 12.50 USD\n\nPay now: https://pay.example/i/7"


def test_typed_answers_resolve_by_number_label_and_misspelling():
    menu = render.menu_of(BUTTONS)
    assert menu is not None
    for typed, want in [
        ("1", "review:confirm"),
        (" 2. ", "review:edit"),
        ("#3", "review:cancel"),
        ("Confirm", "review:confirm"),
        ("CONFIRM!", "review:confirm"),
        ("confrim", "review:confirm"),
        ("conferm", "review:confirm"),
        ("edt", "review:edit"),
    ]:
        assert render.resolve(typed, menu) == want, typed
    for typed in ("4", "0", "cement x 5", "hello there", ""):
        assert render.resolve(typed, menu) is None, typed
    rows = render.menu_of(LIST)
    assert rows is not None
    assert render.resolve("river sand", rows) == "prod:RS"
    assert render.resolve("cemnet 50kg", rows) == "prod:CEM"
    assert render.resolve("sand", rows) is None  # two options fit equally: not a choice


def test_the_bot_understands_typed_choices_on_any_channel():
    d = bot.handle(None, msg("hi"), CTX)
    assert d.session.menu
    assert d.session.menu[0] == ("cat:0:Building", "Building")
    d = bot.handle(d.session, msg("1"), CTX)  # the first category, typed
    assert d.session.state is State.ADDING_TO_CART
    d = bot.handle(d.session, msg("portland cemnt"), CTX)  # a product, misspelt
    assert d.session.state is State.COLLECTING_QUANTITY
    assert d.session.menu == []  # a number now is a quantity
    d = bot.handle(d.session, msg("2"), CTX)
    assert d.session.state is State.REVIEWING_ORDER
    assert [label for _, label in d.session.menu] == ["Confirm", "Edit", "Cancel"]
    d = bot.handle(d.session, msg("hm?"), CTX)  # a hint keeps the options
    assert d.session.menu
    d = bot.handle(d.session, msg("confirm"), CTX)
    assert [type(a) for a in d.actions] == [bot.PlaceOrder]


def test_the_session_remembers_the_channel_the_customer_last_wrote_on():
    # the tenant's own notifications (order updates, payment links) are rendered for it
    d = bot.handle(None, msg("hi", provider="twilio"), CTX)
    assert d.session.channel == "twilio"
    d = bot.handle(d.session, msg("1", provider="meta"), CTX)
    assert d.session.channel == "meta"
    assert bot.Session().channel == "meta"
