"""The WhatsApp facts kept once in :mod:`flowchat_contracts.whatsapp` (reference §5, §6)."""

import pytest

from flowchat_contracts.whatsapp import (
    KB,
    MAX_MEDIA_BYTES,
    MB,
    MEDIA_TYPES,
    STICKER_ANIMATED_MAX,
    STICKER_STATIC_MAX,
    TEMPLATE_CATEGORIES,
    TEMPLATE_STATUSES,
    TemplateDefinition,
    normalize_mime,
    parameter_mismatch,
    placeholders,
)


@pytest.mark.parametrize(
    ("mime", "kind", "limit"),
    [
        ("image/jpeg", "image", 5 * MB),
        ("image/png", "image", 5 * MB),
        ("audio/ogg", "audio", 16 * MB),
        ("video/3gpp", "video", 16 * MB),
        ("application/pdf", "document", 100 * MB),
        ("text/plain", "document", 100 * MB),
        ("image/webp", "sticker", 500 * KB),
    ],
)
def test_media_types_give_the_kind_and_limit_of_the_reference_table(
    mime: str, kind: str, limit: int
) -> None:
    assert MEDIA_TYPES[mime] == (kind, limit)


def test_media_limits() -> None:
    assert {kind for kind, _ in MEDIA_TYPES.values()} == {
        "image",
        "video",
        "audio",
        "document",
        "sticker",
    }
    assert MAX_MEDIA_BYTES == 100 * MB
    assert (STICKER_STATIC_MAX, STICKER_ANIMATED_MAX) == (100 * KB, 500 * KB)
    assert "image/gif" not in MEDIA_TYPES


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("image/jpeg", "image/jpeg"),
        (" Image/JPEG ; charset=binary", "image/jpeg"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_mime_keeps_the_lowercased_essence(raw: str | None, expected: str) -> None:
    assert normalize_mime(raw) == expected


def test_placeholders_are_positional_or_named_each_once_in_order() -> None:
    assert placeholders("Hi {{1}}, {{2}} and {{1}} again") == ["1", "2"]
    assert placeholders("{{ first_name }} in {{city}}: {{first_name}}") == ["first_name", "city"]
    assert placeholders("https://x.test/track/{{1}}") == ["1"]
    assert placeholders("no slots, {single} or {{bad-name}}") == []
    assert placeholders(None) == []


@pytest.mark.parametrize(
    ("slots", "names", "named", "expected"),
    [
        (["1", "2"], [None, None], False, None),
        (["1", "2"], [None], False, "count"),
        ([], [None], False, "count"),
        (["1"], ["1"], False, "named_positional"),
        (["name", "city"], ["city", "name"], True, None),
        (["name", "city"], ["name"], True, "count"),
        (["name", "city"], ["name", None], True, "unnamed"),
        (["name", "city"], ["name", "town"], True, "names"),
        (["name", "city"], ["name", "name"], True, "names"),
        ([], [], True, None),
    ],
)
def test_parameter_mismatch_checks_count_then_format(
    slots: list[str], names: list[str | None], named: bool, expected: str | None
) -> None:
    assert parameter_mismatch(slots, names, named=named) == expected


def test_template_definition_reads_a_message_templates_item() -> None:
    item = {
        "name": "promo",
        "language": "en_US",
        "status": "approved",
        "category": "marketing",
        "parameter_format": "named",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Hi {{first_name}}"},
            {"type": "BODY", "text": "{{first_name}}, {{deal}}"},
            "not a component",
        ],
        "id": "123",
    }
    t = TemplateDefinition.from_graph(item)
    assert (t.name, t.language, t.status, t.category) == ("promo", "en_US", "APPROVED", "MARKETING")
    assert t.named
    assert len(t.components) == 2
    assert t.component("body") == {"type": "BODY", "text": "{{first_name}}, {{deal}}"}
    assert t.component("BUTTONS") is None
    assert TemplateDefinition.from_graph(t.as_json()) == t
    assert t.status in TEMPLATE_STATUSES
    assert t.category in TEMPLATE_CATEGORIES


def test_template_definition_defaults() -> None:
    class Campaign(TemplateDefinition):
        DEFAULT_CATEGORY = "UTILITY"

    bare = TemplateDefinition.from_graph({"name": "x", "parameter_format": None})
    assert (bare.status, bare.category, bare.parameter_format) == ("", "", "POSITIONAL")
    assert not bare.named
    assert bare.components == ()
    campaign = Campaign.from_graph({"name": "x"})
    assert isinstance(campaign, Campaign)
    assert campaign.category == "UTILITY"
