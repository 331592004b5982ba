"""The send validator built from Meta's OpenAPI spec (no I/O)."""

from __future__ import annotations

import copy

import pytest

from flowchat_sandbox.errors import GraphError
from flowchat_sandbox.spec import SendValidator, find_operation, load_spec, validate_read


@pytest.fixture(scope="module")
def spec():
    return load_spec()


@pytest.fixture(scope="module")
def validator(spec):
    return SendValidator(spec)


def code_of(validator, body) -> int:
    with pytest.raises(GraphError) as info:
        validator.validate(body)
    return info.value.code


def test_validator_uses_the_spec_operation(spec, validator):
    operation = find_operation(spec, "sendMessage")
    assert operation["method"] == "post"
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Message"
    }
    assert validator.types == {
        "text", "audio", "document", "image", "location", "video", "sticker",
        "reaction", "interactive", "template", "contacts",
    }  # fmt: skip


def test_the_published_spec_is_not_mutated(spec):
    before = copy.deepcopy(spec)
    SendValidator(spec)
    assert spec == before


def test_all_50_spec_examples_are_accepted(validator):
    examples = validator.examples
    assert len(examples) == 50
    for name, example in examples.items():
        body = copy.deepcopy(example)
        if body.get("status") == "read":
            assert validate_read(body).startswith("wamid.")
            continue
        if name == "Send Multi-Product Message":
            # the example leaves an enum value as a placeholder; any real value passes
            assert body["interactive"]["header"]["type"] == "<HEADER_TYPE>"
            body["interactive"]["header"]["type"] = "text"
        if name == "Send Sample Issue Resolution Template":
            # Meta's converter turned the quick replies "Yes" and "No" into YAML booleans
            buttons = body["template"]["components"][1:]
            assert [b["parameters"][0]["text"] for b in buttons] == [True, False]
            for button, text in zip(buttons, ("Yes", "No"), strict=True):
                button["parameters"][0]["text"] = text
        validator.validate(body)


def test_placeholder_enum_value_is_rejected(validator):
    body = validator.examples["Send Multi-Product Message"]
    assert code_of(validator, body) == 100


@pytest.mark.parametrize(
    ("name", "mutate", "code"),
    [
        ("Send Text Message", lambda b: b.pop("to"), 131008),
        ("Send Text Message", lambda b: b["text"].update(body="x" * 4097), 131009),
        ("Send Text Message", lambda b: b["text"].update(colour="red"), 100),
        ("Send Text Message", lambda b: b.update(unknown_field=1), 100),
        ("Send Text Message", lambda b: b.update(recipient_type="crowd"), 100),
        ("Send Text Message", lambda b: b.update(messaging_product="sms"), 100),
        ("Send Image Message by ID", lambda b: b["image"].update(link="https://x/y.jpg"), 100),
        ("Send Image Message by ID", lambda b: b["image"].pop("id"), 131008),
        ("Send Image Message by URL", lambda b: b["image"].update(caption="c" * 1025), 131009),
        ("Send Document Message by ID", lambda b: b["document"].update(caption="c" * 1025), 131009),
        (
            "Send Reply Button",
            lambda b: b["interactive"]["action"].update(
                buttons=[{"type": "reply", "reply": {"id": str(i), "title": "t"}} for i in range(4)]
            ),
            131009,
        ),
        (
            "Send Reply Button",
            lambda b: b["interactive"]["action"]["buttons"][0]["reply"].update(title="t" * 21),
            131009,
        ),
        (
            "Send List Message",
            lambda b: b["interactive"]["action"]["sections"][0]["rows"][0].update(title="t" * 25),
            131009,
        ),
        (
            "Send List Message",
            lambda b: b["interactive"]["action"]["sections"][0]["rows"][0].update(
                description="d" * 73
            ),
            131009,
        ),
        (
            "Send List Message",
            lambda b: b["interactive"]["action"]["sections"][0]["rows"].extend(
                [{"id": f"r{i}", "title": "row"} for i in range(10)]
            ),
            131009,
        ),
        ("Send List Message", lambda b: b["interactive"]["action"].update(button="b" * 21), 131009),
        ("Send Location Message", lambda b: b["location"].update(latitude=[1]), 100),
        ("Send Message Template Text", lambda b: b["template"].pop("language"), 131008),
        ("Send Message Template Text", lambda b: b["template"]["language"].update(code=5), 100),
        # template components and parameters are checked against their concrete schema
        (
            "Send Sample Shipping Confirmation Template",
            lambda b: b["template"]["components"][0]["parameters"][1].pop("currency"),
            131008,
        ),
        (
            "Send Sample Shipping Confirmation Template",
            lambda b: b["template"]["components"][0]["parameters"][0].update(text=5),
            100,
        ),
        (
            "Send Flow Template Message",
            lambda b: b["template"]["components"][0]["parameters"][0].pop("action"),
            131008,
        ),
        (
            "Send Message Template Media",
            lambda b: b["template"]["components"][0]["parameters"][0].update(type="sticker"),
            100,
        ),
        ("Send Reply with Reaction Message", lambda b: b["reaction"].update(emoji=7), 100),
        ("Send Text Message", lambda b: b.update(type="fax"), 131051),
    ],
)
def test_broken_variants_fail_with_metas_codes(validator, name, mutate, code):
    body = copy.deepcopy(validator.examples[name])
    mutate(body)
    assert code_of(validator, body) == code


