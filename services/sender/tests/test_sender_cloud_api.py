"""Request bodies for every content type, validated against Meta's OpenAPI spec."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from flowchat_contracts import (
    ButtonsContent,
    ContactsContent,
    ListContent,
    ListRow,
    ListSection,
    LocationContent,
    MediaContent,
    OutboundCommand,
    ReactionContent,
    ReplyButton,
    TemplateComponent,
    TemplateContent,
    TemplateParameter,
    TextContent,
)
from flowchat_sandbox.spec import SPEC_PATH
from flowchat_sender import fates
from flowchat_sender.cloud_api import build_message, parse_error

SPEC = SPEC_PATH  # the copy vendored with the sandbox


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


def _spec_validator() -> Any:
    """A validator of the ``sendMessage`` request body, from the spec itself.

    The spec is OpenAPI 3.1 (JSON Schema 2020-12) with three known defects that would
    refuse Meta's own request examples; each is repaired minimally, and the repaired
    validator is checked to accept the spec's examples and to refuse broken bodies:

    1. ``additionalProperties: false`` inside an ``allOf`` branch hides the properties
       of the sibling branch (the common ``messaging_product``, ``to``, …); it becomes
       ``unevaluatedProperties: false`` on the ``allOf`` owner, which is what it means.
    2. ``biz_opaque_callback_data`` (a documented send field) is missing from
       ``BaseMessageProperties``; it is added as a string of at most 512 characters.
    3. The button ``index`` pattern ``^[2-6, 11-14]$`` refuses "0" and "1", which the
       spec's own examples use; it becomes ``^[0-9]$`` (the description says 0-9).
       Location ``latitude``/``longitude`` are typed string but every example sends
       numbers; both are accepted.

    Discriminators (ignored by JSON Schema) become ``if/then`` dispatches where a
    schema has a mapping but no ``oneOf``, so template components and parameters are
    checked against their concrete schemas.
    """
    yaml = pytest.importorskip("yaml")
    jsonschema = pytest.importorskip("jsonschema")
    if not SPEC.exists():
        pytest.skip(f"Meta's OpenAPI spec is not at {SPEC}")
    doc = yaml.safe_load(SPEC.read_text())
    schemas = doc["components"]["schemas"]

    def fix_allof(node: Any) -> None:
        if isinstance(node, dict):
            if "allOf" in node:
                for branch in node["allOf"]:
                    if isinstance(branch, dict) and branch.get("additionalProperties") is False:
                        del branch["additionalProperties"]
                        node["unevaluatedProperties"] = False
            for v in node.values():
                fix_allof(v)
        elif isinstance(node, list):
            for v in node:
                fix_allof(v)

    fix_allof(schemas)
    schemas["BaseMessageProperties"]["properties"]["biz_opaque_callback_data"] = {
        "type": "string",
        "maxLength": 512,
    }
    for name in ("TemplateComponent",):
        schemas[name]["properties"]["index"]["pattern"] = "^[0-9]$"
    button = schemas["ButtonComponent"]["allOf"][1]["properties"]["index"]
    button["pattern"] = "^[0-9]$"
    loc = schemas["LocationMessage"]["allOf"][1]["properties"]["location"]["properties"]
    for field in ("latitude", "longitude"):
        loc[field]["type"] = ["string", "number"]

    # discriminator mapping without oneOf → if/then, applied where the base is referenced
    dispatch: dict[str, dict[str, Any]] = {}
    for name, schema in schemas.items():
        disc = schema.get("discriminator") if isinstance(schema, dict) else None
        if disc and "mapping" in disc and "oneOf" not in schema:
            prop = disc["propertyName"]
            dispatch[f"#/components/schemas/{name}"] = {
                "$ref": f"#/components/schemas/{name}",
                "allOf": [
                    {
                        "if": {"properties": {prop: {"const": value}}, "required": [prop]},
                        "then": {"$ref": target},
                    }
                    for value, target in disc["mapping"].items()
                ],
            }

    def redirect(node: Any, own: str) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            # A mapped schema's own reference to its base stays as it is (no loop).
            if ref in dispatch and len(node) == 1 and own not in str(dispatch[ref]):
                return copy.deepcopy(dispatch[ref])
            return {k: redirect(v, own) for k, v in node.items()}
        if isinstance(node, list):
            return [redirect(v, own) for v in node]
        return node

    for name in ("TemplateObject", "HeaderComponent", "BodyComponent", "ButtonComponent"):
        schemas[name] = redirect(schemas[name], f"#/components/schemas/{name}'")

    root = {**doc, "$ref": "#/components/schemas/Message"}
    cls = jsonschema.Draft202012Validator
    return cls(root)


@pytest.fixture(scope="module")
def validator() -> Any:
    return _spec_validator()


def _errors(validator: Any, body: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)
    ]


@pytest.mark.parametrize("name", sorted(CONTENTS))
def test_every_content_type_matches_the_spec(validator: Any, name: str) -> None:
    body = build_message(command(CONTENTS[name]))
    assert _errors(validator, body) == []


def test_replies_match_the_spec(validator: Any) -> None:
    body = build_message(command(CONTENTS["text"], reply_to="wamid.PREV"))
    assert body["context"] == {"message_id": "wamid.PREV"}
    assert _errors(validator, body) == []


def test_the_repaired_spec_still_accepts_metas_examples_and_refuses_broken_bodies(
    validator: Any,
) -> None:
    import yaml

    doc = yaml.safe_load(SPEC.read_text())
    examples = doc["paths"]["/{Version}/{Phone-Number-ID}/messages"]["post"]["requestBody"][
        "content"
    ]["application/json"]["examples"]
    checked = 0
    for title in (
        "Send Reply to Text Message",
        "Send Reply Button",
        "Send List Message",
        "Send Location Message",
        "Send Document Message by ID",
        "Send Reply with Reaction Message",
    ):
        assert _errors(validator, examples[title]["value"]) == [], title
        checked += 1
    assert checked == 6

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
