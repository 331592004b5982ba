"""The send service's pure rules: the customer's number as a WhatsApp id (FlowChat's one
form), the ``Idempotency-Key`` header, and the body hashes idempotency records keep
(including the ``+E164`` form records written before the WhatsApp id was the form)."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from flowchat_gateway.errors import SendRejected
from flowchat_gateway.schemas import SendMessageRequest
from flowchat_gateway.send_service import body_hashes, idempotency_key, wa_id_of


@pytest.mark.parametrize(
    ("raw", "wa_id"),
    [
        ("+4915112345678", "4915112345678"),
        ("4915112345678", "4915112345678"),
        ("004915112345678", "4915112345678"),
        ("+49 151 12345678", "4915112345678"),
        ("+1 (650) 555-1234", "16505551234"),
        ("whatsapp:+14155552671", "14155552671"),
        ("447911123456", "447911123456"),
    ],
)
def test_phone_numbers_become_whatsapp_ids(raw: str, wa_id: str) -> None:
    assert wa_id_of(raw) == wa_id


@pytest.mark.parametrize("raw", ["12", "+999123456789", "hello", "+1 650 555", "+49 1", ""])
def test_invalid_phone_numbers_are_refused_on_to(raw: str) -> None:
    with pytest.raises(SendRejected) as info:
        wa_id_of(raw)
    assert info.value.code == "invalid_phone_number"
    assert info.value.status == 422
    assert info.value.field == "to"


@pytest.mark.parametrize("raw", [None, "", "   ", "k" * 129])
def test_idempotency_key_is_required_and_bounded(raw: str | None) -> None:
    with pytest.raises(SendRejected) as info:
        idempotency_key(raw)
    assert (info.value.code, info.value.status) == ("invalid_idempotency_key", 400)
    assert info.value.field == "Idempotency-Key"


def test_idempotency_key_is_stripped() -> None:
    assert idempotency_key("  order-1042  ") == "order-1042"
    assert idempotency_key("k" * 128) == "k" * 128


def _hash_as_before(body: dict[str, object]) -> str:
    """What the gateway hashed before the WhatsApp id: the body with ``to`` in ``+E164``."""
    canonical = SendMessageRequest.model_validate(body).model_dump(mode="json")
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def test_body_hashes_are_the_canonical_form_then_the_old_one() -> None:
    typed = {
        "account_id": "acc-1",
        "to": "+49 151 12345678",
        "content": {"type": "text", "body": "Hi"},
    }
    request = SendMessageRequest.model_validate(typed)
    current, legacy = body_hashes(request, wa_id_of(request.to))
    assert current == _hash_as_before({**typed, "to": "4915112345678"})
    assert legacy == _hash_as_before({**typed, "to": "+4915112345678"})
    # The same number typed another way is the same body.
    other = SendMessageRequest.model_validate({**typed, "to": "004915112345678"})
    assert body_hashes(other, wa_id_of(other.to)) == (current, legacy)