def test_meta_defaults_type_and_recipient_type(validator):
    body = validator.validate({"messaging_product": "whatsapp", "to": "1", "text": {"body": "x"}})
    assert body["type"] == "text"
    assert body["recipient_type"] == "individual"
    inferred = validator.validate(
        {"messaging_product": "whatsapp", "to": "1", "image": {"id": "5"}}
    )
    assert inferred["type"] == "image"


def test_error_details_name_the_parameter(validator):
    body = copy.deepcopy(validator.examples["Send Reply Button"])
    body["interactive"]["action"]["buttons"][1]["reply"]["title"] = "t" * 21
    with pytest.raises(GraphError) as info:
        validator.validate(body)
    assert "interactive['action']['buttons'][1]['reply']['title']" in info.value.details
    assert info.value.body()["error"]["message"] == "(#131009) Parameter value is not valid"


def test_cached_verdicts_match_fresh_ones(spec):
    validator = SendValidator(spec)
    good = {"messaging_product": "whatsapp", "to": "111111", "type": "text", "text": {"body": "x"}}
    bad = {**good, "text": {"body": "x" * 4097}}
    for to in ("111111", "222222", "+1 (650) 555-1234"):
        assert validator.validate({**good, "to": to})["to"] == to
        assert code_of(validator, {**bad, "to": to}) == 131009
    # a different body is judged afresh, not by the cached verdict of another
    assert code_of(validator, {**good, "text": {"body": "y", "extra": 1}}) == 100
    assert code_of(validator, {**good, "to": 7}) == 100


def test_cached_verdicts_ignore_callback_data_values_but_not_their_limit(spec):
    validator = SendValidator(spec)
    good = {"messaging_product": "whatsapp", "to": "1", "type": "text", "text": {"body": "x"}}
    for data in ("m-1", "m-2", "x" * 512):
        assert validator.validate({**good, "biz_opaque_callback_data": data})
    # one verdict serves every callback value of this shape
    assert len(validator._verdicts) == 1
    assert code_of(validator, {**good, "biz_opaque_callback_data": "x" * 513}) == 131009
    assert code_of(validator, {**good, "biz_opaque_callback_data": 7}) == 100
    # a body without callback data is not the same shape as one with it
    assert code_of(validator, {**good, "text": {"body": "x" * 4097}}) == 131009
    with_data = {**good, "text": {"body": "x" * 4097}, "biz_opaque_callback_data": "m"}
    assert code_of(validator, with_data) == 131009
