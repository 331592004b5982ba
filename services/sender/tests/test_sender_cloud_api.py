"""Request bodies for every content type, validated against Meta's OpenAPI spec (with
the sandbox's validator, so the spec's defects are repaired in one place)."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from flowchat_contracts import (
    ButtonsContent,
    CatalogContent,
    ContactsContent,
    CtaUrlContent,
    FlowContent,
    ListContent,
    ListRow,
    ListSection,
    LocationContent,
    MediaContent,
    OutboundCommand,
    ProductContent,
    ProductListContent,
    ProductSection,
    ReactionContent,
    ReplyButton,
    TemplateComponent,
    TemplateContent,
    TemplateParameter,
    TextContent,
)
from flowchat_sandbox.errors import GraphError
from flowchat_sandbox.spec import SendValidator, load_spec
from flowchat_sender import fates
from flowchat_sender.cloud_api import build_message, parse_error


def command(content: Any, **kw: Any) -> OutboundCommand:
    return OutboundCommand(
        tenant_id="t1",
        account_id="a1",
        idempotency_key="k1",
        message_id="msg-1",
        to="+16505551234",
        content=content,
        **kw,
    )


CONTENTS: dict[str, Any] = {
    "text": TextContent(body="Hello", preview_url=True),
    "image_id": MediaContent(type="image", media_id="123", caption="look"),
    "image_link": MediaContent(type="image", link="https://example.com/a.jpg"),
    "video": MediaContent(type="video", link="https://example.com/a.mp4", caption="v"),
    "audio": MediaContent(type="audio", media_id="55"),
    "document": MediaContent(
        type="document", link="https://example.com/a.pdf", caption="Invoice", filename="inv.pdf"
    ),
    "sticker": MediaContent(type="sticker", media_id="77"),
    "template_positional": TemplateContent(
        name="order_update",
        language="en_US",
        components=[
            TemplateComponent(
                type="header",
                parameters=[TemplateParameter(type="image", link="https://example.com/h.jpg")],
            ),
            TemplateComponent(
                type="body",
                parameters=[
                    TemplateParameter(type="text", text="Ann"),
                    TemplateParameter(
                        type="currency",
                        currency_code="USD",
                        amount=Decimal("100.99"),
                        fallback_value="$100.99",
                    ),
                    TemplateParameter(type="date_time", fallback_value="February 25, 1977"),
                ],
            ),
            TemplateComponent(
                type="button",
                sub_type="quick_reply",
                index=0,
                parameters=[TemplateParameter(type="payload", payload="DETAILS")],
            ),
            TemplateComponent(
                type="button",
                sub_type="url",
                index=1,
                parameters=[TemplateParameter(type="text", text="order/42")],
            ),
        ],
    ),
    "template_named": TemplateContent(
        name="welcome",
        language="en",
        components=[
            TemplateComponent(
                type="body",
                parameters=[
                    TemplateParameter(type="text", text="Ann", parameter_name="first_name")
                ],
            )
        ],
    ),
    "template_bare": TemplateContent(name="hello_world", language="en_US"),
    "buttons": ButtonsContent(
        body="Pick one",
        header="Menu",
        footer="Thanks",
        buttons=[ReplyButton(id="a", title="A"), ReplyButton(id="b", title="B")],
    ),
    "list": ListContent(
        body="Our menu",
        button="See",
        sections=[
            ListSection(
                title="Pizza", rows=[ListRow(id="p1", title="Margherita", description="x")]
            ),
            ListSection(title="Drinks", rows=[ListRow(id="d1", title="Water")]),
        ],
    ),
    "reaction": ReactionContent(message_id="wamid.ABC", emoji="👍"),
    # issue 25: native commerce, CTA-URL buttons, Flows
    "cta_url": CtaUrlContent(
        body="Pay invoice INV-000001", display_text="Pay now", url="https://pay.example/x"
    ),
    "product": ProductContent(catalog_id="cat-1", product_retailer_id="tile-white", body="Hi"),
    "product_list": ProductListContent(
        catalog_id="cat-1",
        header="Our tiles",
        body="Best sellers",
        sections=[ProductSection(title="Tiles", product_retailer_ids=["tile-white", "glue-5"])],
    ),
    "catalog_message": CatalogContent(
        body="Our whole catalog", thumbnail_product_retailer_id="tile-white"
    ),
    "flow": FlowContent(
        flow_id="123456",
        flow_token="ORD-ABC",
        flow_cta="Add address",
        body="Where should we deliver?",
        screen="ADDRESS",
        data={"order": "ORD-ABC"},
    ),
    "location": LocationContent(latitude=37.48, longitude=-122.14, name="HQ", address="1 Way"),
    "contacts": ContactsContent(
        contacts=[
            {
                "name": {"formatted_name": "John Smith", "first_name": "John"},
                "phones": [{"phone": "+1 650 555 1234", "type": "WORK", "wa_id": "16505551234"}],
            }
        ]
    ),
}


# --------------------------------------------------------------------- the spec


@pytest.fixture(scope="module")
def validator() -> SendValidator:
    """The sandbox's validator of ``sendMessage`` bodies: Meta's OpenAPI spec with its
    defects repaired once (:func:`flowchat_sandbox.spec.apply_errata`), plus the
    documented limits the spec leaves out."""
    return SendValidator(load_spec())


def _errors(validator: SendValidator, body: dict[str, Any]) -> list[str]:
    try:
        validator.validate(copy.deepcopy(body))
    except GraphError as exc:
        return [f"({exc.code}) {exc.details}"]
    return []


@pytest.mark.parametrize("name", sorted(CONTENTS))
def test_every_content_type_matches_the_spec(validator: SendValidator, name: str) -> None:
    body = build_message(command(CONTENTS[name]))
    assert _errors(validator, body) == []


def test_replies_match_the_spec(validator: SendValidator) -> None:
    body = build_message(command(CONTENTS["text"], reply_to="wamid.PREV"))
    assert body["context"] == {"message_id": "wamid.PREV"}
    assert _errors(validator, body) == []


def test_the_validator_refuses_broken_bodies(validator: SendValidator) -> None:
    """Not vacuous: the checks above would see these defects (Meta's own examples are
    checked by the sandbox's tests)."""
    good = build_message(command(CONTENTS["text"]))
    assert _errors(validator, {**good, "surprise": 1})  # unknown top-level field
    assert _errors(validator, {k: v for k, v in good.items() if k != "to"})
    both = build_message(command(CONTENTS["image_id"]))
    both["image"]["link"] = "https://example.com/x.jpg"  # id and link together
    assert _errors(validator, both)
    long = build_message(command(CONTENTS["buttons"]))
    long["interactive"]["action"]["buttons"][0]["reply"]["title"] = "x" * 21
    assert _errors(validator, long)
    bad_param = build_message(command(CONTENTS["template_positional"]))
    bad_param["template"]["components"][1]["parameters"][1] = {"type": "currency"}
    assert _errors(validator, bad_param)


# --------------------------------------------------------------------- shapes


def test_common_fields_and_correlation() -> None:
    body = build_message(command(CONTENTS["text"]))
    assert body["messaging_product"] == "whatsapp"
    assert body["recipient_type"] == "individual"
    assert body["to"] == "16505551234"
    assert body["biz_opaque_callback_data"] == "msg-1"
    assert body["text"] == {"body": "Hello", "preview_url": True}
    assert "context" not in body


def test_template_parameters() -> None:
    body = build_message(command(CONTENTS["template_positional"]))
    template = body["template"]
    assert template["language"] == {"code": "en_US", "policy": "deterministic"}
    header, body_c, quick, url = template["components"]
    assert header["parameters"] == [
        {"type": "image", "image": {"link": "https://example.com/h.jpg"}}
    ]
    assert body_c["parameters"][1] == {
        "type": "currency",
        "currency": {"fallback_value": "$100.99", "code": "USD", "amount_1000": 100990},
    }
    assert body_c["parameters"][2] == {
        "type": "date_time",
        "date_time": {"fallback_value": "February 25, 1977"},
    }
    assert quick == {
        "type": "button",
        "sub_type": "quick_reply",
        "index": "0",
        "parameters": [{"type": "payload", "payload": "DETAILS"}],
    }
    assert url["index"] == "1"
    assert url["parameters"] == [{"type": "text", "text": "order/42"}]
    named = build_message(command(CONTENTS["template_named"]))
    assert named["template"]["components"][0]["parameters"] == [
        {"type": "text", "text": "Ann", "parameter_name": "first_name"}
    ]


def test_media_interactive_and_others() -> None:
    doc = build_message(command(CONTENTS["document"]))
    assert doc["document"] == {
        "link": "https://example.com/a.pdf",
        "caption": "Invoice",
        "filename": "inv.pdf",
    }
    assert build_message(command(CONTENTS["sticker"]))["sticker"] == {"id": "77"}
    buttons = build_message(command(CONTENTS["buttons"]))["interactive"]
    assert buttons["type"] == "button"
    assert buttons["header"] == {"type": "text", "text": "Menu"}
    assert buttons["footer"] == {"text": "Thanks"}
    assert buttons["action"]["buttons"][1] == {"type": "reply", "reply": {"id": "b", "title": "B"}}
    lst = build_message(command(CONTENTS["list"]))["interactive"]
    assert lst["type"] == "list"
    assert lst["action"]["button"] == "See"
    assert lst["action"]["sections"][1] == {
        "title": "Drinks",
        "rows": [{"id": "d1", "title": "Water"}],
    }
    assert build_message(command(CONTENTS["reaction"]))["reaction"] == {
        "message_id": "wamid.ABC",
        "emoji": "👍",
    }
    loc = build_message(command(CONTENTS["location"]))["location"]
    assert loc == {"latitude": 37.48, "longitude": -122.14, "name": "HQ", "address": "1 Way"}


def test_meta_error_json_is_parsed() -> None:
    raw = (
        b'{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429,'
        b'"error_data":{"messaging_product":"whatsapp","details":"Cloud API message throughput '
        b'has been reached."},"error_subcode":2494055,"fbtrace_id":"Az8"}}'
    )
    err = parse_error(400, raw)
    assert err.code == 130429
    assert err.message == "(#130429) Rate limit hit"
    assert err.title == "OAuthException"
    assert err.details == "Cloud API message throughput has been reached."


def test_non_json_error_keeps_the_http_status() -> None:
    err = parse_error(502, b"<html>bad gateway</html>")
    assert err.code == fates.HTTP_ERROR
    assert err.title == "HTTP 502"
