"""Meta's own request examples (the spec's 50 ``sendMessage`` examples) read by the
Cloud-API-compatible endpoint: every type the sender sends is translated into FlowChat's
content; the rest is refused with Meta's code for it, never as a crash."""

from __future__ import annotations

import itertools
import re
from decimal import Decimal
from typing import Any

import pytest

from flowchat_contracts.meta_ids import message_id_of, wamid_of
from flowchat_gateway.cloud_api import (
    SUPPORTED_TYPES,
    content_of,
    customer_of,
    parse_read,
    parse_send,
)
from flowchat_gateway.cloud_api_service import CloudApiService, body_hash, check_version
from flowchat_gateway.errors import CloudApiError
from flowchat_sandbox.spec import SendValidator, load_spec

EXAMPLES: dict[str, Any] = SendValidator(load_spec()).examples
_UNIQUE = itertools.count()
_PLACEHOLDER = re.compile(r"^(\{\{.*\}\}|<.*>)$")

#: Spec examples of what FlowChat does not send, and Meta's code for the refusal.
REFUSED = {
    "Send Catalog Message": 131051,
    "Send Draft Flow by ID": 131051,
    "Send Draft Flow by Name": 131051,
    "Send Published Flow by ID": 131051,
    "Send Published Flow by Name": 131051,
    "Send Multi-Product Message": 131051,
    "Send Single Product Message": 131051,
    "Send Order Details Message": 131051,
    "Send Order Status Message": 131051,
    "Send Catalog Template Message": 131009,  # an `action` parameter
    "Send Flow Template Message": 131009,
    # Meta's example gives a quick reply's text as a JSON boolean: not a string
    "Send Sample Issue Resolution Template": 100,
}
READS = {"Send typing indicator and read receipt"}


def fill(node: Any, key: str | None = None) -> Any:
    """Meta's placeholders (``{{Recipient-Phone-Number}}``, ``<MSGID>``) made real."""
    if isinstance(node, dict):
        return {k: fill(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [fill(v, key) for v in node]
    if isinstance(node, str) and (_PLACEHOLDER.match(node) or node == "language-and-locale-code"):
        return {"to": "4915112345678", "code": "en_US", "message_id": "wamid.ABC"}.get(
            key or "", f"v{next(_UNIQUE)}"
        )
    return node


def translate(body: dict[str, Any]) -> tuple[str, Any]:
    request = parse_send(body)
    return customer_of(request)[1], content_of(request)


def test_the_spec_has_the_examples_this_test_expects() -> None:
    assert len(EXAMPLES) == 50
    assert set(REFUSED) | READS <= set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(set(EXAMPLES) - set(REFUSED) - READS))
def test_every_supported_example_is_translated(name: str) -> None:
    body = fill(EXAMPLES[name])
    to, content = translate(body)
    assert to.lstrip("+").isdigit()
    kind = body.get("type") or next((k for k in SUPPORTED_TYPES if k in body), "text")
    expected = {"interactive": f"interactive_{'buttons' if 'Button' in name else 'list'}"}
    assert content.type == expected.get(kind, kind)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_flowchat_does_not_send_is_refused_with_metas_code(name: str) -> None:
    with pytest.raises(CloudApiError) as refused:
        translate(fill(EXAMPLES[name]))
    assert refused.value.code == REFUSED[name]
    assert refused.value.status == 400


def test_the_read_receipt_example_is_a_read() -> None:
    read = parse_read(EXAMPLES["Send typing indicator and read receipt"])
    assert read.message_id.startswith("wamid.")


def test_a_template_with_every_parameter_kind() -> None:
    _, content = translate(
        {
            "messaging_product": "whatsapp",
            "to": "+49 151 1234 5678",
            "type": "template",
            "template": {
                "name": "order_update",
                "language": {"code": "de", "policy": "deterministic"},
                "components": [
                    {"type": "HEADER", "parameters": [{"type": "image", "image": {"id": "77"}}]},
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": "Ada", "parameter_name": "name"},
                            {
                                "type": "currency",
                                "currency": {
                                    "fallback_value": "$100.99",
                                    "code": "USD",
                                    "amount_1000": 100990,
                                },
                            },
                            {"type": "date_time", "date_time": {"fallback_value": "Feb 25"}},
                        ],
                    },
                    {
                        "type": "button",
                        "sub_type": "URL",
                        "index": "1",
                        "parameters": [{"type": "text", "text": "A-17"}],
                    },
                    {
                        "type": "button",
                        "sub_type": "quick_reply",
                        "index": 0,
                        "parameters": [{"type": "payload", "payload": "track"}],
                    },
                ],
            },
        }
    )
    assert content.type == "template"
    header, body, url, quick = content.components
    assert (header.type, header.parameters[0].media_id) == ("header", "77")
    assert body.parameters[0].parameter_name == "name"
    assert body.parameters[1].amount == Decimal("100.99")
    assert body.parameters[1].currency_code == "USD"
    assert body.parameters[2].fallback_value == "Feb 25"
    assert (url.sub_type, url.index, url.parameters[0].text) == ("url", 1, "A-17")
    assert (quick.sub_type, quick.index, quick.parameters[0].payload) == ("quick_reply", 0, "track")


