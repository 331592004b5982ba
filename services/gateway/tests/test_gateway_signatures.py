"""Webhook signatures (Meta HMAC-SHA256, Twilio HMAC-SHA1)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from twilio.request_validator import RequestValidator

from flowchat_gateway.signatures import (
    meta_signature,
    meta_signature_valid,
    twilio_signature,
    twilio_signature_valid,
)

SECRET = "meta-app-secret-0123456789"
BODY = b'{"object":"whatsapp_business_account","entry":[]}'


def test_meta_signature_is_hmac_sha256_hex_of_the_raw_body() -> None:
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert meta_signature(SECRET, BODY) == "sha256=" + expected
    assert meta_signature_valid(SECRET, BODY, "sha256=" + expected)
    assert meta_signature_valid(SECRET, BODY, "sha256=" + expected.upper())


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha1=" + hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest(),
        hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest(),  # no prefix
        meta_signature("another-secret-000000", BODY),
    ],
)
def test_meta_signature_rejects(header: str | None) -> None:
    assert not meta_signature_valid(SECRET, BODY, header)


def test_meta_signature_rejects_a_one_byte_change() -> None:
    header = meta_signature(SECRET, BODY)
    tampered = BODY.replace(b"[]", b"[ ]")
    assert not meta_signature_valid(SECRET, tampered, header)
    assert not meta_signature_valid("", BODY, header)


TOKEN = "twilio-auth-token-0123456789ab"
URL = "https://gw.example.com/webhooks/twilio/acc-1"
PARAMS = {
    "MessageSid": "SM0123",
    "From": "whatsapp:+14155552671",
    "To": "whatsapp:+14155550100",
    "Body": "Hello, ünïcode & spaces + plus",
    "NumMedia": "0",
    "Empty": "",
}


@pytest.mark.parametrize(
    "url",
    [URL, URL + "?foo=bar&a=1", "http://127.0.0.1:8700/webhooks/twilio/acc-1", "https://x.io/"],
)
def test_twilio_signature_matches_the_twilio_package(url: str) -> None:
    reference = RequestValidator(TOKEN)
    signature = reference.compute_signature(url, PARAMS)
    assert twilio_signature(TOKEN, url, PARAMS.items()) == signature
    assert twilio_signature_valid(TOKEN, url, list(PARAMS.items()), signature)
    # and what we accept, the reference accepts
    assert reference.validate(url, PARAMS, twilio_signature(TOKEN, url, PARAMS.items()))


def test_twilio_signature_rejects_a_one_byte_change() -> None:
    signature = RequestValidator(TOKEN).compute_signature(URL, PARAMS)
    tampered = dict(PARAMS, Body=PARAMS["Body"][:-1] + "S")
    assert not twilio_signature_valid(TOKEN, URL, list(tampered.items()), signature)
    assert not twilio_signature_valid(TOKEN, URL + "x", list(PARAMS.items()), signature)
    assert not twilio_signature_valid(TOKEN + "x", URL, list(PARAMS.items()), signature)
    assert not twilio_signature_valid(TOKEN, URL, list(PARAMS.items()), None)
    extra = [*PARAMS.items(), ("Injected", "1")]
    assert not twilio_signature_valid(TOKEN, URL, extra, signature)


def test_twilio_signature_with_and_without_the_default_port() -> None:
    signature = RequestValidator(TOKEN).compute_signature(URL.replace(".com/", ".com:443/"), PARAMS)
    assert twilio_signature_valid(TOKEN, URL, list(PARAMS.items()), signature)
    signature = RequestValidator(TOKEN).compute_signature(URL, PARAMS)
    assert twilio_signature_valid(
        TOKEN, URL.replace(".com/", ".com:443/"), list(PARAMS.items()), signature
    )


def test_twilio_repeated_parameters_are_sorted_by_value() -> None:
    pairs = [("MediaUrl", "b"), ("MediaUrl", "a"), ("Body", "x")]
    data = URL + "Bodyx" + "MediaUrla" + "MediaUrlb"
    import base64

    expected = base64.b64encode(hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest())
    assert twilio_signature(TOKEN, URL, pairs) == expected.decode()
