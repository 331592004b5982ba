"""Unit tests (no I/O): template checks and media limits."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from flowchat_contracts import TemplateComponent, TemplateContent, TemplateParameter
from flowchat_contracts.whatsapp import KB, MB, STICKER_ANIMATED_MAX, STICKER_STATIC_MAX
from flowchat_sender import fates
from flowchat_sender.errors import MediaRefused
from flowchat_sender.media import check_media, is_animated_webp
from flowchat_sender.templates import Refusal, Template, check_template, check_twilio

ORDER = Template.from_graph(
    {
        "name": "order_update",
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
            {"type": "BODY", "text": "Hi {{1}}, your order {{2}} ships {{3}}."},
            {"type": "FOOTER", "text": "Thanks"},
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Stop"},
                    {"type": "URL", "text": "Track", "url": "https://x.test/t/{{1}}"},
                    {"type": "URL", "text": "Shop", "url": "https://x.test/shop"},
                ],
            },
        ],
    }
)
PROMO = Template.from_graph(
    {
        "name": "promo",
        "language": "en",
        "status": "APPROVED",
        "category": "MARKETING",
        "parameter_format": "NAMED",
        "components": [
            {"type": "HEADER", "format": "IMAGE"},
            {"type": "BODY", "text": "Hi {{first_name}}, {{discount}} off today"},
        ],
    }
)


def text(value: str, name: str | None = None) -> TemplateParameter:
    return TemplateParameter(type="text", text=value, parameter_name=name)


def order(**overrides: Any) -> TemplateContent:
    parts: dict[str, TemplateComponent] = {
        "header": TemplateComponent(type="header", parameters=[text("42")]),
        "body": TemplateComponent(
            type="body",
            parameters=[
                text("Ann"),
                text("#42"),
                TemplateParameter(type="date_time", fallback_value="tomorrow"),
            ],
        ),
        "track": TemplateComponent(type="button", sub_type="url", index=1, parameters=[text("42")]),
    }
    parts.update(overrides)
    return TemplateContent(
        name="order_update", language="en_US", components=[p for p in parts.values() if p]
    )


def promo(params: list[TemplateParameter], header: list[TemplateParameter]) -> TemplateContent:
    return TemplateContent(
        name="promo",
        language="en",
        components=[
            TemplateComponent(type="header", parameters=header),
            TemplateComponent(type="body", parameters=params),
        ],
    )


IMAGE = TemplateParameter(type="image", link="https://x.test/a.jpg")


def refused(template: Template, content: TemplateContent) -> Refusal:
    with pytest.raises(Refusal) as caught:
        check_template(template, content)
    return caught.value


def test_matching_parameters_pass() -> None:
    check_template(ORDER, order())
    quick = TemplateComponent(
        type="button",
        sub_type="quick_reply",
        index=0,
        parameters=[TemplateParameter(type="payload", payload="STOP")],
    )
    check_template(ORDER, order(quick=quick))
    check_template(PROMO, promo([text("Ann", "first_name"), text("10%", "discount")], [IMAGE]))


@pytest.mark.parametrize(
    ("overrides", "code", "words"),
    [
        (
            {"body": TemplateComponent(type="body", parameters=[text("Ann")])},
            fates.TEMPLATE_PARAMETER_COUNT,
            "body: the template has 3 parameter(s) ({{1}}, {{2}}, {{3}}), 1 given",
        ),
        ({"header": None}, fates.TEMPLATE_PARAMETER_COUNT, "header: the template has 1"),
        (
            {"body": TemplateComponent(type="body", parameters=[text("a", "n")] * 3)},
            fates.TEMPLATE_PARAMETER_FORMAT,
            "positional parameters",
        ),
        (
            {"header": TemplateComponent(type="header", parameters=[text("line\nbreak")])},
            fates.TEMPLATE_PARAMETER_FORMAT,
            "new lines",
        ),
        (
            {"header": TemplateComponent(type="header", parameters=[IMAGE])},
            fates.TEMPLATE_PARAMETER_FORMAT,
            "image parameter cannot fill a text placeholder",
        ),
        ({"track": None}, fates.TEMPLATE_PARAMETER_COUNT, "button 1: the template's URL button"),
        (
            {"track": TemplateComponent(type="button", sub_type="quick_reply", index=1)},
            fates.TEMPLATE_PARAMETER_FORMAT,
            "use sub_type url",
        ),
        (
            {
                "shop": TemplateComponent(
                    type="button", sub_type="url", index=2, parameters=[text("x")]
                )
            },
            fates.TEMPLATE_PARAMETER_FORMAT,
            "static",
        ),
        (
            {"x": TemplateComponent(type="button", sub_type="url", index=5)},
            fates.TEMPLATE_PARAMETER_FORMAT,
            "has 3 button(s)",
        ),
        (
            {
                "q": TemplateComponent(
                    type="button", sub_type="quick_reply", index=0, parameters=[text("x")]
                )
            },
            fates.TEMPLATE_PARAMETER_FORMAT,
            "payload",
        ),
    ],
)
def test_mismatches_are_refused_with_a_reason(
    overrides: dict[str, Any], code: int, words: str
) -> None:
    refusal = refused(ORDER, order(**overrides))
    assert refusal.code == code
    assert words in refusal.message


def test_named_templates_need_the_names() -> None:
    positional = refused(PROMO, promo([text("Ann"), text("10%")], [IMAGE]))
    assert positional.code == fates.TEMPLATE_PARAMETER_FORMAT
    assert "parameter_name" in positional.message
    wrong = refused(PROMO, promo([text("Ann", "first_name"), text("1", "price")], [IMAGE]))
    assert "expected parameters named first_name, discount" in wrong.message


def test_media_header_needs_one_parameter_of_its_kind() -> None:
    names = [text("Ann", "first_name"), text("10%", "discount")]
    assert refused(PROMO, promo(names, [])).code == fates.TEMPLATE_PARAMETER_COUNT
    video = TemplateParameter(type="video", link="https://x.test/a.mp4")
    assert "needs a image parameter, not video" in refused(PROMO, promo(names, [video])).message
    empty = TemplateParameter(type="image")
    assert "media_id or a link" in refused(PROMO, promo(names, [empty])).message


def test_currency_parameter_needs_code_and_amount() -> None:
    body = TemplateComponent(
        type="body",
        parameters=[text("Ann"), TemplateParameter(type="currency", amount=Decimal(5)), text("x")],
    )
    assert "currency_code" in refused(ORDER, order(body=body)).message


@pytest.mark.parametrize("status", ["PAUSED", "DISABLED", "PENDING", "REJECTED"])
def test_only_approved_templates_are_sent(status: str) -> None:
    template = Template.from_graph({**ORDER.as_json(), "status": status})
    refusal = refused(template, order())
    assert refusal.code == fates.TEMPLATE_NOT_APPROVED
    assert status in refusal.message


def test_copy_code_and_location_cannot_be_carried() -> None:
    copy = Template.from_graph(
        {
            "name": "c",
            "language": "en",
            "status": "APPROVED",
            "components": [{"type": "BUTTONS", "buttons": [{"type": "COPY_CODE"}]}],
        }
    )
    assert "coupon_code" in refused(copy, TemplateContent(name="c", language="en")).message
    where = Template.from_graph(
        {
            "name": "w",
            "language": "en",
            "status": "APPROVED",
            "components": [{"type": "HEADER", "format": "LOCATION"}],
        }
    )
    assert "LOCATION" in refused(where, TemplateContent(name="w", language="en")).message


def test_twilio_checks_only_the_content_sid_and_parameter_style() -> None:
    check_twilio(TemplateContent(name="HX" + "a" * 32, language="en"))
    with pytest.raises(Refusal) as bad_sid:
        check_twilio(TemplateContent(name="order_update", language="en"))
    assert bad_sid.value.code == fates.TEMPLATE_UNKNOWN
    mixed = TemplateContent(
        name="HX" + "b" * 32,
        language="en",
        components=[TemplateComponent(type="body", parameters=[text("a", "x"), text("b")])],
    )
    with pytest.raises(Refusal, match="all named or all positional"):
        check_twilio(mixed)
    media = TemplateContent(
        name="HX" + "c" * 32,
        language="en",
        components=[
            TemplateComponent(
                type="header", parameters=[TemplateParameter(type="image", media_id="1")]
            )
        ],
    )
    with pytest.raises(Refusal, match="URL only"):
        check_twilio(media)


def test_own_codes_are_permanent_and_explained() -> None:
    for code in (
        fates.OPTED_OUT,
        fates.TEMPLATE_UNKNOWN,
        fates.TEMPLATE_NOT_APPROVED,
        fates.TEMPLATE_PARAMETER_COUNT,
        fates.TEMPLATE_PARAMETER_FORMAT,
        fates.MEDIA_REFUSED,
    ):
        rule = fates.rule_for("flowchat", code)
        assert rule.fate is fates.Fate.FAIL
        assert rule.hint != "unclassified provider error"


# --------------------------------------------------------------------- media limits


def webp(size: int, *, animated: bool) -> bytes:
    head = b"RIFF" + (size - 8).to_bytes(4, "little") + b"WEBPVP8X" + (10).to_bytes(4, "little")
    flags = bytes([0x02 if animated else 0x00])
    return (head + flags).ljust(size, b"\0")


def test_media_limits_per_kind() -> None:
    assert check_media("image/png", b"x" * (5 * MB)) == "image"
    assert check_media("IMAGE/JPEG; q=1", b"x") == "image"
    assert check_media("application/pdf", b"%PDF") == "document"
    assert check_media("audio/ogg", b"x", kind="audio") == "audio"
    with pytest.raises(MediaRefused) as too_big:
        check_media("image/png", b"x" * (5 * MB + 1))
    assert too_big.value.reason == "size"
    with pytest.raises(MediaRefused) as gif:
        check_media("image/gif", b"GIF89a")
    assert gif.value.reason == "type"
    with pytest.raises(MediaRefused) as kind:
        check_media("image/png", b"x", kind="document")
    assert kind.value.reason == "kind"
    with pytest.raises(MediaRefused):
        check_media("video/mp4", b"")


def test_stickers_static_100_kb_animated_500_kb() -> None:
    assert is_animated_webp(webp(1 * KB, animated=True))
    assert not is_animated_webp(webp(1 * KB, animated=False))
    assert check_media("image/webp", webp(STICKER_STATIC_MAX, animated=False)) == "sticker"
    with pytest.raises(MediaRefused):
        check_media("image/webp", webp(STICKER_STATIC_MAX + 1, animated=False))
    assert check_media("image/webp", webp(STICKER_ANIMATED_MAX, animated=True)) == "sticker"
    with pytest.raises(MediaRefused):
        check_media("image/webp", webp(STICKER_ANIMATED_MAX + 1, animated=True))
