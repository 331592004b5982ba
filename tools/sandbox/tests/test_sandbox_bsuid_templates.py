"""131062: one-tap, zero-tap and copy-code authentication templates go to phone numbers
only (README "Where Meta's OpenAPI spec and Meta's live API differ").

Meta's BSUID page: "One-tap, zero-tap, and copy-code authentication templates still
require phone numbers"; sent by ``recipient`` (a BSUID) they fail with 131062,
"Business-scoped User ID (BSUID) recipients are not supported for this message". Every
other template, and the same template sent with ``to``, goes through.
"""

from __future__ import annotations

from typing import Any

import pytest

from flowchat_contracts import meta_codes

WA = "2348010000999"


async def bsuid_customer(client: Any) -> str:
    r = await client.put(
        f"/sandbox/customers/{WA}",
        json={"username": "ada.k", "phone_hidden": True, "name": "Ada"},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["user_id"])


async def template(client: Any, number: Any, name: str, category: str, buttons: list[Any]) -> None:
    r = await client.post(
        "/sandbox/templates",
        json={
            "waba_id": number.waba_id,
            "name": name,
            "language": "en_US",
            "category": category,
            "components": [
                {"type": "BODY", "text": "*{{1}}* is your verification code."},
                {"type": "BUTTONS", "buttons": buttons},
            ],
        },
    )
    assert r.status_code in (200, 201), r.text


def send(name: str, *, to: str | None = None, recipient: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "type": "template",
        "template": {
            "name": name,
            "language": {"code": "en_US"},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "123456"}]},
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": "0",
                    "parameters": [{"type": "text", "text": "123456"}],
                },
            ],
        },
    }
    if to is not None:
        body["to"] = to
    if recipient is not None:
        body["recipient"] = recipient
    return body


OTP_BUTTONS: dict[str, list[dict[str, Any]]] = {
    # as created: Meta's template definitions (either case)
    "copy_code": [{"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code"}],
    "one_tap": [
        {
            "type": "otp",
            "otp_type": "one_tap",
            "text": "Copy code",
            "autofill_text": "Autofill",
            "package_name": "com.example.app",
            "signature_hash": "K8a/AINcGX7",
        }
    ],
    "zero_tap": [
        {
            "type": "OTP",
            "otp_type": "ZERO_TAP",
            "text": "Copy code",
            "zero_tap_terms_accepted": True,
            "supported_apps": [
                {"package_name": "com.example.app", "signature_hash": "K8a/AINcGX7"}
            ],
        }
    ],
    # as Meta reads an OTP button back: a URL button to whatsapp.com/otp
    "read_back": [
        {
            "type": "URL",
            "text": "Copy code",
            "url": "https://www.whatsapp.com/otp/code/?otp_type=COPY_CODE&code=otp{{1}}",
        }
    ],
}


@pytest.mark.parametrize("kind", sorted(OTP_BUTTONS))
async def test_an_otp_authentication_template_to_a_bsuid_is_131062(client, number, kind):
    user_id = await bsuid_customer(client)
    name = f"otp_{kind}"
    await template(client, number, name, "AUTHENTICATION", OTP_BUTTONS[kind])
    r = await client.post(
        number.messages_path, headers=number.auth, json=send(name, recipient=user_id)
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == int(meta_codes.MetaCode.BSUID_UNSUPPORTED_FOR_MESSAGE) == 131062
    assert error["message"] == f"(#131062) {meta_codes.title(131062)}"
    assert error["error_data"]["details"].startswith(
        "Business-scoped User ID (BSUID) recipients are not supported for this message"
    )
    # the same template to the phone number goes out; so does a send naming both (to wins)
    r = await client.post(number.messages_path, headers=number.auth, json=send(name, to=WA))
    assert r.status_code == 200, r.text
    assert r.json()["contacts"] == [{"input": WA, "wa_id": WA}]
    both = send(name, to=WA, recipient=user_id)
    r = await client.post(number.messages_path, headers=number.auth, json=both)
    assert r.status_code == 200, r.text


async def test_other_templates_go_to_a_bsuid(client, number):
    user_id = await bsuid_customer(client)
    url_button = [{"type": "URL", "text": "Track", "url": "https://shop.example/t/{{1}}"}]
    await template(client, number, "track_order", "UTILITY", url_button)
    # an OTP-looking button outside the AUTHENTICATION category is no OTP template
    await template(client, number, "promo_code", "MARKETING", OTP_BUTTONS["copy_code"])
    for name in ("track_order", "promo_code"):
        r = await client.post(
            number.messages_path, headers=number.auth, json=send(name, recipient=user_id)
        )
        assert r.status_code == 200, r.text
        assert r.json()["contacts"] == [{"input": user_id, "user_id": user_id}]