@pytest.mark.parametrize(
    ("body", "code", "where"),
    [
        ({"to": "4915112345678", "text": {"body": "x"}}, 100, "messaging_product"),
        ({"messaging_product": "whatsapp", "text": {"body": "x"}}, 100, "to"),
        ({"messaging_product": "whatsapp", "to": "49", "text": {"body": "x"}}, 100, "to"),
        ({"messaging_product": "whatsapp", "recipient": "4915112345678"}, 100, "recipient"),
        ({"messaging_product": "whatsapp", "to": "4915112345678", "type": "image"}, 100, "image"),
        (
            {
                "messaging_product": "whatsapp",
                "to": "4915112345678",
                "image": {"id": "1", "link": "https://e.x/a.jpg"},
            },
            100,
            "exactly one of media_id and link",
        ),
        (
            {"messaging_product": "whatsapp", "to": "4915112345678", "text": {"body": "x" * 4097}},
            100,
            "text.body",
        ),
        (
            {
                "messaging_product": "whatsapp",
                "to": "4915112345678",
                "sticker": {"link": "l"},
                "x": 1,
            },
            100,
            "x",
        ),
    ],
)
def test_bad_bodies_name_the_parameter(body: dict[str, Any], code: int, where: str) -> None:
    with pytest.raises(CloudApiError) as refused:
        translate(body)
    assert refused.value.code == code
    assert where in refused.value.details


def test_a_bsuid_is_addressed_by_recipient_or_to() -> None:
    bsuid = "US.13491208655302741918"
    for field in ("recipient", "to"):
        request = parse_send({"messaging_product": "whatsapp", field: bsuid, "text": {"body": "x"}})
        assert customer_of(request) == (bsuid, bsuid, {"input": bsuid, "user_id": bsuid})
    # `to` wins when both are given, as Meta documents
    both = parse_send({"messaging_product": "whatsapp", "to": "+4915112345678", "recipient": bsuid})
    assert customer_of(both)[1:] == (
        "4915112345678",
        {"input": "+4915112345678", "wa_id": "4915112345678"},
    )


def test_wamid_of_is_reversible_and_never_claims_a_providers_id() -> None:
    message_id = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    wamid = wamid_of(message_id)
    assert wamid.startswith("wamid.")
    assert message_id_of(wamid) == message_id
    assert message_id_of("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRB") is None
    assert message_id_of("wamid.!!!") is None
    assert message_id_of("SM123") is None


def test_versions_and_body_hashes() -> None:
    check_version("v23.0")
    check_version("v24")
    for bad in ("23.0", "v23.0.1", "vX", "latest"):
        with pytest.raises(CloudApiError):
            check_version(bad)
    body = {"messaging_product": "whatsapp", "to": "1", "text": {"body": "x"}}
    assert body_hash("1", body) == body_hash("1", dict(reversed(body.items())))
    assert body_hash("1", body) != body_hash("2", body)


def test_templates_paging_links_point_at_the_gateway_without_the_token() -> None:
    none: Any = None
    service = CloudApiService(
        tenants=none, send=none, graph=none, media=none, states=none, public_url="http://gw/"
    )
    meta = {
        "data": [{"name": "a"}],
        "paging": {
            "cursors": {"before": "B", "after": "A"},
            "next": "https://graph.facebook.com/v23.0/42/message_templates"
            "?access_token=EAAG-secret&limit=1&after=A",
            "previous": "https://graph.facebook.com/v23.0/42/message_templates"
            "?access_token=EAAG-secret&limit=1&before=B",
        },
    }
    page = service._local_paging(meta, "v23.0", "42")
    assert page["data"] == meta["data"]
    assert page["paging"]["cursors"] == {"before": "B", "after": "A"}
    assert page["paging"]["next"] == "http://gw/v23.0/42/message_templates?limit=1&after=A"
    assert page["paging"]["previous"] == "http://gw/v23.0/42/message_templates?limit=1&before=B"
    assert service._local_paging({"data": []}, "v23.0", "42") == {"data": []}


def test_cta_url_is_refused_as_a_type_flowchat_does_not_send() -> None:
    body = {
        "messaging_product": "whatsapp",
        "to": "4915112345678",
        "type": "interactive",
        "interactive": {
            "type": "cta_url",
            "body": {"text": "See the order"},
            "action": {
                "name": "cta_url",
                "parameters": {"display_text": "Open", "url": "https://example.com/o/1"},
            },
        },
    }
    with pytest.raises(CloudApiError) as refused:
        translate(body)
    assert refused.value.code == 131051
    assert "cta_url" in refused.value.details
